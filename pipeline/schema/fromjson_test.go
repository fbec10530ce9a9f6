package schema_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/pipeline/schema"
)

// newCodec builds a Codec for avsc without a registry.
func newCodec(t testing.TB, avsc string) *schema.Codec {
	t.Helper()
	s, err := avro.ParseWithCache(avsc, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := schema.NewCodec(1, s.(*avro.RecordSchema))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// purchase returns a valid purchase event with the given changes (nil value = delete).
func purchase(t testing.TB, changes map[string]any) map[string]any {
	t.Helper()
	m := decodeJSON(t, events["purchases.avsc"])
	for k, v := range changes {
		if v == nil {
			delete(m, k)
			continue
		}
		if v == jsonNull {
			v = nil
		}
		m[k] = v
	}
	return m
}

// jsonNull marks an explicit null in purchase changes.
type nullMarker struct{}

var jsonNull = nullMarker{}

func TestFromJSONErrors(t *testing.T) {
	codec := newCodec(t, builtin(t, "purchases.avsc"))
	tests := []struct {
		name    string
		changes map[string]any
		want    []schema.FieldError
	}{
		{name: "missing required", changes: map[string]any{"user_id": nil, "order_id": nil},
			want: []schema.FieldError{{"user_id", "is required"}, {"order_id", "is required"}}},
		{name: "null required", changes: map[string]any{"user_id": jsonNull},
			want: []schema.FieldError{{"user_id", "must be a string"}}},
		{name: "unknown fields sorted", changes: map[string]any{"zeta": "1", "alpha": json.Number("2")},
			want: []schema.FieldError{{"alpha", "unknown field"}, {"zeta", "unknown field"}}},
		{name: "string gets number", changes: map[string]any{"currency": json.Number("1")},
			want: []schema.FieldError{{"currency", "must be a string"}}},
		{name: "double gets string", changes: map[string]any{"amount": "19.99"},
			want: []schema.FieldError{{"amount", "must be a number"}}},
		{name: "double gets bool", changes: map[string]any{"amount": true},
			want: []schema.FieldError{{"amount", "must be a number"}}},
		{name: "double overflows", changes: map[string]any{"amount": json.Number("1e400")},
			want: []schema.FieldError{{"amount", "must be a finite number within the range of a double (about 1.8e308)"}}},
		{name: "double not a number", changes: map[string]any{"amount": json.Number("abc")},
			want: []schema.FieldError{{"amount", "must be a number"}}},
		{name: "int gets fraction", changes: map[string]any{"items": json.Number("1.5")},
			want: []schema.FieldError{{"items", "must be an integer"}}},
		{name: "int gets float64 fraction", changes: map[string]any{"items": 2.5},
			want: []schema.FieldError{{"items", "must be an integer"}}},
		{name: "int too big", changes: map[string]any{"items": json.Number("2147483648")},
			want: []schema.FieldError{{"items", "must be an integer between -2147483648 and 2147483647"}}},
		{name: "int too small as float64", changes: map[string]any{"items": -3e9},
			want: []schema.FieldError{{"items", "must be an integer between -2147483648 and 2147483647"}}},
		{name: "int beyond int64", changes: map[string]any{"items": json.Number("99999999999999999999")},
			want: []schema.FieldError{{"items", "must be an integer between -2147483648 and 2147483647"}}},
		{name: "int gets string", changes: map[string]any{"items": "3"},
			want: []schema.FieldError{{"items", "must be an integer"}}},
		{name: "enum unknown symbol", changes: map[string]any{"device": "phone"},
			want: []schema.FieldError{{"device", "must be one of desktop, mobile, tablet"}}},
		{name: "enum wrong case", changes: map[string]any{"device": "Mobile"},
			want: []schema.FieldError{{"device", "must be one of desktop, mobile, tablet"}}},
		{name: "enum gets number", changes: map[string]any{"device": json.Number("1")},
			want: []schema.FieldError{{"device", "must be one of desktop, mobile, tablet"}}},
		{name: "timestamp not RFC 3339", changes: map[string]any{"event_time": "27/11/2026"},
			want: []schema.FieldError{{"event_time", "must be an RFC 3339 timestamp or integer milliseconds since the epoch"}}},
		{name: "timestamp without zone", changes: map[string]any{"event_time": "2026-11-27T10:00:00"},
			want: []schema.FieldError{{"event_time", "must be an RFC 3339 timestamp or integer milliseconds since the epoch"}}},
		{name: "timestamp fractional millis", changes: map[string]any{"event_time": json.Number("1.5")},
			want: []schema.FieldError{{"event_time", "must be an RFC 3339 timestamp or integer milliseconds since the epoch"}}},
		{name: "timestamp gets bool", changes: map[string]any{"event_time": false},
			want: []schema.FieldError{{"event_time", "must be an RFC 3339 timestamp or integer milliseconds since the epoch"}}},
		{name: "every problem at once", changes: map[string]any{"event_id": nil, "amount": "x", "device": "tv", "extra": 1},
			want: []schema.FieldError{{"event_id", "is required"}, {"device", "must be one of desktop, mobile, tablet"},
				{"amount", "must be a number"}, {"extra", "unknown field"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := codec.FromJSON(purchase(t, tt.changes))
			var ve *schema.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("FromJSON() = %v, %v; want a *ValidationError", out, err)
			}
			if out != nil {
				t.Errorf("FromJSON() returned a record with an error")
			}
			if !reflect.DeepEqual(ve.Fields, tt.want) {
				t.Fatalf("fields = %v\nwant %v", ve.Fields, tt.want)
			}
			for _, f := range tt.want {
				if !strings.Contains(err.Error(), f.Field+": "+f.Message) {
					t.Errorf("Error() = %q misses %s", err.Error(), f.Field)
				}
			}
		})
	}
}

func TestFromJSONValues(t *testing.T) {
	codec := newCodec(t, builtin(t, "purchases.avsc"))
	at := time.Date(2026, 11, 27, 10, 0, 0, 123_000_000, time.UTC)
	tests := []struct {
		name    string
		changes map[string]any
		field   string
		want    any
	}{
		{name: "RFC 3339 with offset to UTC", changes: map[string]any{"event_time": "2026-11-27T11:00:00.123+01:00"}, field: "event_time", want: at},
		{name: "RFC 3339 truncated to millis", changes: map[string]any{"event_time": "2026-11-27T10:00:00.123999999Z"}, field: "event_time", want: at},
		{name: "integer millis", changes: map[string]any{"event_time": json.Number("1795773600123")}, field: "event_time", want: at},
		{name: "integral exponent millis", changes: map[string]any{"event_time": json.Number("1.795773600123e12")}, field: "event_time", want: at},
		{name: "float64 millis", changes: map[string]any{"event_time": 1795773600123.0}, field: "event_time", want: at},
		{name: "time.Time", changes: map[string]any{"event_time": at.In(time.FixedZone("x", 3600))}, field: "event_time", want: at},
		{name: "int from json.Number", changes: map[string]any{"items": json.Number("7")}, field: "items", want: 7},
		{name: "int from integral float", changes: map[string]any{"items": 7.0}, field: "items", want: 7},
		{name: "int from exponent", changes: map[string]any{"items": json.Number("2e1")}, field: "items", want: 20},
		{name: "int from Go int64", changes: map[string]any{"items": int64(7)}, field: "items", want: 7},
		{name: "int max", changes: map[string]any{"items": json.Number("2147483647")}, field: "items", want: math.MaxInt32},
		{name: "missing int takes default", changes: map[string]any{"items": nil}, field: "items", want: 1},
		{name: "null int takes default", changes: map[string]any{"items": jsonNull}, field: "items", want: 1},
		{name: "double from integer", changes: map[string]any{"amount": json.Number("20")}, field: "amount", want: 20.0},
		{name: "double from Go int", changes: map[string]any{"amount": 20}, field: "amount", want: 20.0},
		{name: "enum", changes: map[string]any{"device": "desktop"}, field: "device", want: "desktop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := codec.FromJSON(purchase(t, tt.changes))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(out[tt.field], tt.want) {
				t.Fatalf("%s = %#v (%T), want %#v", tt.field, out[tt.field], out[tt.field], tt.want)
			}
		})
	}
}

func TestFromJSONDoesNotModifyInput(t *testing.T) {
	codec := newCodec(t, builtin(t, "purchases.avsc"))
	in := purchase(t, map[string]any{"items": nil})
	n := len(in)
	if _, err := codec.FromJSON(in); err != nil {
		t.Fatal(err)
	}
	if len(in) != n || in["event_time"] != "2026-11-27T11:00:00.5+01:00" {
		t.Fatal("FromJSON modified its input")
	}
}

func TestFromJSONNullableUnion(t *testing.T) {
	codec := newCodec(t, builtin(t, "page_views.avsc"))
	tests := []struct {
		name    string
		changes map[string]any
		want    map[string]any
		wantErr []schema.FieldError
	}{
		{name: "values", changes: map[string]any{"referrer": "r", "duration_ms": json.Number("5")},
			want: map[string]any{"referrer": "r", "duration_ms": 5}},
		{name: "nulls", changes: map[string]any{"referrer": nil, "duration_ms": nil},
			want: map[string]any{"referrer": nil, "duration_ms": nil}},
		{name: "Avro JSON form", changes: map[string]any{"referrer": map[string]any{"string": "r"}, "duration_ms": map[string]any{"int": json.Number("5")}},
			want: map[string]any{"referrer": "r", "duration_ms": 5}},
		{name: "wrong branch type", changes: map[string]any{"referrer": json.Number("1"), "duration_ms": "5"},
			wantErr: []schema.FieldError{{"referrer", "must be a string or null"}, {"duration_ms", "must be an integer or null"}}},
		{name: "out of range branch", changes: map[string]any{"duration_ms": json.Number("3000000000")},
			wantErr: []schema.FieldError{{"duration_ms", "must be an integer between -2147483648 and 2147483647 or null"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := decodeJSON(t, events["page_views.avsc"])
			for k, v := range tt.changes {
				if v == nil {
					delete(in, k)
					continue
				}
				in[k] = v
			}
			out, err := codec.FromJSON(in)
			if tt.wantErr != nil {
				var ve *schema.ValidationError
				if !errors.As(err, &ve) || !reflect.DeepEqual(ve.Fields, tt.wantErr) {
					t.Fatalf("FromJSON() error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got, ok := out[k]; !ok || !reflect.DeepEqual(got, v) {
					t.Errorf("%s = %#v, want %#v", k, got, v)
				}
			}
		})
	}
}

// nestedAvsc exercises every type FromJSON, AppendEncode and Decode handle.
const nestedAvsc = `{"type":"record","name":"Order","namespace":"test","fields":[
 {"name":"id","type":"string"},
 {"name":"ok","type":"boolean","default":true},
 {"name":"qty","type":"long"},
 {"name":"ratio","type":"float","default":0.5},
 {"name":"blob","type":"bytes","default":"\u0001\u0002"},
 {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"took","type":{"type":"int","logicalType":"time-millis"}},
 {"name":"at_us","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"address","type":{"type":"record","name":"Address","fields":[
   {"name":"city","type":"string"},
   {"name":"zip","type":["null","string"],"default":null},
   {"name":"geo","type":["null",{"type":"record","name":"Geo","fields":[{"name":"lat","type":"double"},{"name":"lon","type":"double"}]}],"default":null}
 ]}},
 {"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[
   {"name":"sku","type":"string"},
   {"name":"n","type":"int","default":1},
   {"name":"note","type":["null","string"],"default":null}
 ]}},"default":[]},
 {"name":"tags","type":{"type":"map","values":["null","long"]},"default":{}},
 {"name":"kind","type":["null",{"type":"enum","name":"Kind","symbols":["A","B"]}],"default":null},
 {"name":"choice","type":["null","string","long",{"type":"array","items":"string"}],"default":null},
 {"name":"alt","type":["null","Hash"],"default":null}
]}`

func nestedEvent(t testing.TB) map[string]any {
	return decodeJSON(t, `{"id":"o1","qty":5,"hash":"AQIDBA==","price":"12.34","day":"2026-11-27",
	 "took":1500,"at_us":"2026-11-27T10:00:00.123456Z",
	 "address":{"city":"Berlin","zip":"10115","geo":{"lat":52.5,"lon":13.4}},
	 "lines":[{"sku":"a"},{"sku":"b","n":2,"note":"gift"}],
	 "tags":{"x":1,"y":null},"kind":"B","choice":["p","q"],"alt":"AAAAAA=="}`)
}

func TestFromJSONNested(t *testing.T) {
	codec := newCodec(t, nestedAvsc)
	out, err := codec.FromJSON(nestedEvent(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": "o1", "ok": true, "qty": int64(5), "ratio": float32(0.5), "blob": []byte{1, 2},
		"hash": []byte{1, 2, 3, 4}, "price": big.NewRat(1234, 100),
		"day":   time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
		"took":  1500 * time.Millisecond,
		"at_us": time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC),
		"address": map[string]any{"city": "Berlin", "zip": "10115",
			"geo": map[string]any{"lat": 52.5, "lon": 13.4}},
		"lines": []any{
			map[string]any{"sku": "a", "n": 1, "note": nil},
			map[string]any{"sku": "b", "n": 2, "note": "gift"},
		},
		"tags":   map[string]any{"x": int64(1), "y": nil},
		"kind":   "B",
		"choice": []any{"p", "q"},
		"alt":    []byte{0, 0, 0, 0},
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("FromJSON()\n got %#v\nwant %#v", out, want)
	}
}

func TestFromJSONNestedErrors(t *testing.T) {
	codec := newCodec(t, nestedAvsc)
	tests := []struct {
		name    string
		changes map[string]any
		want    []schema.FieldError
	}{
		{name: "nested required and unknown", changes: map[string]any{"address": map[string]any{"zip": "1", "street": "x"}},
			want: []schema.FieldError{{"address.city", "is required"}, {"address.street", "unknown field"}}},
		{name: "record gets string", changes: map[string]any{"address": "Berlin"},
			want: []schema.FieldError{{"address", "must be an object"}}},
		{name: "union of record", changes: map[string]any{"address": map[string]any{"city": "B", "geo": map[string]any{"lat": "x"}}},
			want: []schema.FieldError{{"address.geo.lat", "must be a number"}, {"address.geo.lon", "is required"}}},
		{name: "array element", changes: map[string]any{"lines": []any{map[string]any{"sku": "a"}, map[string]any{"n": json.Number("1.5")}}},
			want: []schema.FieldError{{"lines[1].sku", "is required"}, {"lines[1].n", "must be an integer"}}},
		{name: "array gets object", changes: map[string]any{"lines": map[string]any{}},
			want: []schema.FieldError{{"lines", "must be an array"}}},
		{name: "map values in key order", changes: map[string]any{"tags": map[string]any{"b": "x", "a": true}},
			want: []schema.FieldError{{"tags.a", "must be an integer or null"}, {"tags.b", "must be an integer or null"}}},
		{name: "fixed wrong size", changes: map[string]any{"hash": "AQID"},
			want: []schema.FieldError{{"hash", "must be a base64 string of 4 bytes"}}},
		{name: "bytes not base64", changes: map[string]any{"blob": "%%%"},
			want: []schema.FieldError{{"blob", "must be a base64 string"}}},
		{name: "decimal not a number", changes: map[string]any{"price": "1/3"},
			want: []schema.FieldError{{"price", "must be a decimal number"}}},
		{name: "date", changes: map[string]any{"day": "27.11.2026"},
			want: []schema.FieldError{{"day", "must be a date (YYYY-MM-DD) or integer days since the epoch"}}},
		{name: "time-millis", changes: map[string]any{"took": "1s"},
			want: []schema.FieldError{{"took", "must be an integer number of milliseconds"}}},
		{name: "float out of range", changes: map[string]any{"ratio": json.Number("1e39")},
			want: []schema.FieldError{{"ratio", "must be a finite number within the range of a float (about 3.4e38)"}}},
		{name: "boolean", changes: map[string]any{"ok": "true"},
			want: []schema.FieldError{{"ok", "must be a boolean"}}},
		{name: "union enum", changes: map[string]any{"kind": "C"},
			want: []schema.FieldError{{"kind", "must be one of A, B or null"}}},
		{name: "general union", changes: map[string]any{"choice": true},
			want: []schema.FieldError{{"choice", "must match one of the union types null, string, long, array"}}},
		{name: "general union array element", changes: map[string]any{"choice": []any{"a", json.Number("1")}},
			want: []schema.FieldError{{"choice[1]", "must be a string"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := nestedEvent(t)
			for k, v := range tt.changes {
				in[k] = v
			}
			_, err := codec.FromJSON(in)
			var ve *schema.ValidationError
			if !errors.As(err, &ve) || !reflect.DeepEqual(ve.Fields, tt.want) {
				t.Fatalf("FromJSON() error = %v\nwant %v", err, tt.want)
			}
		})
	}
}

func TestNestedRoundTrip(t *testing.T) {
	reg, _ := newRegistry(t)
	codec := register(t, reg, "orders-value", nestedAvsc)
	tests := []struct {
		name    string
		changes map[string]any
	}{
		{name: "all set"},
		{name: "defaults and nulls", changes: map[string]any{"address": map[string]any{"city": "B"},
			"kind": nil, "choice": nil, "alt": nil, "lines": []any{}, "tags": map[string]any{}}},
		{name: "general union string", changes: map[string]any{"choice": "s"}},
		{name: "general union long", changes: map[string]any{"choice": json.Number("9007199254740993")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := nestedEvent(t)
			for k, v := range tt.changes {
				ev[k] = v
			}
			in, err := codec.FromJSON(ev)
			if err != nil {
				t.Fatal(err)
			}
			b, err := codec.AppendEncode(nil, in)
			if err != nil {
				t.Fatal(err)
			}
			out, _, err := reg.Decode(t.Context(), b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(out, in) {
				t.Fatalf("round trip\n got %#v\nwant %#v", out, in)
			}
		})
	}
}

func TestFromJSONNeverPanics(t *testing.T) {
	codec := newCodec(t, nestedAvsc)
	weird := []any{nil, true, "", json.Number(""), json.Number("-"), math.NaN(), math.Inf(1), float32(1.5),
		[]any{nil}, map[string]any{"": nil}, map[string]any{"string": nil, "long": nil}, []byte{1}, struct{}{},
		uint64(math.MaxUint64), int8(-1), (*big.Rat)(nil), time.Time{}, time.Duration(-1)}
	for _, f := range avroFieldNames(codec) {
		for _, v := range weird {
			in := nestedEvent(t)
			in[f] = v
			_, _ = codec.FromJSON(in)
		}
	}
}

func avroFieldNames(c *schema.Codec) []string {
	var names []string
	for _, f := range c.Schema.Fields() {
		names = append(names, f.Name())
	}
	return names
}

func TestFromJSONAvroJSONUnionForm(t *testing.T) {
	codec := newCodec(t, nestedAvsc)
	in := nestedEvent(t)
	in["address"] = map[string]any{"city": "B", "geo": map[string]any{"test.Geo": map[string]any{"lat": 1.0, "lon": 2.0}}}
	in["kind"] = map[string]any{"Kind": "A"}
	in["choice"] = map[string]any{"long": json.Number("3")}
	out, err := codec.FromJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	geo := out["address"].(map[string]any)["geo"]
	if !reflect.DeepEqual(geo, map[string]any{"lat": 1.0, "lon": 2.0}) || out["kind"] != "A" || out["choice"] != int64(3) {
		t.Fatalf("geo %#v kind %#v choice %#v", geo, out["kind"], out["choice"])
	}
}
