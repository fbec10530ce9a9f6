package schema

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/gen"
)

// mixedAvsc exercises every node kind decodeFast handles.
const mixedAvsc = `{"type":"record","name":"Mixed","fields":[
 {"name":"b","type":"boolean"},
 {"name":"i","type":"int"},
 {"name":"l","type":"long"},
 {"name":"f","type":"float"},
 {"name":"d","type":"double"},
 {"name":"s","type":"string"},
 {"name":"raw","type":"bytes"},
 {"name":"e","type":{"type":"enum","name":"Color","symbols":["red","green","blue"]}},
 {"name":"n","type":"null"},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"us","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"opt","type":["null","string"],"default":null},
 {"name":"either","type":["string","long"]},
 {"name":"inner","type":["null",{"type":"record","name":"Inner","fields":[
   {"name":"x","type":"int"},{"name":"tag","type":["null","Color"],"default":null}]}],"default":null}
]}`

// writerSchemas compiles avsc twice: with the fast decoder and with hamba's.
func writerSchemas(t *testing.T, avsc string) (fast, slow *writerSchema, c *Codec) {
	t.Helper()
	rs, err := parseRecord(avsc)
	if err != nil {
		t.Fatal(err)
	}
	root, err := compileRecord(rs)
	if err != nil {
		t.Fatal(err)
	}
	fast = newWriterSchema(rs, root)
	if !fast.fast {
		t.Fatalf("schema %s is not fast-decodable", rs.FullName())
	}
	slowCopy := *fast
	slowCopy.fast = false
	c, err = NewCodec(1, rs)
	if err != nil {
		t.Fatal(err)
	}
	return fast, &slowCopy, c
}

// sameDecode decodes body both ways and fails unless both fail or both give equal maps.
func sameDecode(t *testing.T, fast, slow *writerSchema, body []byte) {
	t.Helper()
	r := NewRegistry(nil)
	got, gerr := r.decodeBody(fast, body)
	want, werr := r.decodeBody(slow, body)
	if (gerr != nil) != (werr != nil) {
		t.Fatalf("body %x: fast err %v, hamba err %v", body, gerr, werr)
	}
	if gerr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("body %x:\nfast  %#v\nhamba %#v", body, got, want)
	}
}

// corruptions checks truncations and random byte changes of body.
func corruptions(t *testing.T, fast, slow *writerSchema, body []byte, rng *rand.Rand) {
	t.Helper()
	for n := range len(body) {
		sameDecode(t, fast, slow, body[:n])
	}
	for range 200 {
		b := append([]byte(nil), body...)
		for range 1 + rng.IntN(3) {
			b[rng.IntN(len(b))] = byte(rng.IntN(256))
		}
		sameDecode(t, fast, slow, b)
	}
}

func TestDecodeFastMatchesHambaOnBuiltins(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	now := func() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC) }
	for _, topic := range gen.Topics() {
		for _, clean := range []bool{false, true} {
			name := topic
			if clean {
				name += ".clean"
			}
			t.Run(name, func(t *testing.T) {
				avsc, ok := Builtin(topic + ".avsc")
				if !ok {
					t.Fatalf("no built-in schema %s", topic)
				}
				if clean {
					var err error
					if avsc, err = Clean(avsc); err != nil {
						t.Fatal(err)
					}
				}
				fast, slow, c := writerSchemas(t, avsc)
				g, err := gen.New(topic, gen.Options{Seed: 7, Now: now})
				if err != nil {
					t.Fatal(err)
				}
				for i := range 50 {
					ev := g.Next()
					if clean {
						ev["processed_at"] = now()
					}
					if i%2 == 0 {
						// Optional fields absent: their defaults (null) are encoded.
						delete(ev, "referrer")
						delete(ev, "duration_ms")
						delete(ev, "items")
					}
					v, err := c.AppendEncode(nil, ev)
					if err != nil {
						t.Fatal(err)
					}
					body := v[5:]
					sameDecode(t, fast, slow, body)
					if i < 5 {
						corruptions(t, fast, slow, body, rng)
					}
				}
			})
		}
	}
}

func TestDecodeFastMatchesHambaOnEveryKind(t *testing.T) {
	fast, slow, c := writerSchemas(t, mixedAvsc)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 100 {
		v := map[string]any{
			"b": i%2 == 0, "i": int(rng.Int32()) - 1<<30, "l": rng.Int64() - 1<<62, "f": float32(rng.NormFloat64()),
			"d": rng.NormFloat64() * 1e9, "s": string(rune('a' + i%26)), "raw": []byte{byte(i), 0, 255},
			"e": []string{"red", "green", "blue"}[i%3], "n": nil,
			"ts": time.UnixMilli(rng.Int64N(4e12) - 1e12).UTC(), "us": time.UnixMicro(rng.Int64N(4e15) - 1e15).UTC(),
		}
		if i%3 != 0 {
			v["opt"] = "x"
		}
		if i%2 == 0 {
			v["either"] = "s"
		} else {
			v["either"] = int64(-i)
		}
		if i%4 != 0 {
			inner := map[string]any{"x": i}
			if i%8 == 1 {
				inner["tag"] = "blue"
			}
			v["inner"] = inner
		}
		b, err := c.AppendEncode(nil, v)
		if err != nil {
			t.Fatalf("encode %v: %v", v, err)
		}
		sameDecode(t, fast, slow, b[5:])
		if i < 10 {
			corruptions(t, fast, slow, b[5:], rng)
		}
	}
}

func TestFastDecodable(t *testing.T) {
	tests := []struct {
		name string
		avsc string
		want bool
	}{
		{"primitives", `{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`, true},
		{"array", `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"int"}}]}`, false},
		{"map", `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"map","values":"int"}}]}`, false},
		{"fixed", `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"fixed","name":"F","size":4}}]}`, false},
		{"local timestamp", `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"long","logicalType":"local-timestamp-millis"}}]}`, false},
		{"date in a union", `{"type":"record","name":"R","fields":[{"name":"a","type":["null",{"type":"int","logicalType":"date"}]}]}`, false},
		{"recursive", `{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := parseRecord(tc.avsc)
			if err != nil {
				t.Fatal(err)
			}
			root, err := compileRecord(rs)
			if err != nil {
				t.Fatal(err)
			}
			if got := fastDecodable(root); got != tc.want {
				t.Errorf("fastDecodable = %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzDecodeFast compares the fast decoder with hamba's on arbitrary bodies of a schema
// with every kind it handles and of the built-in purchases.clean schema.
func FuzzDecodeFast(f *testing.F) {
	f.Add(uint8(0), []byte{1, 2, 3})
	f.Add(uint8(1), []byte("\x02a\x02b\x02c"))
	clean, err := Clean(func() string { s, _ := Builtin("purchases.avsc"); return s }())
	if err != nil {
		f.Fatal(err)
	}
	type pair struct{ fast, slow *writerSchema }
	var pairs []pair
	for _, avsc := range []string{mixedAvsc, clean} {
		rs, err := parseRecord(avsc)
		if err != nil {
			f.Fatal(err)
		}
		root, err := compileRecord(rs)
		if err != nil {
			f.Fatal(err)
		}
		fast := newWriterSchema(rs, root)
		slow := *fast
		slow.fast = false
		pairs = append(pairs, pair{fast, &slow})
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		p := pairs[int(which)%len(pairs)]
		sameDecode(t, p.fast, p.slow, body)
	})
}
