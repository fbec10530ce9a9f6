package schema_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-json"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/schema"
)

// events are valid JSON events of the built-in topics, as clients send them.
var events = map[string]string{
	"page_views.avsc": `{"event_id":"01JD0000000000000000000001","event_time":"2026-11-27T10:00:00.123Z",
		"user_id":"u-42","session_id":"s-1","country":"DE","device":"mobile","url":"/p/1",
		"referrer":"https://example.com/","duration_ms":1200}`,
	"clicks.avsc": `{"event_id":"e2","event_time":1795780800123,"user_id":"u-42","session_id":"s-1",
		"country":"FR","device":"desktop","url":"/p/1","element":"#buy","x":10,"y":-3}`,
	"purchases.avsc": `{"event_id":"e3","event_time":"2026-11-27T11:00:00.5+01:00","user_id":"u-7",
		"session_id":"s-9","country":"DE","device":"tablet","order_id":"o-1","amount":19.99,
		"currency":"EUR","items":3,"product_id":"p-100"}`,
}

// decodeJSON decodes a JSON object the way ingest does (goccy/go-json, UseNumber).
func decodeJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	reg, _ := newRegistry(t)
	for name, ev := range events {
		t.Run(name, func(t *testing.T) {
			codec := register(t, reg, strings.TrimSuffix(name, ".avsc")+"-value", builtin(t, name))
			in, err := codec.FromJSON(decodeJSON(t, ev))
			if err != nil {
				t.Fatal(err)
			}
			b, err := codec.AppendEncode(nil, in)
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != 0 || int(b[1])<<24|int(b[2])<<16|int(b[3])<<8|int(b[4]) != codec.ID {
				t.Fatalf("header % x does not carry id %d", b[:5], codec.ID)
			}
			out, id, err := reg.Decode(t.Context(), b)
			if err != nil || id != codec.ID {
				t.Fatalf("Decode() id %d, err %v", id, err)
			}
			if !reflect.DeepEqual(out, in) {
				t.Fatalf("round trip changed the record\n got %#v\nwant %#v", out, in)
			}
			if _, ok := out["event_time"].(time.Time); !ok {
				t.Fatalf("event_time is %T", out["event_time"])
			}
		})
	}
}

func TestRoundTripNullableNull(t *testing.T) {
	reg, _ := newRegistry(t)
	codec := register(t, reg, "page_views-value", builtin(t, "page_views.avsc"))
	in := decodeJSON(t, events["page_views.avsc"])
	in["referrer"] = nil
	delete(in, "duration_ms")
	native, err := codec.FromJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := codec.AppendEncode(nil, native)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := reg.Decode(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"referrer", "duration_ms"} {
		if v, ok := out[f]; !ok || v != nil {
			t.Errorf("%s = %#v, %v; want present and nil", f, v, ok)
		}
	}
}

func TestRegisterIdempotent(t *testing.T) {
	reg, fake := newRegistry(t)
	first := register(t, reg, "clicks-value", builtin(t, "clicks.avsc"))
	before := fake.requests.Load()
	// Same schema, different whitespace: still the same.
	again := register(t, reg, "clicks-value", strings.ReplaceAll(builtin(t, "clicks.avsc"), "\n", " "))
	if again.ID != first.ID {
		t.Fatalf("second Register id %d, first %d", again.ID, first.ID)
	}
	if n := fake.requests.Load() - before; n != 1 {
		t.Errorf("second Register made %d requests, want 1 (read latest)", n)
	}
	if _, ok := fake.GetSchema("clicks-value", 2); ok {
		t.Error("second Register created version 2")
	}
	// A fresh Registry (another process) gets the same id too.
	other, _ := newRegistryOn(t, fake)
	if c := register(t, other, "clicks-value", builtin(t, "clicks.avsc")); c.ID != first.ID {
		t.Errorf("other process got id %d, want %d", c.ID, first.ID)
	}
}

// newRegistryOn returns a second Registry client of an existing fake.
func newRegistryOn(t *testing.T, fake *fakeRegistry) (*schema.Registry, *fakeRegistry) {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return schema.NewRegistry(cl), fake
}

// purchaseWith returns the purchases schema with its items field replaced by field
// (JSON text), or with field appended if items is "".
func purchaseWith(t *testing.T, replaceItems, extra string) string {
	t.Helper()
	s := builtin(t, "purchases.avsc")
	old := `{"name": "items", "type": "int", "default": 1, "doc": "Number of items in the order."}`
	if !strings.Contains(s, old) {
		t.Fatal("purchases.avsc changed; update the test")
	}
	if replaceItems != "" {
		s = strings.Replace(s, old, replaceItems, 1)
	}
	if extra != "" {
		i := strings.LastIndex(s, "]")
		s = s[:i] + ", " + extra + s[i:]
	}
	return s
}

func TestRegisterEvolution(t *testing.T) {
	tests := []struct {
		name         string
		next         func(t *testing.T) string
		incompatible bool
	}{
		{name: "optional field with default", next: func(t *testing.T) string {
			return purchaseWith(t, "", `{"name":"coupon","type":["null","string"],"default":null}`)
		}},
		{name: "field with non-null default", next: func(t *testing.T) string {
			return purchaseWith(t, "", `{"name":"channel","type":"string","default":"web"}`)
		}},
		{name: "int promoted to long", next: func(t *testing.T) string {
			return purchaseWith(t, `{"name":"items","type":"long","default":1}`, "")
		}},
		{name: "field removed", next: func(t *testing.T) string {
			return strings.Replace(purchaseWith(t, "", ""),
				`{"name": "items", "type": "int", "default": 1, "doc": "Number of items in the order."},`, "", 1)
		}},
		{name: "default changed only", next: func(t *testing.T) string {
			return purchaseWith(t, `{"name":"items","type":"int","default":2}`, "")
		}},
		{name: "required field without default", incompatible: true, next: func(t *testing.T) string {
			return purchaseWith(t, "", `{"name":"coupon","type":"string"}`)
		}},
		{name: "type changed", incompatible: true, next: func(t *testing.T) string {
			return purchaseWith(t, `{"name":"items","type":"string","default":"1"}`, "")
		}},
		{name: "enum symbol removed", incompatible: true, next: func(t *testing.T) string {
			return strings.Replace(purchaseWith(t, "", ""), `"desktop", "mobile", "tablet"`, `"desktop", "mobile"`, 1)
		}},
		{name: "record renamed", incompatible: true, next: func(t *testing.T) string {
			return strings.Replace(purchaseWith(t, "", ""), `"name": "Purchase"`, `"name": "Order"`, 1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The registry checks BACKWARD (srfake alone accepts anything).
			reg, fake := newStrict(t, config.Registry{})
			v1 := register(t, reg, "purchases-value", builtin(t, "purchases.avsc"))
			v2, err := reg.Register(t.Context(), "purchases-value", tt.next(t))
			if tt.incompatible {
				if !errors.Is(err, schema.ErrIncompatible) || !strings.Contains(err.Error(), "purchases-value") {
					t.Fatalf("Register() error = %v, want ErrIncompatible naming the subject", err)
				}
				if _, ok := fake.GetSchema("purchases-value", 2); ok {
					t.Fatal("incompatible schema was registered")
				}
				return
			}
			if err != nil {
				t.Fatalf("Register() error = %v", err)
			}
			if v2.ID == v1.ID {
				t.Fatalf("changed schema reused id %d", v1.ID)
			}
			// A record written with v1 decodes, and encodes with v2 (defaults filled).
			in, err := v1.FromJSON(decodeJSON(t, events["purchases.avsc"]))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := v1.AppendEncode(nil, in)
			old, _, err := reg.Decode(t.Context(), b)
			if err != nil {
				t.Fatal(err)
			}
			b2, err := v2.AppendEncode(nil, old)
			if err != nil {
				t.Fatalf("encode a v1 record with v2: %v", err)
			}
			got, id, err := reg.Decode(t.Context(), b2)
			if err != nil || id != v2.ID {
				t.Fatalf("Decode() = id %d, %v", id, err)
			}
			for _, f := range v2.Schema.Fields() {
				if _, ok := got[f.Name()]; !ok {
					t.Errorf("field %s missing after evolution", f.Name())
				}
			}
		})
	}
}

func TestEvolutionFillsDefaults(t *testing.T) {
	reg, _ := newRegistry(t)
	v1 := register(t, reg, "purchases-value", builtin(t, "purchases.avsc"))
	v2 := register(t, reg, "purchases-value", purchaseWith(t, "",
		`{"name":"coupon","type":["null","string"],"default":null},{"name":"channel","type":"string","default":"web"}`))
	in, err := v1.FromJSON(decodeJSON(t, events["purchases.avsc"]))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := v1.AppendEncode(nil, in)
	old, _, _ := reg.Decode(t.Context(), b)
	b2, err := v2.AppendEncode(nil, old)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := reg.Decode(t.Context(), b2)
	if err != nil {
		t.Fatal(err)
	}
	if got["channel"] != "web" || got["coupon"] != nil || got["items"] != 3 {
		t.Fatalf("got channel=%#v coupon=%#v items=%#v", got["channel"], got["coupon"], got["items"])
	}
}

func TestCleanCodec(t *testing.T) {
	reg, _ := newRegistry(t)
	raw := register(t, reg, "purchases-value", builtin(t, "purchases.avsc"))
	cleanText, err := schema.Clean(builtin(t, "purchases.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	clean := register(t, reg, "purchases.clean-value", cleanText)
	if again := register(t, reg, "purchases.clean-value", cleanText); again.ID != clean.ID {
		t.Fatal("registering Clean output twice made a new version")
	}
	in, _ := raw.FromJSON(decodeJSON(t, events["purchases.avsc"]))
	b, _ := raw.AppendEncode(nil, in)
	rec, _, err := reg.Decode(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 10, 0, 1, 234_000_000, time.UTC)
	tests := []struct {
		name string
		set  func(map[string]any)
		want time.Time
	}{
		{name: "processed_at set", set: func(m map[string]any) { m["processed_at"] = now }, want: now},
		{name: "processed_at missing takes 0", set: func(map[string]any) {}, want: time.UnixMilli(0).UTC()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := make(map[string]any, len(rec)+1)
			for k, v := range rec {
				m[k] = v
			}
			tt.set(m)
			cb, err := clean.AppendEncode(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			got, id, err := reg.Decode(t.Context(), cb)
			if err != nil || id != clean.ID {
				t.Fatalf("Decode() id %d, %v", id, err)
			}
			if !got["processed_at"].(time.Time).Equal(tt.want) || got["amount"] != 19.99 {
				t.Fatalf("processed_at = %v, amount = %v", got["processed_at"], got["amount"])
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	reg, fake := newRegistry(t)
	codec := register(t, reg, "clicks-value", builtin(t, "clicks.avsc"))
	in, _ := codec.FromJSON(decodeJSON(t, events["clicks.avsc"]))
	good, _ := codec.AppendEncode(nil, in)
	header := good[:5]
	protoID, _, err := fake.RegisterSchema("proto-value", sr.Schema{Type: sr.TypeProtobuf, Schema: `syntax = "proto3"; message M {}`})
	if err != nil {
		t.Fatal(err)
	}
	withID := func(id int, body []byte) []byte {
		return append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, body...)
	}
	tests := []struct {
		name    string
		b       []byte
		want    error
		wantID  int
		regDown bool
	}{
		{name: "nil", b: nil, want: schema.ErrMalformed},
		{name: "short header", b: []byte{0, 0, 0, 1}, want: schema.ErrMalformed},
		{name: "bad magic byte", b: append([]byte{1}, good[1:]...), want: schema.ErrMalformed},
		{name: "header only", b: header, want: schema.ErrMalformed, wantID: codec.ID},
		{name: "truncated body", b: good[:len(good)-1], want: schema.ErrMalformed, wantID: codec.ID},
		{name: "trailing bytes", b: append(append([]byte(nil), good...), 0), want: schema.ErrMalformed, wantID: codec.ID},
		{name: "huge string length", b: withID(codec.ID, []byte{0xfe, 0xff, 0xff, 0xff, 0x0f}), want: schema.ErrMalformed, wantID: codec.ID},
		{name: "negative string length", b: withID(codec.ID, []byte{0x01}), want: schema.ErrMalformed, wantID: codec.ID},
		{name: "overlong varint", b: withID(codec.ID, bytes.Repeat([]byte{0xff}, 20)), want: schema.ErrMalformed, wantID: codec.ID},
		{name: "unknown id", b: withID(9999, good[5:]), want: schema.ErrUnknownSchema, wantID: 9999},
		{name: "not an Avro schema", b: withID(protoID, good[5:]), want: schema.ErrMalformed, wantID: protoID},
		{name: "registry down, unknown id", b: withID(777, good[5:]), want: schema.ErrRegistryUnavailable, wantID: 777, regDown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.down.Store(tt.regDown)
			t.Cleanup(func() { fake.down.Store(false) })
			m, id, err := reg.Decode(t.Context(), tt.b)
			if !errors.Is(err, tt.want) || m != nil || id != tt.wantID {
				t.Fatalf("Decode() = %v, id %d, %v; want id %d, %v", m, id, err, tt.wantID, tt.want)
			}
		})
	}
}

func TestDecodeEnumOutOfRange(t *testing.T) {
	reg, _ := newRegistry(t)
	codec := register(t, reg, "clicks-value", builtin(t, "clicks.avsc"))
	in, _ := codec.FromJSON(decodeJSON(t, events["clicks.avsc"]))
	in["device"] = "tablet" // index 2
	b, _ := codec.AppendEncode(nil, in)
	// Find the enum index byte (zigzag 2 = 0x04) after the country "FR" and make it 3.
	i := bytes.Index(b, []byte("FR"))
	if i < 0 || b[i+2] != 0x04 {
		t.Fatalf("unexpected layout % x", b)
	}
	b[i+2] = 0x06
	if _, _, err := reg.Decode(t.Context(), b); !errors.Is(err, schema.ErrMalformed) {
		t.Fatalf("Decode() error = %v, want ErrMalformed", err)
	}
}

func TestDecodeCache(t *testing.T) {
	reg, fake := newRegistry(t)
	codec := register(t, reg, "clicks-value", builtin(t, "clicks.avsc"))
	in, _ := codec.FromJSON(decodeJSON(t, events["clicks.avsc"]))
	b, _ := codec.AppendEncode(nil, in)

	fake.down.Store(true)
	before := fake.requests.Load()
	if _, _, err := reg.Decode(t.Context(), b); err != nil {
		t.Fatalf("Decode of a registered id needs the registry: %v", err)
	}
	if fake.requests.Load() != before {
		t.Fatal("Decode of a registered id made a request")
	}
	fake.down.Store(false)

	// Another process learns the id once, even with concurrent Decodes.
	other, _ := newRegistryOn(t, fake)
	before = fake.requests.Load()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, _, err := other.Decode(t.Context(), b); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := fake.requests.Load() - before; n != 1 {
		t.Fatalf("16 concurrent Decodes of a new id made %d requests, want 1", n)
	}
	if _, _, err := other.Decode(t.Context(), b); err != nil || fake.requests.Load()-before != 1 {
		t.Fatalf("second Decode: %v, requests %d", err, fake.requests.Load()-before)
	}
	rs, err := other.Schema(t.Context(), codec.ID)
	if err != nil || rs.FullName() != "sluice.events.Click" {
		t.Fatalf("Schema() = %v, %v", rs, err)
	}
}

func TestRegistryUnavailable(t *testing.T) {
	reg, fake := newRegistry(t)
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		down bool
	}{
		{name: "registry answers 503", ctx: t.Context(), down: true},
		{name: "context canceled", ctx: canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.down.Store(tt.down)
			t.Cleanup(func() { fake.down.Store(false) })
			_, err := reg.Register(tt.ctx, "clicks-value", builtin(t, "clicks.avsc"))
			if !errors.Is(err, schema.ErrRegistryUnavailable) {
				t.Fatalf("Register() error = %v, want ErrRegistryUnavailable", err)
			}
		})
	}
	t.Run("server gone", func(t *testing.T) {
		fake.Close()
		_, err := reg.Register(t.Context(), "clicks-value", builtin(t, "clicks.avsc"))
		if !errors.Is(err, schema.ErrRegistryUnavailable) {
			t.Fatalf("Register() error = %v, want ErrRegistryUnavailable", err)
		}
		if _, _, err := reg.Decode(t.Context(), []byte{0, 0, 0, 0, 1, 2}); !errors.Is(err, schema.ErrRegistryUnavailable) {
			t.Fatalf("Decode() error = %v, want ErrRegistryUnavailable", err)
		}
	})
	t.Run("zero Registry", func(t *testing.T) {
		r := &schema.Registry{}
		if _, err := r.Register(t.Context(), "s", builtin(t, "clicks.avsc")); !errors.Is(err, schema.ErrRegistryUnavailable) {
			t.Fatalf("Register() error = %v", err)
		}
		if _, _, err := r.Decode(t.Context(), []byte{0, 0, 0, 0, 1, 2}); !errors.Is(err, schema.ErrRegistryUnavailable) {
			t.Fatalf("Decode() error = %v", err)
		}
	})
}

func TestRegisterInvalidSchema(t *testing.T) {
	reg, _ := newRegistry(t)
	for _, avsc := range []string{`{`, `"string"`, `{"type":"record","name":"R","fields":[{"name":"a","type":"nope"}]}`} {
		if _, err := reg.Register(t.Context(), "x-value", avsc); err == nil || errors.Is(err, schema.ErrRegistryUnavailable) {
			t.Errorf("Register(%s) error = %v, want a parse error", avsc, err)
		}
	}
}
