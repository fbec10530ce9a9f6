package gen_test

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/gen"
)

func TestNextInvalid(t *testing.T) {
	common := []string{
		"device: not one of desktop|mobile|tablet",
		"event_time: 24h in the future",
		"event_time: not RFC 3339",
		"user_id: missing",
		"user_id: wrong type (number)",
	}
	tests := []struct {
		topic string
		own   []string
	}{
		{gen.PageViews, []string{"duration_ms: not an integer", "duration_ms: wrong type (string)"}},
		{gen.Clicks, []string{"x: wrong type (string)", "y: not an integer"}},
		{gen.Purchases, []string{
			"amount: negative", "amount: wrong type (string)",
			"currency: not one of EUR|USD|GBP|JPY|CHF", "items: wrong type (string)",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.topic, func(t *testing.T) {
			g := mustNew(t, tc.topic, gen.Options{Seed: 4, Now: fixed(t0)})
			lim := limits{users: gen.DefaultUsers, products: gen.DefaultProducts, now: t0}
			seen := map[string]bool{}
			for range 400 {
				ev, what := g.NextInvalid()
				seen[what] = true
				field, _, ok := strings.Cut(what, ": ")
				if !ok {
					t.Fatalf("description %q is not <field>: <problem>", what)
				}
				p := problems(tc.topic, ev, lim)
				if len(p) != 1 || !strings.HasPrefix(p[0], field+": ") {
					t.Fatalf("NextInvalid said %q; validator found %v in %v", what, p, ev)
				}
			}
			want := slices.Sorted(slices.Values(append(slices.Clone(common), tc.own...)))
			got := slices.Sorted(maps.Keys(seen))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("breakages seen %v, want %v", got, want)
			}
		})
	}
}

func TestNextInvalidDeterministic(t *testing.T) {
	run := func() []string {
		g := mustNew(t, gen.Purchases, gen.Options{Seed: 12, Now: fixed(t0)})
		var out []string
		for range 50 {
			_, what := g.NextInvalid()
			out = append(out, what)
		}
		return out
	}
	if a, b := run(), run(); !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different breakages:\n%v\n%v", a, b)
	}
}
