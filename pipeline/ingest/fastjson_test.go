package ingest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/gen"
)

// fastJSONSeeds are bodies the fast parser must decode exactly as the general decoder,
// or decline.
var fastJSONSeeds = []string{
	`{"user_id":"u1","amount":12.5,"currency":"EUR","country":"DE","quantity":2}`,
	`[{"a":1},{"b":[1,2,{"c":null}]},{"d":true,"e":false}]`,
	`  {"a" : -0 , "b": 1e5, "c": 1E+5, "d": 0.25e-3, "e": 12345678901234567890123} `,
	`{"a":1,"a":2}`,
	`[]`, `{}`, `[[]]`, `[{}]`, `null`, `"x"`, `1`, `-`, `01`, `1.`, `.5`, `1e`, `-a`,
	`{"a":"\u00e9"}`, `{"a":"é ü 中 \u2028"}`, "{\"a\":\"\u2028\"}", `{"a":"tab	in"}`,
	`{"a":"q\"uote"}`, `{"a":1}x`, `{"a":1} {"b":2}`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `{a:1}`,
	`{"a":tru}`, `{"a":nul}`, `{"a":[1 2]}`, `[` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 41),
	`{"a":1.5E-7,"b":-12,"c":0}`, "\t\r\n{\"a\"\n:\n1}\n",
}

// checkFastMatches fails when parseFast accepts b but the general decoder does not, or
// decodes it to something else.
func checkFastMatches(t *testing.T, b []byte) {
	t.Helper()
	fast, ok := parseFast(b)
	if !ok {
		return
	}
	slow, err := decodeGeneral(b)
	if err != nil {
		t.Fatalf("parseFast accepted %q, the general decoder refused it: %v", b, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("parseFast(%q) = %#v, the general decoder gives %#v", b, fast, slow)
	}
}

func TestParseFastMatchesDecoder(t *testing.T) {
	for _, s := range fastJSONSeeds {
		checkFastMatches(t, []byte(s))
	}
	// Generated events of every built-in topic, one at a time and as batches.
	for _, topic := range gen.Topics() {
		g, err := gen.New(topic, gen.Options{Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		var batch bytes.Buffer
		batch.WriteByte('[')
		for i := range 200 {
			b, err := json.Marshal(g.Next())
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := parseFast(b); !ok {
				t.Fatalf("parseFast declined a generated %s event: %s", topic, b)
			}
			checkFastMatches(t, b)
			if i > 0 {
				batch.WriteByte(',')
			}
			batch.Write(b)
		}
		batch.WriteByte(']')
		checkFastMatches(t, batch.Bytes())
	}
}

// The cases parseFast must leave to the general decoder, so the client gets its wording.
func TestParseFastDeclines(t *testing.T) {
	for _, s := range []string{`{"a":1}x`, `{"a":1,}`, `01`, `{"a":"q\"uote"}`, `[1,]`,
		"{\"a\":\"\xff\"}", `[` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 41)} {
		if _, ok := parseFast([]byte(s)); ok {
			t.Errorf("parseFast accepted %q", s)
		}
	}
}

func FuzzParseFastMatchesDecoder(f *testing.F) {
	for _, s := range fastJSONSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if bytes.IndexByte(b, 0) >= 0 {
			return // decodeBody refuses NUL bytes before any decoder sees them
		}
		checkFastMatches(t, b)
	})
}
