package schema_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"testing"

	"github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pipeline/schema"
)

// fuzzSchemas are registered for the fuzz targets, built-ins first.
var fuzzSchemas = []string{"clicks.avsc", "page_views.avsc", "purchases.avsc", "nested"}

// fuzzCodecs registers every fuzz schema on a fresh srfake registry.
func fuzzCodecs(t testing.TB) (*schema.Registry, []*schema.Codec) {
	t.Helper()
	reg, _ := newRegistry(t)
	codecs := make([]*schema.Codec, len(fuzzSchemas))
	for i, name := range fuzzSchemas {
		codecs[i] = register(t, reg, name+"-value", schemaText(t, name))
	}
	return reg, codecs
}

// FuzzDecode feeds random bodies after a valid header. Decode must not panic, and what it
// accepts must re-encode to bytes that decode to the same record.
func FuzzDecode(f *testing.F) {
	for i, name := range fuzzSchemas {
		var ev map[string]any
		if name == "nested" {
			ev = nestedEvent(f)
		} else {
			ev = decodeJSON(f, events[name])
		}
		c := newCodec(f, schemaText(f, name))
		native, err := c.FromJSON(ev)
		if err != nil {
			f.Fatal(err)
		}
		b, err := c.AppendEncode(nil, native)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b[5:])
		f.Add(uint8(i), b[5:len(b)/2])
	}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(3), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})

	reg, codecs := fuzzCodecs(f)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		c := codecs[int(which)%len(codecs)]
		msg := binary.BigEndian.AppendUint32([]byte{0}, uint32(c.ID))
		msg = append(msg, body...)
		out, id, err := reg.Decode(t.Context(), msg)
		if id != c.ID {
			t.Fatalf("Decode() id %d, want %d", id, c.ID)
		}
		if err != nil {
			if out != nil {
				t.Fatal("Decode() returned a record with an error")
			}
			return
		}
		once, err := c.AppendEncode(nil, out)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v\n%#v", err, out)
		}
		again, _, err := reg.Decode(t.Context(), once)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(canon(out), canon(again)) {
			t.Fatalf("encode/decode is not stable\n got %#v\nwant %#v", again, out)
		}
	})
}

// canon replaces NaN floats, which never equal themselves, by a marker, so that
// reflect.DeepEqual can compare decoded records.
func canon(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) {
			return "NaN"
		}
	case float32:
		if math.IsNaN(float64(x)) {
			return "NaN32"
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = canon(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = canon(e)
		}
		return out
	}
	return v
}

// schemaText returns the text of a fuzz schema.
func schemaText(t testing.TB, name string) string {
	if name == "nested" {
		return nestedAvsc
	}
	return builtin(t, name)
}

// FuzzFromJSON feeds random JSON objects, decoded as ingest does. FromJSON must not panic,
// and whatever it accepts must encode and decode back to the same values.
func FuzzFromJSON(f *testing.F) {
	for _, ev := range events {
		f.Add(uint8(0), []byte(ev))
	}
	f.Add(uint8(3), []byte(`{"id":"o1","qty":5,"hash":"AQIDBA==","price":"12.34","day":"2026-11-27","took":1500,
	 "at_us":"2026-11-27T10:00:00.123456Z","address":{"city":"B","geo":{"lat":1,"lon":2}},
	 "lines":[{"sku":"a"}],"tags":{"x":1},"kind":"B","choice":["p"],"alt":"AAAAAA=="}`))
	f.Add(uint8(2), []byte(`{"amount":1e400,"items":2147483648,"event_time":"x","device":null}`))
	f.Add(uint8(1), []byte(`{"referrer":{"string":"r"},"duration_ms":{"int":-1}}`))
	f.Add(uint8(3), []byte(`{"choice":{"array":[]},"kind":{"test.Kind":"A"},"price":-0.001}`))

	reg, codecs := fuzzCodecs(f)
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var in map[string]any
		if err := dec.Decode(&in); err != nil || in == nil {
			return
		}
		c := codecs[int(which)%len(codecs)]
		out, err := c.FromJSON(in)
		if err != nil {
			if out != nil {
				t.Fatal("FromJSON() returned a record with an error")
			}
			return
		}
		b, err := c.AppendEncode(nil, out)
		if err != nil {
			t.Fatalf("FromJSON output does not encode: %v\n%#v", err, out)
		}
		got, _, err := reg.Decode(t.Context(), b)
		if err != nil {
			t.Fatalf("encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(got, out) {
			t.Fatalf("round trip changed the record\n got %#v\nwant %#v", got, out)
		}
		_ = schema.ToJSON(got)
	})
}
