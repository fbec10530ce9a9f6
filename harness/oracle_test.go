package harness_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/stream"
)

// oev builds a test event of group g from source src at time t.
func oev(src string, t int64, g string) stream.Event {
	return stream.Event{Source: src, Time: t, Group: g, GroupValues: []string{g}, EventID: fmt.Sprintf("%s@%d", g, t)}
}

// brief renders a result compactly: "g [start,end) n=count" (sessions: "[first,last]").
func resultBrief(r stream.Result) string {
	closing := ")"
	if r.End == r.Start || strings.HasPrefix(r.Group, "s:") {
		closing = "]"
	}
	s := fmt.Sprintf("%s [%d,%d%s n=%d", r.Group, r.Start, r.End, closing, r.Count)
	if r.Final {
		s += " final"
	}
	return s
}

func resultBriefs(rs []stream.Result) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, resultBrief(r))
	}
	return out
}

func tumblingSpec(size, grace int64, sources ...string) stream.Spec {
	return stream.Spec{Name: "t", Type: stream.Tumbling, Size: size, Grace: grace, Emit: stream.EmitFinal, Sources: sources}
}

func tumblingUpdatesSpec(size, grace int64, sources ...string) stream.Spec {
	s := tumblingSpec(size, grace, sources...)
	s.Emit = stream.EmitUpdates
	return s
}

func TestOracleGoldenVectors(t *testing.T) {
	hop := stream.Spec{Name: "h", Type: stream.Hopping, Size: 10, Advance: 5, Grace: 100, Emit: stream.EmitUpdates, Sources: []string{"p0"}}
	sess := func(grace int64, sources ...string) stream.Spec {
		return stream.Spec{Name: "s", Type: stream.Session, Gap: 5, Grace: grace, Emit: stream.EmitUpdates, Sources: sources}
	}
	cases := []struct {
		name     string
		spec     stream.Spec
		events   []stream.Event
		advances []harness.OracleAdvance
		finals   []string
		updates  []string
		late     []int
		open     []string
		st       int64
	}{
		{
			// Tumbling 10, grace 5 (docs/DESIGN.md#windows-and-watermarks): rows 1..7; [0,10) fires at row 5, row 6 is late at
			// the exact close instant (15 >= 10+5), [10,20) fires at row 7.
			name: "A tumbling grace 5",
			spec: tumblingUpdatesSpec(10, 5, "p0"),
			events: []stream.Event{
				oev("p0", 1, "k"), oev("p0", 9, "k"), oev("p0", 10, "k"), oev("p0", 3, "k"),
				oev("p0", 15, "k"), oev("p0", 4, "k"), oev("p0", 25, "k"),
			},
			finals: []string{"k [0,10) n=3 final", "k [10,20) n=2 final"},
			updates: []string{
				"k [0,10) n=1", "k [0,10) n=2", "k [10,20) n=1", "k [0,10) n=3",
				"k [10,20) n=2", "k [20,30) n=1",
			},
			late: []int{5},
			open: []string{"k [20,30) n=1"},
			st:   25,
		},
		{
			// 3.B: epoch-aligned hopping windows with negative starts.
			name:    "B hopping near the epoch",
			spec:    hop,
			events:  []stream.Event{oev("p0", 3, "a"), oev("p0", 12, "b")},
			updates: []string{"a [-5,5) n=1", "a [0,10) n=1", "b [5,15) n=1", "b [10,20) n=1"},
			open:    []string{"a [-5,5) n=1", "a [0,10) n=1", "b [5,15) n=1", "b [10,20) n=1"},
			st:      12,
		},
		{
			// 3.C with Sluice's close (last+gap+grace): 20 closes [10,12] (17 <= 20).
			name:    "C sessions 10 12 20",
			spec:    sess(0, "p0"),
			events:  []stream.Event{oev("p0", 10, "s:k"), oev("p0", 12, "s:k"), oev("p0", 20, "s:k")},
			finals:  []string{"s:k [10,12] n=2 final"},
			updates: []string{"s:k [10,10] n=1", "s:k [10,12] n=2", "s:k [20,20] n=1"},
			open:    []string{"s:k [20,20] n=1"},
			st:      20,
		},
		{
			// 3.C merge: p1 holds stream time at 14, so [10,12] is open when 16 bridges it
			// with [20,20].
			name: "C bridging record merges two sessions",
			spec: sess(0, "p0", "p1"),
			events: []stream.Event{
				oev("p0", 10, "s:k"), oev("p0", 12, "s:k"), oev("p0", 20, "s:k"), oev("p1", 16, "s:k"),
			},
			advances: []harness.OracleAdvance{{AfterIndex: -1, Source: "p1", Watermark: 14}},
			updates:  []string{"s:k [10,10] n=1", "s:k [10,12] n=2", "s:k [20,20] n=1", "s:k [10,20] n=4"},
			open:     []string{"s:k [10,20] n=4"},
			st:       16,
		},
		{
			// 3.C: at stream time 30 both sessions are closed and 16 is late.
			name: "C late bridging record",
			spec: sess(0, "p0", "p1"),
			events: []stream.Event{
				oev("p0", 10, "s:k"), oev("p0", 12, "s:k"), oev("p0", 20, "s:k"), oev("p1", 16, "s:k"),
			},
			advances: []harness.OracleAdvance{
				{AfterIndex: -1, Source: "p1", Watermark: 14},
				{AfterIndex: 2, Source: "p0", Watermark: 30},
				{AfterIndex: 2, Source: "p1", Watermark: 30},
			},
			finals:  []string{"s:k [10,12] n=2 final", "s:k [20,20] n=1 final"},
			updates: []string{"s:k [10,10] n=1", "s:k [10,12] n=2", "s:k [20,20] n=1"},
			late:    []int{3},
			st:      30,
		},
		{
			// 3.C: exactly gap apart joins while the session is open (grace 1).
			name:    "C exactly gap apart joins",
			spec:    sess(1, "p0"),
			events:  []stream.Event{oev("p0", 10, "s:k"), oev("p0", 15, "s:k")},
			updates: []string{"s:k [10,10] n=1", "s:k [10,15] n=2"},
			open:    []string{"s:k [10,15] n=2"},
			st:      15,
		},
		{
			// 3.C with G = 0: the record at 15 moves stream time to [10,10]'s close
			// instant, but the session is still open (not emitted), so 15 joins it and
			// the merged session is open.
			name:    "C exactly gap apart with grace 0 joins",
			spec:    sess(0, "p0"),
			events:  []stream.Event{oev("p0", 10, "s:k"), oev("p0", 15, "s:k")},
			updates: []string{"s:k [10,10] n=1", "s:k [10,15] n=2"},
			open:    []string{"s:k [10,15] n=2"},
			st:      15,
		},
		{
			// Once emitted, a session is never joined: a marker closed [10,10] first.
			name:     "C exactly gap apart after the session was emitted",
			spec:     sess(0, "p0"),
			events:   []stream.Event{oev("p0", 10, "s:k"), oev("p0", 15, "s:k")},
			advances: []harness.OracleAdvance{{AfterIndex: 0, Source: "p0", Watermark: 15}},
			finals:   []string{"s:k [10,10] n=1 final"},
			updates:  []string{"s:k [10,10] n=1", "s:k [15,15] n=1"},
			open:     []string{"s:k [15,15] n=1"},
			st:       15,
		},
		{
			// 3.C's 16 at stream time 20 on one partition: Sluice closes sessions at
			// last+gap+grace, so [10,12] was emitted at 20 (17 <= 20) and 16 joins [20,20]
			// only (Kafka Streams would merge all three).
			name: "C 16 after [10,12] was emitted",
			spec: sess(0, "p0"),
			events: []stream.Event{
				oev("p0", 10, "s:k"), oev("p0", 12, "s:k"), oev("p0", 20, "s:k"), oev("p0", 16, "s:k"),
			},
			finals:  []string{"s:k [10,12] n=2 final"},
			updates: []string{"s:k [10,10] n=1", "s:k [10,12] n=2", "s:k [20,20] n=1", "s:k [16,20] n=2"},
			open:    []string{"s:k [16,20] n=2"},
			st:      20,
		},
		{
			// 3.D: P1 unheard of keeps stream time at NoWatermark; after P1:8 it is 8.
			name:    "D two partitions",
			spec:    tumblingUpdatesSpec(10, 0, "p0", "p1"),
			events:  []stream.Event{oev("p0", 5, "k"), oev("p0", 25, "k"), oev("p1", 8, "k")},
			updates: []string{"k [0,10) n=1", "k [20,30) n=1", "k [0,10) n=2"},
			open:    []string{"k [0,10) n=2", "k [20,30) n=1"},
			st:      8,
		},
		{
			name:     "D two partitions then P1 advances",
			spec:     tumblingUpdatesSpec(10, 0, "p0", "p1"),
			events:   []stream.Event{oev("p0", 5, "k"), oev("p0", 25, "k"), oev("p1", 8, "k")},
			advances: []harness.OracleAdvance{{AfterIndex: 2, Source: "p1", Watermark: 10}},
			finals:   []string{"k [0,10) n=2 final"},
			updates:  []string{"k [0,10) n=1", "k [20,30) n=1", "k [0,10) n=2"},
			open:     []string{"k [20,30) n=1"},
			st:       10,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := harness.Oracle(tc.spec, tc.events, tc.advances...)
			check := func(what string, got, want []string) {
				t.Helper()
				if !slices.Equal(got, want) {
					t.Errorf("%s:\n got  %q\n want %q", what, got, want)
				}
			}
			check("finals", resultBriefs(got.Finals), tc.finals)
			check("updates", resultBriefs(got.Updates), tc.updates)
			check("open", resultBriefs(got.Open), tc.open)
			if !slices.Equal(got.Late, tc.late) {
				t.Errorf("late = %v, want %v", got.Late, tc.late)
			}
			if got.StreamTime != tc.st {
				t.Errorf("stream time = %d, want %d", got.StreamTime, tc.st)
			}
		})
	}
}

func TestOracleBoundaries(t *testing.T) {
	cases := []struct {
		name     string
		spec     stream.Spec
		events   []stream.Event
		advances []harness.OracleAdvance
		finals   []string
		late     []int
		open     []string
	}{
		{
			name:   "start, end-1 and end of a tumbling window",
			spec:   tumblingSpec(10, 100, "p0"),
			events: []stream.Event{oev("p0", 0, "k"), oev("p0", 9, "k"), oev("p0", 10, "k")},
			open:   []string{"k [0,10) n=2", "k [10,20) n=1"},
		},
		{
			name:   "negative times use floor division",
			spec:   tumblingSpec(10, 100, "p0"),
			events: []stream.Event{oev("p0", -11, "k"), oev("p0", -10, "k"), oev("p0", -1, "k")},
			open:   []string{"k [-20,-10) n=1", "k [-10,0) n=2"},
		},
		{
			name: "one below the close instant is accepted, the close instant is late",
			spec: tumblingSpec(10, 3, "p0"),
			events: []stream.Event{
				oev("p0", 12, "k"), oev("p0", 5, "k"), // st 12 < 13: open
				oev("p0", 13, "k"), oev("p0", 6, "k"), // st 13 >= 13: closed, late
			},
			finals: []string{"k [0,10) n=1 final"},
			late:   []int{3},
			open:   []string{"k [10,20) n=2"},
		},
		{
			name: "hopping record partly accepted is not late",
			spec: stream.Spec{Type: stream.Hopping, Size: 10, Advance: 5, Sources: []string{"p0"}},
			events: []stream.Event{
				oev("p0", 1, "k"), oev("p0", 10, "k"), // st 10 closes [0,10)
				oev("p0", 7, "k"), // [0,10) closed, [5,15) open
			},
			finals: []string{"k [-5,5) n=1 final", "k [0,10) n=1 final"},
			open:   []string{"k [5,15) n=2", "k [10,20) n=1"},
		},
		{
			name:     "watermarks never move backwards",
			spec:     tumblingSpec(10, 0, "p0"),
			events:   []stream.Event{oev("p0", 25, "k"), oev("p0", 3, "k")},
			advances: []harness.OracleAdvance{{AfterIndex: 0, Source: "p0", Watermark: 1}},
			late:     []int{1},
			open:     []string{"k [20,30) n=1"},
		},
		{
			name: "other groups close windows (shared stream time), ordered by end group start",
			spec: tumblingSpec(10, 0, "p0"),
			events: []stream.Event{
				oev("p0", 1, "b"), oev("p0", 2, "a"), oev("p0", 12, "a"), oev("p0", 35, "z"),
			},
			finals: []string{"a [0,10) n=1 final", "b [0,10) n=1 final", "a [10,20) n=1 final"},
			open:   []string{"z [30,40) n=1"},
		},
		{
			name:   "sources outside Spec.Sources never move stream time",
			spec:   tumblingSpec(10, 0, "p0"),
			events: []stream.Event{oev("p0", 1, "k"), oev("px", 30, "k"), oev("p0", 20, "k"), oev("px", 2, "k")},
			finals: []string{"k [0,10) n=1 final"},
			late:   []int{3},
			open:   []string{"k [20,30) n=1", "k [30,40) n=1"},
		},
		{
			name:     "markers before any event and after the last",
			spec:     tumblingSpec(10, 0, "p0", "p1"),
			events:   []stream.Event{oev("p0", 1, "k")},
			advances: []harness.OracleAdvance{{AfterIndex: -5, Source: "p1", Watermark: 100}, {AfterIndex: 99, Source: "p0", Watermark: 50}},
			finals:   []string{"k [0,10) n=1 final"},
		},
		{
			name: "session gap bridging from either side",
			spec: stream.Spec{Type: stream.Session, Gap: 5, Grace: 100, Sources: []string{"p0"}},
			events: []stream.Event{
				oev("p0", 20, "s:k"), oev("p0", 15, "s:k"), oev("p0", 9, "s:k"), oev("p0", 3, "s:k"), oev("p0", 12, "s:k"),
			},
			open: []string{"s:k [3,3] n=1", "s:k [9,20] n=4"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := harness.Oracle(tc.spec, tc.events, tc.advances...)
			if g := resultBriefs(got.Finals); !slices.Equal(g, tc.finals) {
				t.Errorf("finals:\n got  %q\n want %q", g, tc.finals)
			}
			if g := resultBriefs(got.Open); !slices.Equal(g, tc.open) {
				t.Errorf("open:\n got  %q\n want %q", g, tc.open)
			}
			if !slices.Equal(got.Late, tc.late) {
				t.Errorf("late = %v, want %v", got.Late, tc.late)
			}
		})
	}
}

// TestOracleHoppingMembership checks window assignment against a scan of every window
// start in a range, for many times and shapes.
func TestOracleHoppingMembership(t *testing.T) {
	for _, shape := range [][2]int64{{10, 5}, {10, 10}, {12, 4}, {7, 1}, {300000, 60000}} {
		size, adv := shape[0], shape[1]
		spec := stream.Spec{Type: stream.Hopping, Size: size, Advance: adv, Grace: math.MaxInt32, Sources: []string{"p"}}
		for _, ts := range []int64{-2*size - 1, -size, -adv - 1, -adv, -1, 0, 1, adv - 1, adv, size - 1, size, 3*size + 2} {
			var want []string
			for s := -10 * size; s <= 10*size; s++ {
				if ((s%adv)+adv)%adv == 0 && s <= ts && ts < s+size {
					want = append(want, fmt.Sprintf("k [%d,%d) n=1", s, s+size))
				}
			}
			got := resultBriefs(harness.Oracle(spec, []stream.Event{oev("p", ts, "k")}).Open)
			if !slices.Equal(got, want) {
				t.Errorf("size %d advance %d t %d: got %q, want %q", size, adv, ts, got, want)
			}
		}
	}
}

func TestOracleMeasures(t *testing.T) {
	spec := tumblingSpec(10, 0, "p0")
	spec.Measures = []stream.Measure{
		{Func: "count"}, {Func: "sum", Field: "amount"}, {Func: "avg", Field: "amount"},
		{Func: "min", Field: "amount"}, {Func: "max", Field: "amount"}, {Func: "count_distinct", Field: "user_id"},
	}
	withValues := func(t int64, ingest int64, vals map[string]any) stream.Event {
		e := oev("p0", t, "k")
		e.Values, e.IngestTS, e.EventID = vals, ingest, fmt.Sprintf("e%d", ingest)
		return e
	}
	cases := []struct {
		name   string
		events []stream.Event
		want   []stream.MeasureValue
		count  int64
		newest string
	}{
		{
			name: "mixed numeric types and distinct by %v",
			events: []stream.Event{
				withValues(1, 5, map[string]any{"amount": 2.5, "user_id": "u1"}),
				withValues(2, 9, map[string]any{"amount": int64(-4), "user_id": 1}),
				withValues(3, 7, map[string]any{"amount": float32(1.5), "user_id": "1"}),
				withValues(4, 6, map[string]any{"amount": int32(8), "user_id": "u1"}),
			},
			count:  4,
			newest: "e9",
			want: []stream.MeasureValue{
				{Column: "sum_amount", Value: 8}, {Column: "avg_amount", Value: 2},
				{Column: "min_amount", Value: -4}, {Column: "max_amount", Value: 8},
				{Column: "count_distinct_user_id", Value: 2},
			},
		},
		{
			name: "missing and nil values count only for count",
			events: []stream.Event{
				withValues(1, 1, nil),
				withValues(2, 2, map[string]any{"amount": nil, "user_id": nil}),
			},
			count:  2,
			newest: "e2",
			want: []stream.MeasureValue{
				{Column: "sum_amount", Value: 0}, {Column: "avg_amount", Null: true},
				{Column: "min_amount", Null: true}, {Column: "max_amount", Null: true},
				{Column: "count_distinct_user_id", Value: 0},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := harness.Oracle(spec, tc.events, harness.OracleAdvance{AfterIndex: len(tc.events), Source: "p0", Watermark: 100})
			if len(got.Finals) != 1 {
				t.Fatalf("finals = %q, want one", resultBriefs(got.Finals))
			}
			r := got.Finals[0]
			if r.Count != tc.count || r.EventID != tc.newest || !slices.Equal(r.Measures, tc.want) {
				t.Errorf("got count %d newest %s %+v, want %d %s %+v", r.Count, r.EventID, r.Measures, tc.count, tc.newest, tc.want)
			}
		})
	}
}
