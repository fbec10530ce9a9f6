package schema_test

import (
	"bytes"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/pipeline/schema"
)

func TestAppendEncode(t *testing.T) {
	reg, _ := newRegistry(t)
	codec := register(t, reg, "purchases-value", builtin(t, "purchases.avsc"))
	base, err := codec.FromJSON(decodeJSON(t, events["purchases.avsc"]))
	if err != nil {
		t.Fatal(err)
	}
	with := func(changes map[string]any) map[string]any {
		m := make(map[string]any, len(base))
		for k, v := range base {
			m[k] = v
		}
		for k, v := range changes {
			if v == jsonNull {
				delete(m, k)
				continue
			}
			m[k] = v
		}
		return m
	}
	at := base["event_time"].(time.Time)
	tests := []struct {
		name    string
		v       map[string]any
		want    map[string]any // fields checked after Decode
		wantErr string
	}{
		{name: "native", v: base, want: map[string]any{"items": 3, "amount": 19.99}},
		{name: "extra keys ignored", v: with(map[string]any{"nope": 1, "also": []any{}}), want: map[string]any{"items": 3}},
		{name: "missing field takes default", v: with(map[string]any{"items": jsonNull}), want: map[string]any{"items": 1}},
		{name: "nil field takes default", v: with(map[string]any{"items": nil}), want: map[string]any{"items": 1}},
		{name: "int64 for int", v: with(map[string]any{"items": int64(4)}), want: map[string]any{"items": 4}},
		{name: "int for double", v: with(map[string]any{"amount": 20}), want: map[string]any{"amount": 20.0}},
		{name: "float32 for double", v: with(map[string]any{"amount": float32(0.5)}), want: map[string]any{"amount": 0.5}},
		{name: "int64 millis for timestamp", v: with(map[string]any{"event_time": at.UnixMilli()}), want: map[string]any{"event_time": at}},
		{name: "RFC 3339 for timestamp", v: with(map[string]any{"event_time": at.Format(time.RFC3339Nano)}), want: map[string]any{"event_time": at}},
		{name: "missing required field", v: with(map[string]any{"order_id": jsonNull}), wantErr: "order_id"},
		{name: "wrong type", v: with(map[string]any{"amount": "x"}), wantErr: "amount: must be a number"},
		{name: "bad enum", v: with(map[string]any{"device": "tv"}), wantErr: "device"},
		{name: "int out of range", v: with(map[string]any{"items": int64(1) << 40}), wantErr: "items"},
	}
	prefix := []byte("keep")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := append(make([]byte, 0, 64), prefix...)
			b, err := codec.AppendEncode(dst, tt.v)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("AppendEncode() error = %v, want %q", err, tt.wantErr)
				}
				if !bytes.Equal(b, prefix) {
					t.Fatalf("dst changed on error: %q", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, prefix) {
				t.Fatal("AppendEncode did not append")
			}
			got, _, err := reg.Decode(t.Context(), b[len(prefix):])
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.want {
				if tm, ok := want.(time.Time); ok {
					if !got[k].(time.Time).Equal(tm) {
						t.Errorf("%s = %v, want %v", k, got[k], tm)
					}
					continue
				}
				if got[k] != want {
					t.Errorf("%s = %#v, want %#v", k, got[k], want)
				}
			}
		})
	}
}

func TestCodecConstruction(t *testing.T) {
	rs := avro.MustParse(`{"type":"record","name":"Tiny","fields":[{"name":"a","type":"int"}]}`).(*avro.RecordSchema)
	if _, err := (&schema.Codec{ID: 7, Schema: rs}).AppendEncode(nil, nil); err == nil {
		t.Error("AppendEncode(nil map) succeeded with a required field")
	}
	tests := []struct {
		name    string
		codec   *schema.Codec
		wantErr bool
	}{
		{name: "literal codec", codec: &schema.Codec{ID: 7, Schema: rs}},
		{name: "nil schema", codec: &schema.Codec{ID: 7}, wantErr: true},
		{name: "nil codec", codec: nil, wantErr: true},
		{name: "negative id", codec: &schema.Codec{ID: -1, Schema: rs}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.codec.AppendEncode(nil, map[string]any{"a": 1})
			if tt.wantErr {
				if err == nil {
					t.Fatal("AppendEncode() succeeded")
				}
				if tt.codec == nil || tt.codec.Schema == nil {
					if _, err := tt.codec.FromJSON(map[string]any{}); err == nil {
						t.Fatal("FromJSON() succeeded")
					}
				}
				return
			}
			if err != nil || !bytes.Equal(b, []byte{0, 0, 0, 0, 7, 2}) {
				t.Fatalf("AppendEncode() = % x, %v", b, err)
			}
		})
	}
}

func TestNewCodecRejectsBadDefault(t *testing.T) {
	// hamba accepts any integral float64 as an int default; FromJSON would then hand
	// out a value that does not fit.
	s, err := avro.Parse(`{"type":"record","name":"BadDef","fields":[{"name":"a","type":"int","default":4294967296}]}`)
	if err != nil {
		t.Skipf("hamba rejects the default itself: %v", err)
	}
	if _, err := schema.NewCodec(1, s.(*avro.RecordSchema)); err == nil {
		t.Fatal("NewCodec accepted an int default out of range")
	}
}

func TestToJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 11, 0, 0, 5_000_000, time.FixedZone("CET", 3600))
	in := map[string]any{
		"s": "x", "n": 3, "l": int64(4), "d": 1.5, "f": float32(19.99), "b": true, "nil": nil,
		"t":     at,
		"bytes": []byte{1, 2, 3},
		"fixed": [4]byte{0, 0, 0, 1},
		"dur":   1500 * time.Millisecond,
		"frac":  1500 * time.Microsecond,
		"dec":   big.NewRat(1234, 100),
		"int":   big.NewRat(5, 1),
		"nan":   float32NaN(),
		"rec":   map[string]any{"t": at, "arr": []any{[]byte{255}, nil}},
	}
	got := schema.ToJSON(in)
	want := map[string]any{
		"s": "x", "n": 3, "l": int64(4), "d": 1.5, "f": "19.99", "b": true, "nil": nil,
		"t":     "2026-11-27T10:00:00.005Z",
		"bytes": "AQID",
		"fixed": "AAAAAQ==",
		"dur":   int64(1500),
		"frac":  1.5,
		"dec":   "12.34",
		"int":   "5",
		"nan":   "NaN",
		"rec":   map[string]any{"t": "2026-11-27T10:00:00.005Z", "arr": []any{"/w==", nil}},
	}
	for k, w := range want {
		g := got[k]
		if n, ok := g.(interface{ String() string }); ok {
			g = n.String()
		}
		if !equalJSON(g, w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	if _, ok := in["t"].(time.Time); !ok {
		t.Error("ToJSON modified its input")
	}
	if schema.ToJSON(nil) != nil {
		t.Error("ToJSON(nil) != nil")
	}
}

func float32NaN() float32 {
	var zero float32
	return zero / zero
}

// equalJSON compares ToJSON output by value, descending into maps and slices.
func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k := range x {
			if !equalJSON(x[k], y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}
