package schema

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/pipeline/gen"
)

// codecPair compiles avsc into a Codec with the fast encoder and one without.
func codecPair(t *testing.T, avsc string) (fast, slow *Codec) {
	t.Helper()
	rs, err := parseRecord(avsc)
	if err != nil {
		t.Fatal(err)
	}
	fast, err = NewCodec(9, rs)
	if err != nil {
		t.Fatal(err)
	}
	slow, err = NewCodec(9, rs)
	if err != nil {
		t.Fatal(err)
	}
	slow.st.fast = false
	return fast, slow
}

// sameEncode fails unless both codecs give the same bytes or the same error for v.
func sameEncode(t *testing.T, fast, slow *Codec, v map[string]any) {
	t.Helper()
	got, gerr := fast.AppendEncode(nil, v)
	want, werr := slow.AppendEncode(nil, v)
	if fmt.Sprint(gerr) != fmt.Sprint(werr) || !bytes.Equal(got, want) {
		t.Fatalf("value %#v:\nfast  %x %v\nhamba %x %v", v, got, gerr, want, werr)
	}
}

func TestEncodeFastMatchesHambaOnBuiltins(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC) }
	for _, topic := range gen.Topics() {
		for _, clean := range []bool{false, true} {
			name := topic
			if clean {
				name += ".clean"
			}
			t.Run(name, func(t *testing.T) {
				avsc, _ := Builtin(topic + ".avsc")
				if clean {
					var err error
					if avsc, err = Clean(avsc); err != nil {
						t.Fatal(err)
					}
				}
				fast, slow := codecPair(t, avsc)
				if !fast.st.fast {
					t.Fatalf("%s is not fast-encodable", name)
				}
				g, err := gen.New(topic, gen.Options{Seed: 11, Now: now})
				if err != nil {
					t.Fatal(err)
				}
				for i := range 100 {
					ev, err := fast.FromJSON(g.Next())
					if err != nil {
						t.Fatal(err)
					}
					if clean {
						ev["processed_at"] = now()
					}
					switch i % 4 {
					case 1: // optional fields absent: defaults
						delete(ev, "referrer")
						delete(ev, "duration_ms")
						delete(ev, "items")
					case 2: // optional fields null
						for _, k := range []string{"referrer", "duration_ms"} {
							if _, ok := ev[k]; ok {
								ev[k] = nil
							}
						}
					case 3: // near-miss types and bad values take the hamba path
						ev["user_id"] = []any{int64(5), nil, 3.5}[i%3]
						ev["event_time"] = "2026-11-27T10:00:00Z"
						if _, ok := ev["amount"]; ok {
							ev["amount"] = 12
						}
						if _, ok := ev["device"]; ok && i%8 == 3 {
							ev["device"] = "toaster"
						}
						if _, ok := ev["items"]; ok {
							ev["items"] = int64(3)
						}
					}
					if i%4 != 3 && !fast.st.root.rec.encodeFast(avro.NewWriter(nil, 64), ev) {
						t.Fatalf("a well-typed event took the hamba path: %#v", ev)
					}
					sameEncode(t, fast, slow, ev)
				}
			})
		}
	}
}

func TestEncodeFastMatchesHambaOnEveryKind(t *testing.T) {
	// mixedAvsc without its [string, long] union, which only the hamba path handles.
	avsc := strings.Replace(mixedAvsc, `{"name":"either","type":["string","long"]},`, "", 1)
	fast, slow := codecPair(t, avsc)
	if !fast.st.fast {
		t.Fatal("not fast-encodable")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 200 {
		v := map[string]any{
			"b": i%2 == 0, "i": int(rng.Int32()), "l": rng.Int64() - 1<<62, "f": float32(rng.NormFloat64()),
			"d": rng.NormFloat64() * 1e9, "s": strings.Repeat("x", i%7), "raw": []byte{byte(i), 0, 255},
			"e": []string{"red", "green", "blue"}[i%3], "n": nil,
			"ts": time.Unix(0, rng.Int64N(4e18)-1e18).UTC(), "us": time.Unix(0, rng.Int64N(4e18)-1e18),
		}
		switch i % 10 {
		case 1:
			v["opt"] = "y"
		case 2:
			v["inner"] = map[string]any{"x": int32(i), "tag": "green"}
		case 3:
			v["inner"] = map[string]any{"x": i}
		case 4:
			v["i"] = math.MaxInt32 + 1 // out of range: hamba decides
		case 5:
			v["l"] = int32(7)
		case 6:
			v["f"] = 1.5
		case 7:
			delete(v, "s") // no default: hamba's error
		case 8:
			v["inner"] = map[string]any{"tag": "blue"}
		case 9:
			v["n"] = 0
		}
		sameEncode(t, fast, slow, v)
	}
}

func TestFastEncodable(t *testing.T) {
	tests := []struct {
		name string
		avsc string
		want bool
	}{
		{"nullable", `{"type":"record","name":"R","fields":[{"name":"a","type":["null","string"]}]}`, true},
		{"two branches", `{"type":"record","name":"R","fields":[{"name":"a","type":["string","long"]}]}`, false},
		{"array", `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"int"}}]}`, false},
		{"date", `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"int","logicalType":"date"}}]}`, false},
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
			if got := fastEncodable(root); got != tc.want {
				t.Errorf("fastEncodable = %v, want %v", got, tc.want)
			}
		})
	}
}
