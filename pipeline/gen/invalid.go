package gen

import (
	"strings"
	"time"
)

// breakage turns a valid event into one with exactly one thing wrong.
type breakage struct {
	// what is returned by NextInvalid: "<field>: <what is wrong>".
	what  string
	apply func(g *Generator, ev map[string]any)
}

// badTimes are event_time strings that are not RFC 3339.
var badTimes = []string{"yesterday", "2026-13-45T25:61:00Z", "27/11/2026 10:00:00", "1732701600"}

// commonBreakages apply to every topic.
var commonBreakages = []breakage{
	{"user_id: missing", func(_ *Generator, ev map[string]any) { delete(ev, "user_id") }},
	{"user_id: wrong type (number)", func(_ *Generator, ev map[string]any) { ev["user_id"] = 42 }},
	{"event_time: not RFC 3339", func(g *Generator, ev map[string]any) {
		ev["event_time"] = badTimes[g.r.IntN(len(badTimes))]
	}},
	{"event_time: 24h in the future", func(g *Generator, ev map[string]any) {
		ev["event_time"] = g.o.Now().UTC().Add(24 * time.Hour).Format(timeLayout)
	}},
	{"device: not one of desktop|mobile|tablet", func(_ *Generator, ev map[string]any) {
		ev["device"] = "smartwatch"
	}},
}

// topicBreakages apply to one topic each.
var topicBreakages = map[string][]breakage{
	PageViews: {
		{"duration_ms: wrong type (string)", func(_ *Generator, ev map[string]any) { ev["duration_ms"] = "12s" }},
		{"duration_ms: not an integer", func(_ *Generator, ev map[string]any) { ev["duration_ms"] = 1234.5 }},
	},
	Clicks: {
		{"x: wrong type (string)", func(_ *Generator, ev map[string]any) { ev["x"] = "left" }},
		{"y: not an integer", func(_ *Generator, ev map[string]any) { ev["y"] = 10.5 }},
	},
	Purchases: {
		{"amount: negative", func(_ *Generator, ev map[string]any) { ev["amount"] = -ev["amount"].(float64) }},
		{"amount: wrong type (string)", func(_ *Generator, ev map[string]any) { ev["amount"] = "19.99" }},
		{"currency: not one of " + strings.Join(currencies, "|"), func(_ *Generator, ev map[string]any) {
			ev["currency"] = "XXX"
		}},
		{"items: wrong type (string)", func(_ *Generator, ev map[string]any) { ev["items"] = "three" }},
	},
}

// NextInvalid returns an event that is valid except for exactly one thing, and what that
// thing is as "<field>: <problem>", for example "user_id: missing", "amount: negative",
// "currency: not one of EUR|USD|GBP|JPY|CHF", "event_time: not RFC 3339" or
// "x: wrong type (string)". Which breakage comes next is drawn from the seeded stream.
//
// Most breakages violate the JSON -> Avro conversion (missing required field, wrong type,
// bad enum symbol, unparsable time); "amount: negative" is caught only by a rule such as
// min on amount, and "event_time: 24h in the future" by ingest's max-future check.
func (g *Generator) NextInvalid() (map[string]any, string) {
	ev := g.Next()
	own := topicBreakages[g.topic]
	i := g.r.IntN(len(commonBreakages) + len(own))
	var b breakage
	if i < len(commonBreakages) {
		b = commonBreakages[i]
	} else {
		b = own[i-len(commonBreakages)]
	}
	b.apply(g, ev)
	return ev, b.what
}
