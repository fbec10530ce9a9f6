package ingest

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/goccy/go-json"
)

func TestBodyFormatOf(t *testing.T) {
	tests := []struct {
		name   string
		ct     string
		want   bodyFormat
		wantOK bool
	}{
		{"json", "application/json", formatJSON, true},
		{"json charset", "application/json; charset=utf-8", formatJSON, true},
		{"json charset upper", "Application/JSON; charset=UTF-8", formatJSON, true},
		{"ndjson", "application/x-ndjson", formatNDJSON, true},
		{"ndjson charset", "application/x-ndjson;charset=utf8", formatNDJSON, true},
		{"empty", "", 0, false},
		{"text", "text/plain", 0, false},
		{"latin1", "application/json; charset=iso-8859-1", 0, false},
		{"malformed", "application/json; ===", 0, false},
		{"cloudevents", "application/cloudevents+json", 0, false},
		{"form", "application/x-www-form-urlencoded", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := bodyFormatOf(tt.ct)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("bodyFormatOf(%q) = %v, %v; want %v, %v", tt.ct, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestDecodeBody(t *testing.T) {
	tests := []struct {
		name         string
		format       bodyFormat
		body         string
		wantErr      int // status of the request error, 0 for none
		wantEvents   int
		wantProblems []int // indexes of events that are not objects
		wantSingle   bool
	}{
		{name: "object", format: formatJSON, body: `{"a":1}`, wantEvents: 1, wantSingle: true},
		{name: "object with space", format: formatJSON, body: " \n{\"a\":1}\r\n\t ", wantEvents: 1, wantSingle: true},
		{name: "array", format: formatJSON, body: `[{"a":1},{"b":2}]`, wantEvents: 2},
		{name: "array of one", format: formatJSON, body: `[{"a":1}]`, wantEvents: 1},
		{name: "array with scalars", format: formatJSON, body: `[{"a":1},2,null,[]]`, wantEvents: 4, wantProblems: []int{1, 2, 3}},
		{name: "empty", format: formatJSON, body: ``, wantErr: 400},
		{name: "blank", format: formatJSON, body: " \n\t", wantErr: 400},
		{name: "empty array", format: formatJSON, body: `[]`, wantErr: 400},
		{name: "null", format: formatJSON, body: `null`, wantErr: 400},
		{name: "string", format: formatJSON, body: `"x"`, wantErr: 400},
		{name: "number", format: formatJSON, body: `12`, wantErr: 400},
		{name: "truncated", format: formatJSON, body: `{"a":`, wantErr: 400},
		{name: "trailing object", format: formatJSON, body: `{"a":1} {"b":2}`, wantErr: 400},
		{name: "trailing brace", format: formatJSON, body: `{"a":1}}`, wantErr: 400},
		{name: "trailing garbage", format: formatJSON, body: `[{"a":1}]x`, wantErr: 400},
		{name: "trailing nbsp", format: formatJSON, body: "{}\u00a0", wantErr: 400},
		{name: "nul byte", format: formatJSON, body: "{}\x00", wantErr: 400},
		{name: "nul in string", format: formatJSON, body: "{\"a\":\"\x00\"}", wantErr: 400},
		{name: "invalid utf-8", format: formatJSON, body: "{\"a\":\"\xff\"}", wantErr: 400},
		// goccy/go-json issue 609: its stream decoder panics on this.
		{name: "long invalid utf-8 key", format: formatJSON, body: "{\"" + strings.Repeat("\xae", 1024), wantErr: 400},
		{name: "long invalid utf-8 ndjson", format: formatNDJSON, body: "{\"" + strings.Repeat("\xe2", 2000) + "\":1}", wantErr: 400},
		{name: "deep nesting", format: formatJSON, body: strings.Repeat("[", 100000), wantErr: 400},
		{name: "too many", format: formatJSON, body: "[" + strings.Repeat("{},", MaxEventsPerRequest) + "{}]", wantErr: 413},
		{name: "max events", format: formatJSON, body: "[" + strings.Repeat("{},", MaxEventsPerRequest-1) + "{}]", wantEvents: MaxEventsPerRequest},
		{name: "ndjson", format: formatNDJSON, body: "{\"a\":1}\n{\"b\":2}\n", wantEvents: 2},
		{name: "ndjson crlf and blanks", format: formatNDJSON, body: "\r\n{\"a\":1}\r\n\r\n  \n{\"b\":2}", wantEvents: 2},
		{name: "ndjson one", format: formatNDJSON, body: `{"a":1}`, wantEvents: 1},
		{name: "ndjson bad line", format: formatNDJSON, body: "{\"a\":1}\n{\"b\":\n[1]\n3", wantEvents: 4, wantProblems: []int{1, 2, 3}},
		{name: "ndjson two per line", format: formatNDJSON, body: "{} {}\n{}", wantEvents: 2, wantProblems: []int{0}},
		{name: "ndjson multi-line object", format: formatNDJSON, body: "{\n\"a\":1}", wantEvents: 2, wantProblems: []int{0, 1}},
		{name: "ndjson blank", format: formatNDJSON, body: "\n\n \r\n", wantErr: 400},
		{name: "ndjson too many", format: formatNDJSON, body: strings.Repeat("{}\n", MaxEventsPerRequest+1), wantErr: 413},
		{name: "ndjson max", format: formatNDJSON, body: strings.Repeat("{}\n", MaxEventsPerRequest), wantEvents: MaxEventsPerRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, rerr := decodeBody(tt.format, []byte(tt.body))
			if tt.wantErr != 0 {
				if rerr == nil || rerr.problem.Status != tt.wantErr {
					t.Fatalf("decodeBody error = %v, want status %d", rerr, tt.wantErr)
				}
				return
			}
			if rerr != nil {
				t.Fatalf("decodeBody: %v", rerr)
			}
			if len(b.events) != tt.wantEvents || b.single != tt.wantSingle {
				t.Errorf("events = %d single = %v, want %d %v", len(b.events), b.single, tt.wantEvents, tt.wantSingle)
			}
			var got []int
			for _, p := range b.problems {
				got = append(got, p.index)
				if b.events[p.index] != nil {
					t.Errorf("event %d has a problem and a value", p.index)
				}
			}
			if !slices.Equal(got, tt.wantProblems) {
				t.Errorf("problems at %v, want %v (%+v)", got, tt.wantProblems, b.problems)
			}
		})
	}
}

func TestDecodeBodyNumbers(t *testing.T) {
	b, rerr := decodeBody(formatJSON, []byte(`{"i": 12345678901234567890, "f": 1.50, "s": "x\u00e9", "n": null, "t": true}`))
	if rerr != nil {
		t.Fatal(rerr)
	}
	ev := b.events[0]
	if got, ok := ev["i"].(json.Number); !ok || got != "12345678901234567890" {
		t.Errorf("i = %#v, want json.Number", ev["i"])
	}
	if got, ok := ev["f"].(json.Number); !ok || got != "1.50" {
		t.Errorf("f = %#v, want json.Number 1.50", ev["f"])
	}
	if ev["s"] != "x\u00e9" || ev["n"] != nil || ev["t"] != true {
		t.Errorf("values = %#v", ev)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantLen int
	}{
		{"short", "abc", 3},
		{"exact", strings.Repeat("a", 200), 200},
		{"long ascii", strings.Repeat("a", 500), 203},
		{"cut inside a rune", strings.Repeat("a", 199) + "\u00e9\u00e9", 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := truncate(tt.in)
			if len(got) != tt.wantLen || !utf8.ValidString(got) {
				t.Errorf("truncate = %d bytes (valid %v), want %d", len(got), utf8.ValidString(got), tt.wantLen)
			}
		})
	}
}
