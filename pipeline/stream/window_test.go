package stream_test

import (
	"errors"
	"testing"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// vMeasures are count, sum, min and max of field "v" (count is listed to check it is
// reported as Result.Count only).
var vMeasures = []stream.Measure{{Func: stream.MeasureCount}, {Func: stream.MeasureSum, Field: "v"}, {Func: stream.MeasureMin, Field: "v"}, {Func: stream.MeasureMax, Field: "v"}}

func tumbling(size, grace int64, emit stream.EmitMode, sources ...string) stream.Spec {
	if len(sources) == 0 {
		sources = []string{"p0"}
	}
	return stream.Spec{Name: "t", Type: stream.Tumbling, Size: size, Grace: grace, Emit: emit, Sources: sources}
}

func hopping(size, advance, grace int64, emit stream.EmitMode, sources ...string) stream.Spec {
	if len(sources) == 0 {
		sources = []string{"p0"}
	}
	return stream.Spec{Name: "h", Type: stream.Hopping, Size: size, Advance: advance, Grace: grace, Emit: emit, Sources: sources}
}

func session(gap, grace int64, emit stream.EmitMode, sources ...string) stream.Spec {
	if len(sources) == 0 {
		sources = []string{"p0"}
	}
	return stream.Spec{Name: "s", Type: stream.Session, Gap: gap, Grace: grace, Emit: emit, Sources: sources}
}

func withMeasures(s stream.Spec, ms []stream.Measure) stream.Spec {
	s.Measures = ms
	return s
}

// Tumbling 10, grace 5 (docs/DESIGN.md#windows-and-watermarks), one source, one
// key, watermark after every record. Sluice closes a window when stream time >=
// end+grace, on the accept path and the emit path alike.
func TestGoldenTumblingA(t *testing.T) {
	cases := []struct {
		name  string
		emit  stream.EmitMode
		steps []step
	}{
		{
			name: "final",
			emit: stream.EmitFinal,
			steps: []step{
				{ts: 1, v: 1, st: at(1)},
				{ts: 9, v: 9, st: at(9)},
				{ts: 10, v: 10, st: at(10)}, // boundary: 10 is not in [0,10)
				{ts: 3, v: 3, st: at(10)},   // out of order, in time
				{ts: 15, v: 15, st: at(15), want: []string{"k[0,10) n=3 sum_v=13 min_v=1 max_v=9 final"}},
				{ts: 4, v: 4, st: at(15), late: true}, // 15 >= 10+5: closed
				{ts: 25, v: 25, st: at(25), want: []string{"k[10,20) n=2 sum_v=25 min_v=10 max_v=15 final"}},
			},
		},
		{
			name: "updates",
			emit: stream.EmitUpdates,
			steps: []step{
				{ts: 1, v: 1, want: []string{"k[0,10) n=1 sum_v=1 min_v=1 max_v=1"}},
				{ts: 9, v: 9, want: []string{"k[0,10) n=2 sum_v=10 min_v=1 max_v=9"}},
				{ts: 10, v: 10, want: []string{"k[10,20) n=1 sum_v=10 min_v=10 max_v=10"}},
				{ts: 3, v: 3, want: []string{"k[0,10) n=3 sum_v=13 min_v=1 max_v=9"}},
				{ts: 15, v: 15, want: []string{"k[10,20) n=2 sum_v=25 min_v=10 max_v=15"}}, // closing [0,10) emits nothing
				{ts: 4, v: 4, late: true},
				{ts: 25, v: 25, want: []string{"k[20,30) n=1 sum_v=25 min_v=25 max_v=25"}},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := run(t, withMeasures(tumbling(10, 5, c.emit), vMeasures), c.steps)
			if got := e.agg.OpenWindows(); got != 1 {
				t.Fatalf("OpenWindows = %d, want 1 ([20,30))", got)
			}
		})
	}
}

// Golden vector D: two sources, tumbling 10, grace 0, arrival P0:5, P0:25, P1:8. Stream
// time is the minimum watermark, so nothing closes and nothing is late until both
// sources reported; [0,10) = {5,8} fires only when P1 passes 10.
func TestGoldenTwoSourcesD(t *testing.T) {
	spec := tumbling(10, 0, stream.EmitFinal, "p0", "p1")
	run(t, spec, []step{
		{src: "p0", ts: 5, st: at(stream.NoWatermark)},
		{src: "p0", ts: 25, st: at(stream.NoWatermark)},
		{src: "p1", ts: 8, st: at(8)}, // not late: P1's own watermark is 8
		{src: "p1", ts: 9, adv: true, st: at(9)},
		{src: "p1", ts: 10, adv: true, st: at(10), want: []string{"k[0,10) n=2 final"}},
		{src: "p1", ts: 40, adv: true, st: at(25)}, // min(25, 40): [20,30) still open
		{src: "p0", ts: 30, adv: true, st: at(30), want: []string{"k[20,30) n=1 final"}},
	})
}

func TestWatermarks(t *testing.T) {
	e := newEngine(t, tumbling(10, 0, stream.EmitFinal, "p0", "p1"))
	if got := e.agg.Watermark("p0"); got != stream.NoWatermark {
		t.Fatalf("unknown source watermark = %d, want NoWatermark", got)
	}
	steps := []struct {
		name      string
		adv       bool
		src       string
		ts        int64
		wantP0    int64
		wantP1    int64
		wantST    int64
		wantMarks map[string]int64
	}{
		{"record raises p0", false, "p0", 50, 50, stream.NoWatermark, stream.NoWatermark, map[string]int64{"p0": 50}},
		{"older record keeps p0", false, "p0", 45, 50, stream.NoWatermark, stream.NoWatermark, map[string]int64{"p0": 50}},
		{"advance p1", true, "p1", 30, 50, 30, 30, map[string]int64{"p0": 50, "p1": 30}},
		{"advance backwards is a no-op", true, "p1", 20, 50, 30, 30, map[string]int64{"p0": 50, "p1": 30}},
		{"advance equal is a no-op", true, "p1", 30, 50, 30, 30, map[string]int64{"p0": 50, "p1": 30}},
		{"p1 passes p0", true, "p1", 70, 50, 70, 50, map[string]int64{"p0": 50, "p1": 70}},
		{"unknown source is tracked, not part of stream time", true, "x", 99, 50, 70, 50, map[string]int64{"p0": 50, "p1": 70, "x": 99}},
	}
	for i, s := range steps {
		if s.adv {
			e.agg.Advance(s.src, s.ts)
		} else {
			e.agg.Add(stream.Event{Source: s.src, Time: s.ts, Group: "k"})
		}
		if got := [3]int64{e.agg.Watermark("p0"), e.agg.Watermark("p1"), e.agg.StreamTime()}; got != [3]int64{s.wantP0, s.wantP1, s.wantST} {
			t.Fatalf("step %d %s: (p0, p1, stream time) = %v, want %v", i, s.name, got, [3]int64{s.wantP0, s.wantP1, s.wantST})
		}
		marks := map[string]int64{}
		e.marks.Range(func(k string, v int64) bool { marks[k] = v; return true })
		if len(marks) != len(s.wantMarks) {
			t.Fatalf("step %d %s: marks store %v, want %v", i, s.name, marks, s.wantMarks)
		}
		for k, v := range s.wantMarks {
			if marks[k] != v {
				t.Fatalf("step %d %s: marks store %v, want %v", i, s.name, marks, s.wantMarks)
			}
		}
	}
	if got := e.agg.Watermark("x"); got != 99 {
		t.Fatalf("Watermark(x) = %d, want 99", got)
	}
}

// Section 4 edge cases 2-5 and 10 for tumbling and hopping windows.
func TestFixedWindowEdgeCases(t *testing.T) {
	cases := []struct {
		name  string
		spec  stream.Spec
		steps []step
	}{
		{
			name: "close instant on the emit path: end+grace closes, one before does not",
			spec: tumbling(10, 5, stream.EmitFinal),
			steps: []step{
				{ts: 1},
				{ts: 14, adv: true},
				{ts: 15, adv: true, want: []string{"k[0,10) n=1 final"}},
			},
		},
		{
			name: "close instant on the accept path: accepted one before, late at end+grace",
			spec: tumbling(10, 5, stream.EmitFinal),
			steps: []step{
				{ts: 1},
				{ts: 14, adv: true},
				{ts: 9},
				{ts: 15, adv: true, want: []string{"k[0,10) n=2 final"}},
				{ts: 9, late: true},
				{ts: 0, late: true},
				{ts: 10}, // its own window [10,20) is open
			},
		},
		{
			name: "grace 0: end closes",
			spec: tumbling(10, 0, stream.EmitFinal),
			steps: []step{
				{ts: 9},
				{ts: 10, want: []string{"k[0,10) n=1 final"}},
				{ts: 9, late: true},
			},
		},
		{
			name: "out of order within grace, final: exactly one result",
			spec: tumbling(10, 5, stream.EmitFinal),
			steps: []step{
				{ts: 8}, {ts: 12}, {ts: 3}, {ts: 14}, {ts: 7},
				{ts: 100, adv: true, want: []string{"k[0,10) n=3 final", "k[10,20) n=2 final"}},
			},
		},
		{
			name: "out of order within grace, updates: one result per change",
			spec: tumbling(10, 5, stream.EmitUpdates),
			steps: []step{
				{ts: 8, want: []string{"k[0,10) n=1"}},
				{ts: 12, want: []string{"k[10,20) n=1"}},
				{ts: 3, want: []string{"k[0,10) n=2"}},
				{ts: 14, want: []string{"k[10,20) n=2"}},
				{ts: 7, want: []string{"k[0,10) n=3"}},
				{ts: 100, adv: true},
				{ts: 7, late: true},
			},
		},
		{
			name: "beyond grace: late and nothing changes",
			spec: tumbling(10, 5, stream.EmitFinal),
			steps: []step{
				{ts: 5},
				{ts: 30, want: []string{"k[0,10) n=1 final"}},
				{ts: 5, late: true},
				{ts: 14, late: true}, // [10,20) closed at 30 >= 25 (never opened)
				{ts: 24},
				{ts: 100, adv: true, want: []string{"k[20,30) n=1 final", "k[30,40) n=1 final"}},
			},
		},
		{
			name: "hopping record partly late: accepted into the open windows only",
			spec: hopping(10, 5, 0, stream.EmitUpdates),
			steps: []step{
				{ts: 12, want: []string{"k[5,15) n=1", "k[10,20) n=1"}},
				{ts: 7, want: []string{"k[5,15) n=2"}}, // [0,10) closed at 12 >= 10
				{ts: 3, late: true},                    // [-5,5) and [0,10) both closed
			},
		},
		{
			name: "hopping partly late, final: the closed window never sees it",
			spec: hopping(10, 5, 0, stream.EmitFinal),
			steps: []step{
				{ts: 6},
				{ts: 12, want: []string{"k[0,10) n=1 final"}},
				{ts: 7},
				{ts: 100, adv: true, want: []string{"k[5,15) n=3 final", "k[10,20) n=1 final"}},
			},
		},
		{
			name: "a record that advances time closes other groups' windows after applying itself",
			spec: tumbling(10, 0, stream.EmitFinal),
			steps: []step{
				{ts: 1, group: "a"},
				{ts: 2, group: "b"},
				{ts: 15, group: "c", want: []string{"a[0,10) n=1 final", "b[0,10) n=1 final"}},
				{ts: 20, adv: true, want: []string{"c[10,20) n=1 final"}},
			},
		},
		{
			name: "groups share stream time; order is end, then group, then start",
			spec: hopping(10, 5, 10, stream.EmitFinal),
			steps: []step{
				{ts: 9, group: "b"},
				{ts: 3, group: "a"},
				{ts: 7, group: "c"},
				{ts: 100, adv: true, want: []string{
					"a[-5,5) n=1 final",
					"a[0,10) n=1 final", "b[0,10) n=1 final", "c[0,10) n=1 final",
					"b[5,15) n=1 final", "c[5,15) n=1 final",
				}},
			},
		},
		{
			// Section 4 case 8: the stage advances an idle source's watermark by the
			// clock; when it resumes with old data, that data is late, never reopening
			// emitted windows.
			name: "idle source advanced, then resumes with old data",
			spec: tumbling(10, 0, stream.EmitFinal, "p0", "p1"),
			steps: []step{
				{src: "p0", ts: 5},
				{src: "p0", ts: 25, st: at(stream.NoWatermark)},
				{src: "p1", ts: 20, adv: true, st: at(20), want: []string{"k[0,10) n=1 final"}},
				{src: "p1", ts: 8, late: true},
				{src: "p1", ts: 22, st: at(22)},
				{src: "p1", ts: 30, adv: true, st: at(25)},
				{src: "p0", ts: 30, adv: true, st: at(30), want: []string{"k[20,30) n=2 final"}},
			},
		},
		{
			name: "an advance below the watermark closes nothing",
			spec: tumbling(10, 0, stream.EmitFinal),
			steps: []step{
				{ts: 5},
				{ts: 9, adv: true},
				{ts: 20, adv: true, st: at(20), want: []string{"k[0,10) n=1 final"}},
				{ts: 3, adv: true, st: at(20)},
				{ts: 25, st: at(25)},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { run(t, c.spec, c.steps) })
	}
}

func TestNewAggregatorValidates(t *testing.T) {
	ok := tumbling(10, 0, stream.EmitFinal)
	cases := []struct {
		name string
		mod  func(*stream.Spec)
	}{
		{"unknown type", func(s *stream.Spec) { s.Type = "sliding" }},
		{"zero size", func(s *stream.Spec) { s.Size = 0 }},
		{"tumbling advance other than size", func(s *stream.Spec) { s.Advance = 5 }},
		{"hopping advance zero", func(s *stream.Spec) { *s = hopping(10, 0, 0, "") }},
		{"hopping advance above size", func(s *stream.Spec) { *s = hopping(10, 20, 0, "") }},
		{"hopping advance not a divisor", func(s *stream.Spec) { *s = hopping(10, 3, 0, "") }},
		{"session gap zero", func(s *stream.Spec) { *s = session(0, 0, "") }},
		{"negative grace", func(s *stream.Spec) { s.Grace = -1 }},
		{"unknown emit", func(s *stream.Spec) { s.Emit = "sometimes" }},
		{"unknown measure", func(s *stream.Spec) { s.Measures = []stream.Measure{{Func: "median", Field: "v"}} }},
		{"measure without field", func(s *stream.Spec) { s.Measures = []stream.Measure{{Func: stream.MeasureSum}} }},
		{"no sources", func(s *stream.Spec) { s.Sources = nil }},
		{"duplicate source", func(s *stream.Spec) { s.Sources = []string{"p0", "p0"} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := ok
			c.mod(&s)
			_, err := stream.NewAggregator(s, stream.NewStore[*stream.WindowState]("w", stream.WindowStateCodec{}), stream.NewStore[int64]("m", stream.Int64Codec{}))
			if !errors.Is(err, stream.ErrInvalidSpec) {
				t.Fatalf("err = %v, want ErrInvalidSpec", err)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		s := ok
		s.Emit = ""
		e := newEngine(t, s)
		e.agg.Add(stream.Event{Source: "p0", Time: 1, Group: "k"})
		if rs := e.agg.Advance("p0", 10); len(rs) != 1 || !rs[0].Final {
			t.Fatalf("empty emit should mean final, got %+v", rs)
		}
	})
}

func TestGroupKey(t *testing.T) {
	lists := map[string][]string{
		"one":               {"DE"},
		"two":               {"a", "b"},
		"separator inside":  {"a|b"},
		"escape then sep":   {"a\\", "b"},
		"sep then escape":   {"a", "\\b"},
		"escaped sep value": {"a\\|b"},
		"empty first":       {"", "a|b"},
		"empty last":        {"a|b", ""},
		"three":             {"a", "b", "c"},
		"pipe pair":         {"a|", "b"},
		"pipe pair 2":       {"a", "|b"},
		"two empties":       {"", ""},
		"one pipe":          {"|"},
	}
	seen := map[string]string{}
	for name, vals := range lists {
		k := stream.GroupKey(vals)
		if other, ok := seen[k]; ok {
			t.Fatalf("GroupKey(%q) = GroupKey(%q) = %q", vals, lists[other], k)
		}
		seen[k] = name
	}
	cases := []struct {
		name string
		vals []string
		want string
	}{
		{"single value is itself", []string{"DE"}, "DE"},
		{"joined with a pipe", []string{"DE", "web"}, "DE|web"},
		{"pipe and backslash escaped", []string{"a|b", "c\\"}, "a\\|b|c\\\\"},
		{"no values", nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := stream.GroupKey(c.vals); got != c.want {
				t.Fatalf("GroupKey(%q) = %q, want %q", c.vals, got, c.want)
			}
		})
	}
}

// Window keys sort by start within a group, negative starts included.
func TestWindowKeysSortByStart(t *testing.T) {
	e := newEngine(t, tumbling(10, 0, stream.EmitFinal))
	for _, ts := range []int64{25, -15, 5, -1, 0, -9223372036854775808, 9223372036854775807} {
		e.agg.Add(stream.Event{Source: "p0", Time: ts, Group: "k"})
	}
	var keys []string
	e.windows.Changes(func(k string, v []byte) {
		if v != nil {
			keys = append(keys, k)
		}
	})
	// Changes visits keys sorted; the open windows must come out in start order.
	var starts []int64
	for _, k := range keys {
		ws, _ := e.windows.Get(k)
		b := stream.WindowStateCodec{}.Encode(nil, ws)
		st, err := stream.WindowStateCodec{}.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		r := resultOf(t, e, k, st)
		starts = append(starts, r)
	}
	for i := 1; i < len(starts); i++ {
		if starts[i-1] >= starts[i] {
			t.Fatalf("keys %q not in start order: %v", keys, starts)
		}
	}
}

// resultOf recovers a stored window's start by restoring it alone into a fresh engine
// and closing it.
func resultOf(t *testing.T, e *engine, key string, ws *stream.WindowState) int64 {
	t.Helper()
	c := &changelog{windows: []record{{key, stream.WindowStateCodec{}.Encode(nil, ws)}}}
	r := c.restore(t, e.spec)
	rs := r.agg.Advance("p0", 9223372036854775807)
	if len(rs) != 1 {
		t.Fatalf("restored %q closed %d windows, want 1", key, len(rs))
	}
	return rs[0].Start
}
