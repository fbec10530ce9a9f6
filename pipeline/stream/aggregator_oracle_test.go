package stream_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// oracle is a deliberately naive window engine: it scans every window on every call and
// sorts the closed ones. The engine must produce exactly its results.
type oracle struct {
	spec stream.Spec
	wm   map[string]int64
	wins map[string]*owin // group + "/" + start
}

type owin struct {
	group      string
	start, end int64
	count      int64
	sum        float64
	vals       map[string]bool
}

func newOracle(spec stream.Spec) *oracle {
	if spec.Type == stream.Tumbling {
		spec.Advance = spec.Size
	}
	return &oracle{spec: spec, wm: map[string]int64{}, wins: map[string]*owin{}}
}

func (o *oracle) streamTime() int64 {
	st := int64(0)
	for i, s := range o.spec.Sources {
		w, ok := o.wm[s]
		if !ok {
			return stream.NoWatermark
		}
		if i == 0 || w < st {
			st = w
		}
	}
	return st
}

func (o *oracle) closeOf(w *owin) int64 {
	if o.spec.Type == stream.Session {
		return w.end + o.spec.Gap + o.spec.Grace
	}
	return w.end + o.spec.Grace
}

func (o *oracle) add(ev stream.Event) ([]string, bool) {
	if w, ok := o.wm[ev.Source]; !ok || ev.Time > w {
		o.wm[ev.Source] = ev.Time
	}
	st := o.streamTime()
	var out []string
	applied := false
	apply := func(w *owin) {
		w.count++
		if v, ok := ev.Values["v"].(int64); ok {
			w.sum += float64(v)
		}
		if u, ok := ev.Values["u"].(string); ok {
			w.vals[u] = true
		}
		applied = true
		if o.spec.Emit == stream.EmitUpdates {
			out = append(out, o.fmt(w, false))
		}
	}
	if o.spec.Type == stream.Session {
		var near []*owin
		for _, w := range o.wins {
			if w.group == ev.Group && w.start-o.spec.Gap <= ev.Time && ev.Time <= w.end+o.spec.Gap {
				near = append(near, w)
			}
		}
		if len(near) == 0 {
			w := &owin{group: ev.Group, start: ev.Time, end: ev.Time, vals: map[string]bool{}}
			if st < o.closeOf(w) {
				o.wins[fmt.Sprint(w.group, "/", w.start)] = w
				apply(w)
			}
		} else {
			m := &owin{group: ev.Group, start: ev.Time, end: ev.Time, vals: map[string]bool{}}
			for _, w := range near {
				delete(o.wins, fmt.Sprint(w.group, "/", w.start))
				m.start, m.end = min(m.start, w.start), max(m.end, w.end)
				m.count += w.count
				m.sum += w.sum
				for u := range w.vals {
					m.vals[u] = true
				}
			}
			o.wins[fmt.Sprint(m.group, "/", m.start)] = m
			apply(m)
		}
	} else {
		for start := ev.Time - ev.Time%o.spec.Advance - o.spec.Size; start <= ev.Time; start += o.spec.Advance {
			if start%o.spec.Advance != 0 || !(start <= ev.Time && ev.Time < start+o.spec.Size) {
				continue
			}
			w, ok := o.wins[fmt.Sprint(ev.Group, "/", start)]
			if !ok {
				w = &owin{group: ev.Group, start: start, end: start + o.spec.Size, vals: map[string]bool{}}
			}
			if st >= o.closeOf(w) {
				continue
			}
			o.wins[fmt.Sprint(ev.Group, "/", start)] = w
			apply(w)
		}
	}
	return append(out, o.closeDue()...), !applied
}

func (o *oracle) advance(src string, wm int64) []string {
	if w, ok := o.wm[src]; !ok || wm > w {
		o.wm[src] = wm
	}
	return o.closeDue()
}

func (o *oracle) closeDue() []string {
	st := o.streamTime()
	var closed []*owin
	for k, w := range o.wins {
		if st >= o.closeOf(w) {
			closed = append(closed, w)
			delete(o.wins, k)
		}
	}
	slices.SortFunc(closed, func(a, b *owin) int {
		if a.end != b.end {
			return int(a.end - b.end)
		}
		if c := strings.Compare(a.group, b.group); c != 0 {
			return c
		}
		return int(a.start - b.start)
	})
	var out []string
	if o.spec.Emit == stream.EmitFinal {
		for _, w := range closed {
			out = append(out, o.fmt(w, true))
		}
	}
	return out
}

func (o *oracle) fmt(w *owin, final bool) string {
	r := stream.Result{Group: w.group, Start: w.start, End: w.end, Count: w.count, Final: final,
		Measures: []stream.MeasureValue{{Column: "sum_v", Value: w.sum}, {Column: "count_distinct_u", Value: float64(len(w.vals))}}}
	return fmtResult(o.spec.Type, r)
}

var oracleMeasures = []stream.Measure{{Func: stream.MeasureSum, Field: "v"}, {Func: stream.MeasureCountDistinct, Field: "u"}}

// op is one call of a generated stream: an event or (adv) a watermark advance.
type op struct {
	adv bool
	ev  stream.Event
}

// genStream is a seeded stream over sources and groups with bounded disorder, the odd
// very late record, and watermark advances.
func genStream(seed uint64, n int, sources []string, groups int, disorder int64) []op {
	r := rand.New(rand.NewPCG(seed, 7))
	base := map[string]int64{}
	ops := make([]op, 0, n)
	for i := range n {
		src := sources[r.IntN(len(sources))]
		base[src] += r.Int64N(4)
		t := base[src] - r.Int64N(disorder+1)
		if r.IntN(50) == 0 {
			t -= 100 // far behind: usually late
		}
		if r.IntN(20) == 0 {
			ops = append(ops, op{adv: true, ev: stream.Event{Source: src, Time: base[src] - r.Int64N(30)}})
			continue
		}
		g := fmt.Sprint("g", r.IntN(groups))
		ops = append(ops, op{ev: stream.Event{
			Source: src, Time: t, Group: g, GroupValues: []string{g},
			Values:   map[string]any{"v": int64(r.IntN(10)), "u": fmt.Sprint("u", r.IntN(5))},
			IngestTS: int64(i), EventID: fmt.Sprint("e", i),
		}})
	}
	return ops
}

// specsUnderTest are the window types and modes the randomized tests cover.
func specsUnderTest() []stream.Spec {
	var out []stream.Spec
	for _, emit := range []stream.EmitMode{stream.EmitFinal, stream.EmitUpdates} {
		out = append(out,
			withMeasures(tumbling(10, 5, emit, "p0", "p1"), oracleMeasures),
			withMeasures(tumbling(7, 0, emit, "p0"), oracleMeasures),
			withMeasures(hopping(20, 5, 3, emit, "p0", "p1", "p2"), oracleMeasures),
			withMeasures(session(6, 4, emit, "p0", "p1"), oracleMeasures),
			withMeasures(session(3, 0, emit, "p0"), oracleMeasures),
		)
	}
	return out
}

func specName(s stream.Spec) string {
	return fmt.Sprintf("%s size=%d adv=%d gap=%d grace=%d %s sources=%d", s.Type, s.Size, s.Advance, s.Gap, s.Grace, s.Emit, len(s.Sources))
}

// The engine agrees with the naive oracle on seeded random streams, and OpenWindows
// always equals the number of windows in the store.
func TestAgainstOracle(t *testing.T) {
	for _, spec := range specsUnderTest() {
		t.Run(specName(spec), func(t *testing.T) {
			lates, results := 0, 0
			for seed := range uint64(5) {
				e := newEngine(t, spec)
				o := newOracle(spec)
				for i, op := range genStream(seed, 3000, spec.Sources, 6, 8) {
					var got, want []string
					var gotLate, wantLate bool
					if op.adv {
						got = e.fmtAll(e.agg.Advance(op.ev.Source, op.ev.Time))
						want = o.advance(op.ev.Source, op.ev.Time)
					} else {
						rs, late := e.agg.Add(op.ev)
						got, gotLate = e.fmtAll(rs), late != nil
						want, wantLate = o.add(op.ev)
					}
					results += len(got)
					if gotLate {
						lates++
					}
					if gotLate != wantLate || !slices.Equal(got, want) {
						t.Fatalf("seed %d op %d %+v: late %v, results\n got  %q\n want %q (late %v)", seed, i, op, gotLate, got, want, wantLate)
					}
					if e.agg.OpenWindows() != len(o.wins) {
						t.Fatalf("seed %d op %d: OpenWindows %d, oracle %d", seed, i, e.agg.OpenWindows(), len(o.wins))
					}
					if i%10 == 0 {
						n := 0
						e.windows.Range(func(string, *stream.WindowState) bool { n++; return true })
						if n != len(o.wins) {
							t.Fatalf("seed %d op %d: store holds %d windows, oracle %d", seed, i, n, len(o.wins))
						}
					}
					if i%97 == 0 {
						e.windows.Commit()
						e.marks.Commit()
					}
				}
			}
			if lates == 0 || results == 0 {
				t.Fatalf("stream too tame: %d late records, %d results", lates, results)
			}
			t.Logf("%d late records, %d results", lates, results)
		})
	}
}
