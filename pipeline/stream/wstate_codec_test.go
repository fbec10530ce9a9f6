package stream_test

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// engineStates runs a generated stream through spec and returns every stored state,
// encoded, by key.
func engineStates(t testing.TB, spec stream.Spec, seed uint64) map[string][]byte {
	t.Helper()
	e := newEngine(t, spec)
	for _, o := range genStream(seed, 400, spec.Sources, 4, 6) {
		e.apply(o)
	}
	out := map[string][]byte{}
	e.windows.Range(func(k string, ws *stream.WindowState) bool {
		out[k] = stream.WindowStateCodec{}.Encode(nil, ws)
		return true
	})
	if len(out) == 0 {
		t.Fatal("no open windows")
	}
	return out
}

func TestWindowStateCodecRoundTrip(t *testing.T) {
	c := stream.WindowStateCodec{}
	for _, spec := range specsUnderTest() {
		t.Run(specName(spec), func(t *testing.T) {
			for k, b := range engineStates(t, spec, 3) {
				ws, err := c.Decode(b)
				if err != nil {
					t.Fatalf("%q: %v", k, err)
				}
				if again := c.Encode(nil, ws); !bytes.Equal(again, b) {
					t.Fatalf("%q: re-encoding differs:\n %x\n %x", k, again, b)
				}
				if dst := c.Encode([]byte("prefix"), ws); !bytes.Equal(dst[6:], b) || string(dst[:6]) != "prefix" {
					t.Fatalf("Encode does not append to dst")
				}
			}
		})
	}
	t.Run("nil and empty", func(t *testing.T) {
		b := c.Encode(nil, nil)
		ws, err := c.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.Encode(nil, ws), b) || !bytes.Equal(c.Encode(nil, &stream.WindowState{}), b) {
			t.Fatal("empty state does not round-trip")
		}
	})
}

// Equal states encode to equal bytes whatever order the distinct values arrived in.
func TestWindowStateCodecDeterministic(t *testing.T) {
	spec := withMeasures(tumbling(100, 0, stream.EmitFinal), oracleMeasures)
	users := []string{"u1", "u9", "u3", "u7", "u5", "u2", "u8", "u4", "u6", "u0", "u10", "u11"}
	encode := func(order []string) map[string][]byte {
		e := newEngine(t, spec)
		for i, u := range order {
			e.agg.Add(stream.Event{Source: "p0", Time: int64(i), Group: "k", GroupValues: []string{"k"},
				Values: map[string]any{"v": int64(len(u)), "u": u}, IngestTS: 7, EventID: "same"})
		}
		out := map[string][]byte{}
		e.windows.Range(func(k string, ws *stream.WindowState) bool {
			out[k] = stream.WindowStateCodec{}.Encode(nil, ws)
			return true
		})
		return out
	}
	want := encode(users)
	for i := range 5 {
		shuffled := slices.Clone(users)
		slices.Reverse(shuffled[i:])
		if got := encode(shuffled); !maps.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("order %v encodes differently", shuffled)
		}
	}
}

func TestWindowStateCodecRejectsGarbage(t *testing.T) {
	c := stream.WindowStateCodec{}
	var valid []byte
	for _, b := range engineStates(t, withMeasures(tumbling(10, 5, stream.EmitFinal, "p0", "p1"), oracleMeasures), 1) {
		if len(b) > len(valid) {
			valid = b
		}
	}
	// version, 1 group value "k", start 0, end-start 10, count 2, ingest 0, event id "",
	// no numeric accumulators, one set of two values.
	set := func(vals ...string) []byte {
		b := []byte{1, 1, 1, 'k', 0, 10, 2, 0, 0, 0, 1, byte(len(vals))}
		for _, v := range vals {
			b = append(b, byte(len(v)))
			b = append(b, v...)
		}
		return b
	}
	if _, err := c.Decode(set("a", "b")); err != nil {
		t.Fatalf("hand-made state: %v", err)
	}
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"wrong version", append([]byte{2}, valid[1:]...)},
		{"truncated by one", valid[:len(valid)-1]},
		{"truncated header", valid[:3]},
		{"trailing byte", append(slices.Clone(valid), 0)},
		{"group count beyond input", []byte{1, 200, 1}},
		{"string length beyond input", []byte{1, 1, 100, 'k'}},
		{"bad uvarint", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"end overflows", []byte{1, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02}},
		{"count overflows", []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0}},
		{"numeric accumulator truncated", []byte{1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0}},
		{"distinct values out of order", set("b", "a")},
		{"duplicate distinct values", set("a", "a")},
		{"distinct set size beyond input", []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 50}},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			ws, err := c.Decode(cs.b)
			if !errors.Is(err, stream.ErrBadWindowState) || ws != nil {
				t.Fatalf("Decode(%x) = %v, %v; want ErrBadWindowState", cs.b, ws, err)
			}
		})
	}
}

// FuzzWindowStateCodec: Decode never panics; whatever it accepts re-encodes to a
// canonical form that decodes again to the same bytes.
func FuzzWindowStateCodec(f *testing.F) {
	for _, spec := range specsUnderTest() {
		for _, b := range engineStates(f, spec, 5) {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := stream.WindowStateCodec{}
		ws, err := c.Decode(b)
		if err != nil {
			if ws != nil || !errors.Is(err, stream.ErrBadWindowState) {
				t.Fatalf("Decode error %v with state %v", err, ws)
			}
			return
		}
		e1 := c.Encode(nil, ws)
		ws2, err := c.Decode(e1)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if e2 := c.Encode(nil, ws2); !bytes.Equal(e1, e2) {
			t.Fatalf("encoding not stable:\n %x\n %x", e1, e2)
		}
	})
}
