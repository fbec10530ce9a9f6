package harness_test

import (
	"math"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/stream"
)

// behind returns, for every event, how far it is behind the largest time its own source
// produced before it (0 for a source's first event, or when it is ahead).
func behindOwnSource(evs []stream.Event) []int64 {
	maxSeen := map[string]int64{}
	out := make([]int64, len(evs))
	for i, e := range evs {
		if m, ok := maxSeen[e.Source]; ok {
			out[i] = max(0, m-e.Time)
			if e.Time > m {
				maxSeen[e.Source] = e.Time
			}
		} else {
			maxSeen[e.Source] = e.Time
		}
	}
	return out
}

func TestDisorderBounds(t *testing.T) {
	cases := []struct {
		name string
		opts harness.DisorderOptions
	}{
		{"one source", harness.DisorderOptions{Sources: 1, Groups: 3, Events: 2000, Step: 100, MaxDisorder: 500, Grace: 50}},
		{"three sources", harness.DisorderOptions{Sources: 3, Groups: 5, Events: 2000, Step: 100, MaxDisorder: 500, Grace: 50}},
		{"lagging sources", harness.DisorderOptions{Sources: 3, Events: 2000, Step: 10, MaxDisorder: 30, SourceLag: 5000}},
		{"no disorder", harness.DisorderOptions{Sources: 2, Events: 1000, Step: 5}},
		{"negative start", harness.DisorderOptions{Sources: 2, Events: 500, Start: -1000, Step: 2, MaxDisorder: 4}},
		{"with late events", harness.DisorderOptions{Sources: 2, Events: 4000, Step: 100, MaxDisorder: 300, Grace: 100, LateFraction: 0.1}},
		{"all late", harness.DisorderOptions{Sources: 1, Events: 1000, Step: 100, MaxDisorder: 300, Grace: 100, LateFraction: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(5) {
				o := tc.opts
				o.Seed = seed
				evs := harness.Disorder(o)
				if len(evs) != o.Events {
					t.Fatalf("seed %d: %d events, want %d", seed, len(evs), o.Events)
				}
				late := 0
				for i, d := range behindOwnSource(evs) {
					switch {
					case d <= o.MaxDisorder:
					case d > o.MaxDisorder+o.Grace && o.LateFraction > 0:
						late++
					default:
						t.Fatalf("seed %d event %d (%s t=%d) is %d behind its source: want <= %d or > %d",
							seed, i, evs[i].Source, evs[i].Time, d, o.MaxDisorder, o.MaxDisorder+o.Grace)
					}
				}
				// Every event but each source's first may be made late.
				want := o.LateFraction * float64(o.Events)
				if math.Abs(float64(late)-want) > 4*math.Sqrt(want+1)+float64(o.Sources) {
					t.Errorf("seed %d: %d late events, want about %.0f", seed, late, want)
				}
			}
		})
	}
}

func TestDisorderShape(t *testing.T) {
	o := harness.DisorderOptions{Seed: 7, Sources: 3, Groups: 4, Events: 3000, Start: 1_000_000, Step: 50, MaxDisorder: 100, Users: 6, NullFraction: 0.2}
	evs := harness.Disorder(o)
	sources, groups, users := map[string]int{}, map[string]bool{}, map[any]bool{}
	nullAmount := 0
	for i, e := range evs {
		sources[e.Source]++
		if len(e.GroupValues) != 1 || e.Group != stream.GroupKey(e.GroupValues) {
			t.Fatalf("event %d: group %q values %q", i, e.Group, e.GroupValues)
		}
		groups[e.GroupValues[0]] = true
		if a, ok := e.Values["amount"]; ok {
			if _, isFloat := a.(float64); !isFloat {
				t.Fatalf("event %d: amount %T", i, a)
			}
		} else {
			nullAmount++
		}
		if u, ok := e.Values["user_id"]; ok {
			users[u] = true
		}
		if i > 0 && e.IngestTS <= evs[i-1].IngestTS {
			t.Fatalf("event %d: ingest ts %d not increasing", i, e.IngestTS)
		}
	}
	if !slices.Equal(harness.DisorderSourceIDs(3), []string{"src/0", "src/1", "src/2"}) {
		t.Errorf("source ids %q", harness.DisorderSourceIDs(3))
	}
	for _, id := range harness.DisorderSourceIDs(3) {
		if sources[id] < 800 {
			t.Errorf("source %s has %d events", id, sources[id])
		}
	}
	if len(sources) != 3 || len(groups) != 4 || len(users) != 6 {
		t.Errorf("got %d sources, %d groups, %d users; want 3, 4, 6", len(sources), len(groups), len(users))
	}
	if nullAmount < 450 || nullAmount > 750 {
		t.Errorf("%d events without amount, want about 600", nullAmount)
	}
	span := evs[len(evs)-1].Time - o.Start
	if mean := float64(span) / float64(len(evs)); mean < 40 || mean > 60 {
		t.Errorf("mean step %.1f, want about 50", mean)
	}
}

func TestDisorderDeterministic(t *testing.T) {
	o := harness.DisorderOptions{Seed: 42, Sources: 2, Groups: 3, Events: 200, Step: 10, MaxDisorder: 30, LateFraction: 0.1, Grace: 5}
	a, b := harness.Disorder(o), harness.Disorder(o)
	for i := range a {
		if a[i].Time != b[i].Time || a[i].Source != b[i].Source || a[i].Group != b[i].Group || a[i].EventID != b[i].EventID {
			t.Fatalf("event %d differs between runs: %+v vs %+v", i, a[i], b[i])
		}
	}
	o.Seed = 43
	c := harness.Disorder(o)
	same := 0
	for i := range a {
		if a[i].Time == c[i].Time {
			same++
		}
	}
	if same == len(a) {
		t.Error("seeds 42 and 43 gave the same times")
	}
}
