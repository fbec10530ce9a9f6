package gen_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pipeline/gen"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 123_456_789, time.UTC)

// fixed returns a clock stopped at t.
func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

// ticking returns a clock that advances by step on every call, starting at t.
func ticking(t time.Time, step time.Duration) func() time.Time {
	return func() time.Time { t = t.Add(step); return t }
}

func mustNew(t testing.TB, topic string, o gen.Options) *gen.Generator {
	t.Helper()
	g, err := gen.New(topic, o)
	if err != nil {
		t.Fatalf("New(%q): %v", topic, err)
	}
	return g
}

func take(g *gen.Generator, n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

func TestTopics(t *testing.T) {
	want := []string{"page_views", "clicks", "purchases"}
	if got := gen.Topics(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Topics() = %v, want %v", got, want)
	}
	gen.Topics()[0] = "changed"
	if gen.Topics()[0] != "page_views" {
		t.Fatal("Topics() returns shared state")
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name, topic string
		o           gen.Options
		wantErr     string
	}{
		{"unknown topic", "orders", gen.Options{}, `unknown topic "orders"`},
		{"empty topic", "", gen.Options{}, "unknown topic"},
		{"negative users", "clicks", gen.Options{Users: -1}, "users: must be >= 0"},
		{"negative urls", "clicks", gen.Options{URLs: -5}, "urls: must be >= 0"},
		{"negative products", "purchases", gen.Options{Products: -1}, "products: must be >= 0"},
		{"negative skew", "page_views", gen.Options{MaxSkew: -time.Second}, "max_skew: must be >= 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := gen.New(tc.topic, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New() = %v, %v; want error containing %q", g, err, tc.wantErr)
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	for _, topic := range gen.Topics() {
		t.Run(topic, func(t *testing.T) {
			o := gen.Options{Seed: 7, Now: ticking(t0, 3*time.Millisecond), MaxSkew: 2 * time.Second}
			a := take(mustNew(t, topic, o), 500)
			o.Now = ticking(t0, 3*time.Millisecond)
			b := take(mustNew(t, topic, o), 500)
			if !reflect.DeepEqual(a, b) {
				t.Fatal("same seed and clock gave different events")
			}
			o.Seed, o.Now = 8, ticking(t0, 3*time.Millisecond)
			c := take(mustNew(t, topic, o), 500)
			same := 0
			for i := range a {
				if a[i]["event_id"] == c[i]["event_id"] {
					same++
				}
			}
			if same != 0 || reflect.DeepEqual(a, c) {
				t.Fatalf("seeds 7 and 8 share %d of 500 event ids", same)
			}
		})
	}
}

func TestEventIDsUniqueAcrossTopics(t *testing.T) {
	seen := map[string]string{}
	for _, topic := range gen.Topics() {
		g := mustNew(t, topic, gen.Options{Seed: 1, Now: fixed(t0)})
		for _, ev := range take(g, 3000) {
			id := ev["event_id"].(string)
			if prev, dup := seen[id]; dup {
				t.Fatalf("event_id %s of %s already used by %s", id, topic, prev)
			}
			seen[id] = topic
		}
	}
}

func TestEveryEventValid(t *testing.T) {
	tests := []struct {
		name string
		o    gen.Options
	}{
		{"defaults", gen.Options{Seed: 1}},
		{"skewed", gen.Options{Seed: 2, MaxSkew: 10 * time.Second}},
		{"tiny", gen.Options{Seed: 3, Users: 1, URLs: 1, Products: 1}},
		{"small catalog", gen.Options{Seed: 4, URLs: 5, Products: 3, Users: 50}},
		{"large", gen.Options{Seed: 5, Users: 1_000_000, URLs: 100_000, Products: 50_000}},
	}
	for _, tc := range tests {
		for _, topic := range gen.Topics() {
			t.Run(tc.name+"/"+topic, func(t *testing.T) {
				o := tc.o
				o.Now = fixed(t0)
				g := mustNew(t, topic, o)
				lim := limits{users: o.Users, products: o.Products, now: t0, maxSkew: o.MaxSkew}
				if lim.users == 0 {
					lim.users = gen.DefaultUsers
				}
				if lim.products == 0 {
					lim.products = gen.DefaultProducts
				}
				for i := range 2000 {
					ev := g.Next()
					if p := problems(topic, ev, lim); p != nil {
						t.Fatalf("event %d %v: %v", i, ev, p)
					}
				}
			})
		}
	}
}

func TestEventTime(t *testing.T) {
	g := mustNew(t, gen.PageViews, gen.Options{Now: fixed(t0)})
	if got, want := g.Next()["event_time"], "2026-11-27T10:00:00.123Z"; got != want {
		t.Fatalf("event_time = %v, want %v", got, want)
	}
	// A non-UTC clock still gives UTC.
	g = mustNew(t, gen.PageViews, gen.Options{Now: fixed(t0.In(time.FixedZone("X", 3600)))})
	if got, want := g.Next()["event_time"], "2026-11-27T10:00:00.123Z"; got != want {
		t.Fatalf("event_time = %v, want %v", got, want)
	}
	// With skew, times spread over [now-skew, now].
	g = mustNew(t, gen.PageViews, gen.Options{Now: fixed(t0), MaxSkew: time.Minute})
	var lo, hi time.Time
	for range 5000 {
		et, _ := time.Parse(time.RFC3339, g.Next()["event_time"].(string))
		if lo.IsZero() || et.Before(lo) {
			lo = et
		}
		if et.After(hi) {
			hi = et
		}
	}
	if hi.Sub(lo) < 55*time.Second {
		t.Fatalf("skewed event times span only %s", hi.Sub(lo))
	}
}

func TestSessionsSharedAcrossTopics(t *testing.T) {
	// One seed, one clock: a user's session (and device, country) agree in every topic.
	type who struct{ session, device, country string }
	byUser := map[string]who{}
	for _, topic := range gen.Topics() {
		g := mustNew(t, topic, gen.Options{Seed: 9, Users: 20, Now: fixed(t0)})
		for _, ev := range take(g, 500) {
			w := who{ev["session_id"].(string), ev["device"].(string), ev["country"].(string)}
			u := ev["user_id"].(string)
			if prev, ok := byUser[u]; ok && prev != w {
				t.Fatalf("%s %s: %+v, earlier %+v", topic, u, w, prev)
			}
			byUser[u] = w
		}
	}
	// Two hours later every user is in a new session.
	g := mustNew(t, gen.Clicks, gen.Options{Seed: 9, Users: 20, Now: fixed(t0.Add(2 * time.Hour))})
	for _, ev := range take(g, 200) {
		if byUser[ev["user_id"].(string)].session == ev["session_id"] {
			t.Fatalf("%s kept session %s for two hours", ev["user_id"], ev["session_id"])
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, topic := range gen.Topics() {
		t.Run(topic, func(t *testing.T) {
			g := mustNew(t, topic, gen.Options{Seed: 3, Now: fixed(t0)})
			evs := take(g, 50)
			b, err := json.Marshal(evs)
			if err != nil {
				t.Fatal(err)
			}
			var back []map[string]any
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			for i := range evs {
				if len(back[i]) != len(gen.Fields(topic)) {
					t.Fatalf("event %d decodes to %d fields: %s", i, len(back[i]), b)
				}
			}
		})
	}
}

func TestFields(t *testing.T) {
	tests := []struct {
		topic string
		want  []string
	}{
		{"page_views", []string{"country", "device", "duration_ms", "event_id", "event_time", "referrer", "session_id", "url", "user_id"}},
		{"clicks", []string{"country", "device", "element", "event_id", "event_time", "session_id", "url", "user_id", "x", "y"}},
		{"purchases", []string{"amount", "country", "currency", "device", "event_id", "event_time", "items", "order_id", "product_id", "session_id", "user_id"}},
		{"nope", nil},
	}
	for _, tc := range tests {
		t.Run(tc.topic, func(t *testing.T) {
			if got := gen.Fields(tc.topic); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Fields(%q) = %v, want %v", tc.topic, got, tc.want)
			}
		})
	}
}
