package gen_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/gen"
)

// FuzzGenerator checks that any Options give valid events, and invalid events that break
// exactly what they say.
func FuzzGenerator(f *testing.F) {
	f.Add(uint64(0), 0, 0, 0, int64(0), int64(0), uint8(0))
	f.Add(uint64(1), 1, 1, 1, int64(1), t0.UnixMilli(), uint8(1))
	f.Add(uint64(1<<63), 1<<40, 1<<40, 1<<40, int64(time.Hour), int64(-1), uint8(2))
	f.Fuzz(func(t *testing.T, seed uint64, users, urls, products int, skew, nowMs int64, topic uint8) {
		if users < 0 || urls < 0 || products < 0 || skew < 0 {
			t.Skip("rejected by New")
		}
		// Keep times where RFC 3339 and ULIDs work: 1970 .. 9000, and now - skew >= 1970.
		const maxMs = 221845392000000 // 9000-01-01
		ms := nowMs % maxMs
		if ms < 0 {
			ms = -ms
		}
		skew %= int64(1000 * time.Hour)
		now := time.UnixMilli(ms).UTC().Add(time.Duration(skew))
		name := gen.Topics()[int(topic)%3]
		o := gen.Options{Seed: seed, Users: users, URLs: urls, Products: products,
			Now: fixed(now), MaxSkew: time.Duration(skew)}
		g := mustNew(t, name, o)
		lim := limits{users: users, products: products, now: now, maxSkew: o.MaxSkew}
		if lim.users == 0 {
			lim.users = gen.DefaultUsers
		}
		if lim.products == 0 {
			lim.products = gen.DefaultProducts
		}
		for range 20 {
			if p := problems(name, g.Next(), lim); p != nil {
				t.Fatalf("%s %+v: %v", name, o, p)
			}
			ev, what := g.NextInvalid()
			field, _, _ := strings.Cut(what, ": ")
			if p := problems(name, ev, lim); len(p) != 1 || !strings.HasPrefix(p[0], field+": ") {
				t.Fatalf("NextInvalid said %q; validator found %v", what, p)
			}
		}
	})
}
