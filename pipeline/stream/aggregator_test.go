package stream_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// engine is an Aggregator with its stores.
type engine struct {
	agg     *stream.Aggregator
	windows *stream.Store[*stream.WindowState]
	marks   *stream.Store[int64]
	spec    stream.Spec
}

func newEngine(t testing.TB, spec stream.Spec) *engine {
	t.Helper()
	e := &engine{
		windows: stream.NewStore[*stream.WindowState]("windows", stream.WindowStateCodec{}),
		marks:   stream.NewStore[int64]("marks", stream.Int64Codec{}),
		spec:    spec,
	}
	agg, err := stream.NewAggregator(spec, e.windows, e.marks)
	if err != nil {
		t.Fatalf("NewAggregator: %v", err)
	}
	e.agg = agg
	return e
}

// step is one call: Add (default) or Advance (adv, ts is the watermark), with what it
// must return.
type step struct {
	src   string // default "p0"
	ts    int64
	group string // default "k"
	v     any    // value of field "v" (nil: none)
	adv   bool
	late  bool
	want  []string // results, formatted by fmtResult
	st    *int64   // stream time after the step, when set
}

func at(v int64) *int64 { return &v }

func (s step) event(i int) stream.Event {
	src, group := s.src, s.group
	if src == "" {
		src = "p0"
	}
	if group == "" {
		group = "k"
	}
	vals := map[string]any{}
	if s.v != nil {
		vals["v"] = s.v
	}
	return stream.Event{
		Source: src, Time: s.ts, Group: group, GroupValues: []string{group},
		Values: vals, IngestTS: int64(1000 + i), EventID: fmt.Sprintf("e%d", i),
	}
}

// run plays steps on a fresh engine and checks every return value.
func run(t *testing.T, spec stream.Spec, steps []step) *engine {
	t.Helper()
	e := newEngine(t, spec)
	for i, s := range steps {
		got, late := e.do(i, s)
		if late != s.late {
			t.Fatalf("step %d (ts=%d): late = %v, want %v (stream time %d)", i, s.ts, late, s.late, e.agg.StreamTime())
		}
		if !slices.Equal(got, s.want) {
			t.Fatalf("step %d (ts=%d): results\n got  %q\n want %q", i, s.ts, got, s.want)
		}
		if s.st != nil && e.agg.StreamTime() != *s.st {
			t.Fatalf("step %d (ts=%d): stream time %d, want %d", i, s.ts, e.agg.StreamTime(), *s.st)
		}
	}
	return e
}

// do performs one step and returns the formatted results and whether it was late.
func (e *engine) do(i int, s step) ([]string, bool) {
	if s.adv {
		src := s.src
		if src == "" {
			src = "p0"
		}
		return e.fmtAll(e.agg.Advance(src, s.ts)), false
	}
	rs, late := e.agg.Add(s.event(i))
	if late != nil && late.Reason != stream.LateWindowClosed {
		panic("unexpected late reason " + late.Reason)
	}
	return e.fmtAll(rs), late != nil
}

func (e *engine) fmtAll(rs []stream.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmtResult(e.spec.Type, r))
	}
	return out
}

// fmtResult renders a result compactly: "k[0,10) n=3 sum_v=13 final" (sessions
// "k[10,20] ..." since their end is inclusive).
func fmtResult(typ stream.WindowType, r stream.Result) string {
	var b strings.Builder
	closeBr := ")"
	if typ == stream.Session {
		closeBr = "]"
	}
	fmt.Fprintf(&b, "%s[%d,%d%s n=%d", r.Group, r.Start, r.End, closeBr, r.Count)
	for _, m := range r.Measures {
		if m.Null {
			fmt.Fprintf(&b, " %s=null", m.Column)
		} else {
			fmt.Fprintf(&b, " %s=%g", m.Column, m.Value)
		}
	}
	if r.Final {
		b.WriteString(" final")
	}
	return b.String()
}

// changelog records every store change of a transaction, as the stage would write it.
type changelog struct {
	windows, marks []record
}

type record struct {
	key string
	val []byte
}

// commit writes both stores' pending changes to the changelog and commits them.
func (c *changelog) commit(e *engine) {
	e.windows.Changes(func(k string, v []byte) { c.windows = append(c.windows, record{k, v}) })
	e.marks.Changes(func(k string, v []byte) { c.marks = append(c.marks, record{k, v}) })
	e.windows.Commit()
	e.marks.Commit()
}

// restore builds a new engine from the changelog alone, the way a stage starts a task:
// NewAggregator over fresh stores, Store.Restore of every record, then Restored. With
// preload the stores are restored first and NewAggregator must index them by itself.
func (c *changelog) restore(t testing.TB, spec stream.Spec, preload ...bool) *engine {
	t.Helper()
	e := &engine{
		windows: stream.NewStore[*stream.WindowState]("windows", stream.WindowStateCodec{}),
		marks:   stream.NewStore[int64]("marks", stream.Int64Codec{}),
		spec:    spec,
	}
	load := func() {
		for _, r := range c.windows {
			if err := e.windows.Restore(r.key, r.val); err != nil {
				t.Fatalf("restore windows %q: %v", r.key, err)
			}
		}
		for _, r := range c.marks {
			if err := e.marks.Restore(r.key, r.val); err != nil {
				t.Fatalf("restore marks %q: %v", r.key, err)
			}
		}
	}
	pre := len(preload) > 0 && preload[0]
	if pre {
		load()
	}
	agg, err := stream.NewAggregator(spec, e.windows, e.marks)
	if err != nil {
		t.Fatalf("NewAggregator: %v", err)
	}
	if !pre {
		load()
		agg.Restored()
	}
	e.agg = agg
	return e
}

// A tumbling aggregation of revenue per country: results come out when stream time
// passes a window's end plus grace.
func ExampleAggregator() {
	windows := stream.NewStore[*stream.WindowState]("windows", stream.WindowStateCodec{})
	marks := stream.NewStore[int64]("marks", stream.Int64Codec{})
	agg, err := stream.NewAggregator(stream.Spec{
		Name: "revenue_by_country_1m", Type: stream.Tumbling, Size: 60_000, Grace: 5_000,
		Measures: []stream.Measure{{Func: stream.MeasureCount}, {Func: stream.MeasureSum, Field: "amount"}},
		Sources:  []string{"purchases.clean/0"},
	}, windows, marks)
	if err != nil {
		panic(err)
	}
	add := func(t int64, country string, amount float64) {
		rs, late := agg.Add(stream.Event{Source: "purchases.clean/0", Time: t, Group: stream.GroupKey([]string{country}),
			GroupValues: []string{country}, Values: map[string]any{"amount": amount}})
		if late != nil {
			fmt.Printf("late at %d: %s\n", t, late.Reason)
		}
		for _, r := range rs {
			fmt.Printf("%s [%d,%d) count=%d %s=%g final=%v\n", r.Group, r.Start, r.End, r.Count, r.Measures[0].Column, r.Measures[0].Value, r.Final)
		}
	}
	add(1_000, "DE", 10)
	add(30_000, "FR", 5)
	add(59_999, "DE", 2.5)
	add(64_000, "DE", 1) // stream time 64s: [0,60s) still open (grace 5s)
	add(10_000, "DE", 4) // out of order, within grace
	add(65_000, "FR", 3) // stream time 65s = 60s + 5s: [0,60s) closes
	add(20_000, "DE", 1) // too late
	// Output:
	// DE [0,60000) count=3 sum_amount=16.5 final=true
	// FR [0,60000) count=1 sum_amount=5 final=true
	// late at 20000: window closed
}
