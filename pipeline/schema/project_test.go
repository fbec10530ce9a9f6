package schema

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/gen"
)

// sameProjected decodes body whole and projected with keep, and fails unless both fail or
// the projection holds exactly the kept fields of the whole decode.
func sameProjected(t *testing.T, ws *writerSchema, keep []bool, body []byte) {
	t.Helper()
	r := NewRegistry(nil)
	got, gerr := r.decodeProjected(ws, body, keep)
	whole, werr := r.decodeBody(ws, body)
	if (gerr != nil) != (werr != nil) {
		t.Fatalf("body %x keep %v: projected err %v, whole err %v", body, keep, gerr, werr)
	}
	if gerr != nil {
		return
	}
	want := map[string]any{}
	for i, f := range ws.root.rec.fields {
		if keep[i] {
			want[f.name] = whole[f.name]
		}
	}
	// %#v prints maps sorted by key and NaN as NaN (which DeepEqual never finds equal).
	if !reflect.DeepEqual(got, want) && fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		t.Fatalf("body %x keep %v:\nprojected %#v\nwant      %#v", body, keep, got, want)
	}
}

// keeps are the projections tried on a schema of n fields: none, all, every other field
// both ways, and the first and last.
func keeps(n int) [][]bool {
	out := make([][]bool, 5)
	for k := range out {
		out[k] = make([]bool, n)
	}
	for i := range n {
		out[1][i] = true
		out[2][i] = i%2 == 0
		out[3][i] = i%2 == 1
		out[4][i] = i == 0 || i == n-1
	}
	return out
}

func TestDecodeProjectedMatchesDecode(t *testing.T) {
	tests := []struct {
		name   string
		avsc   func(t *testing.T) string
		values func(i int, rng *rand.Rand) map[string]any
	}{
		{name: "every kind", avsc: func(*testing.T) string { return mixedAvsc }, values: func(i int, rng *rand.Rand) map[string]any {
			v := map[string]any{
				"b": i%2 == 0, "i": int(rng.Int32()) - 1<<30, "l": rng.Int64() - 1<<62, "f": float32(rng.NormFloat64()),
				"d": rng.NormFloat64(), "s": string(rune('a' + i%26)), "raw": []byte{byte(i), 0, 255},
				"e": []string{"red", "green", "blue"}[i%3], "n": nil,
				"ts": time.UnixMilli(rng.Int64N(4e12)).UTC(), "us": time.UnixMicro(rng.Int64N(4e15)).UTC(),
				"either": "s",
			}
			if i%3 != 0 {
				v["opt"] = "x"
			}
			if i%2 == 1 {
				v["either"] = int64(-i)
				v["inner"] = map[string]any{"x": i, "tag": "blue"}
			}
			return v
		}},
	}
	now := func() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC) }
	for _, topic := range gen.Topics() {
		g, err := gen.New(topic, gen.Options{Seed: 7, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name   string
			avsc   func(t *testing.T) string
			values func(i int, rng *rand.Rand) map[string]any
		}{name: topic + ".clean", avsc: func(t *testing.T) string {
			avsc, ok := Builtin(topic + ".avsc")
			if !ok {
				t.Fatalf("no built-in schema %s", topic)
			}
			avsc, err := Clean(avsc)
			if err != nil {
				t.Fatal(err)
			}
			return avsc
		}, values: func(i int, _ *rand.Rand) map[string]any {
			ev := g.Next()
			ev["processed_at"] = now()
			if i%2 == 0 {
				delete(ev, "referrer")
				delete(ev, "items")
			}
			return ev
		}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws, _, c := writerSchemas(t, tc.avsc(t))
			rng := rand.New(rand.NewPCG(5, 6))
			ks := keeps(len(ws.root.rec.fields))
			for i := range 40 {
				b, err := c.AppendEncode(nil, tc.values(i, rng))
				if err != nil {
					t.Fatal(err)
				}
				body := b[5:]
				for _, keep := range ks {
					sameProjected(t, ws, keep, body)
					if i >= 4 {
						continue
					}
					for n := range len(body) {
						sameProjected(t, ws, keep, body[:n])
					}
					for range 100 {
						bad := append([]byte(nil), body...)
						for range 1 + rng.IntN(3) {
							bad[rng.IntN(len(bad))] = byte(rng.IntN(256))
						}
						sameProjected(t, ws, keep, bad)
					}
				}
			}
		})
	}
}

func TestDecodeProjectedErrors(t *testing.T) {
	r := NewRegistry(nil)
	p := NewProjection("event_id")
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{name: "no header", in: []byte{1, 2}, want: ErrMalformed},
		{name: "unknown id without a registry", in: []byte{0, 0, 0, 0, 9, 2}, want: ErrRegistryUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := r.DecodeProjected(context.Background(), tc.in, p)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func BenchmarkDecodeProjected(b *testing.B) {
	avsc, _ := Builtin("purchases.avsc")
	avsc, err := Clean(avsc)
	if err != nil {
		b.Fatal(err)
	}
	rs, err := parseRecord(avsc)
	if err != nil {
		b.Fatal(err)
	}
	root, err := compileRecord(rs)
	if err != nil {
		b.Fatal(err)
	}
	ws := newWriterSchema(rs, root)
	c, err := NewCodec(1, rs)
	if err != nil {
		b.Fatal(err)
	}
	g, err := gen.New("purchases", gen.Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	ev := g.Next()
	ev["processed_at"] = time.Now().UTC().Truncate(time.Millisecond)
	v, err := c.AppendEncode(nil, ev)
	if err != nil {
		b.Fatal(err)
	}
	r := NewRegistry(nil)
	keep := (&Projection{fields: []string{"event_time", "country", "amount"}}).plan(ws)
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.decodeBody(ws, v[5:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("projected", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.decodeProjected(ws, v[5:], keep); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestDecodeIntoReusesTheMap(t *testing.T) {
	fast, _, c := writerSchemas(t, mixedAvsc)
	r := NewRegistry(nil)
	r.byID.Store(1, fast)
	enc := func(v map[string]any) []byte {
		t.Helper()
		b, err := c.AppendEncode(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	base := map[string]any{"b": true, "i": 1, "l": int64(2), "f": float32(3), "d": 4.0, "s": "x", "raw": []byte{1},
		"e": "red", "n": nil, "ts": time.UnixMilli(5).UTC(), "us": time.UnixMicro(6).UTC(), "either": "y"}
	withOpt := maps.Clone(base)
	withOpt["opt"] = "o"
	withOpt["inner"] = map[string]any{"x": 7, "tag": "blue"}
	tests := []struct {
		name string
		in   []byte
		dst  map[string]any
	}{
		{name: "nil dst", in: enc(base)},
		{name: "stale keys cleared", in: enc(base), dst: map[string]any{"stale": 1, "opt": "old"}},
		{name: "fuller record into a used map", in: enc(withOpt), dst: map[string]any{"b": false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, _, err := r.Decode(context.Background(), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, id, err := r.DecodeInto(context.Background(), tc.in, tc.dst)
			if err != nil || id != 1 {
				t.Fatalf("DecodeInto: id %d, err %v", id, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %#v\nwant %#v", got, want)
			}
			if tc.dst != nil && reflect.ValueOf(got).UnsafePointer() != reflect.ValueOf(tc.dst).UnsafePointer() {
				t.Fatalf("dst was not reused")
			}
		})
	}
	t.Run("malformed", func(t *testing.T) {
		b := enc(base)
		m, _, err := r.DecodeInto(context.Background(), b[:len(b)-1], map[string]any{"x": 1})
		if !errors.Is(err, ErrMalformed) || m != nil {
			t.Fatalf("m %v, err %v; want nil and ErrMalformed", m, err)
		}
	})
}

// FuzzDecodeProjected: on any body, a projected decode fails exactly when the whole
// decode fails, and otherwise holds the kept fields' values.
func FuzzDecodeProjected(f *testing.F) {
	f.Add(uint8(0), uint16(0x5555), []byte{1, 2, 3})
	f.Add(uint8(1), uint16(0x0003), []byte("\x02a\x02b\x02c"))
	clean, err := Clean(func() string { s, _ := Builtin("purchases.avsc"); return s }())
	if err != nil {
		f.Fatal(err)
	}
	var schemas []*writerSchema
	for _, avsc := range []string{mixedAvsc, clean} {
		rs, err := parseRecord(avsc)
		if err != nil {
			f.Fatal(err)
		}
		root, err := compileRecord(rs)
		if err != nil {
			f.Fatal(err)
		}
		schemas = append(schemas, newWriterSchema(rs, root))
	}
	f.Fuzz(func(t *testing.T, which uint8, mask uint16, body []byte) {
		ws := schemas[int(which)%len(schemas)]
		keep := make([]bool, len(ws.root.rec.fields))
		for i := range keep {
			keep[i] = mask&(1<<(i%16)) != 0
		}
		sameProjected(t, ws, keep, body)
	})
}
