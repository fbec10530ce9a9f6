package harness_test

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/stream"
)

// Property tests: the engine, run through the Driver, must produce exactly what the
// oracle computes, for many seeded inputs with disorder, late events, several sources,
// watermark markers and restarts. On a mismatch the input is shrunk to a minimal one.

// engineScenario is one complete input: events, interleaved markers and restart points.
type engineScenario struct {
	spec     stream.Spec
	events   []stream.Event
	advances []harness.OracleAdvance
	// restarts lists positions (like OracleAdvance.AfterIndex) after which the driver
	// restarts, after that position's markers.
	restarts []int
}

var allMeasures = []stream.Measure{
	{Func: "count"}, {Func: "sum", Field: "amount"}, {Func: "avg", Field: "amount"},
	{Func: "min", Field: "amount"}, {Func: "max", Field: "amount"}, {Func: "count_distinct", Field: "user_id"},
}

// propShape is a window shape and matching traffic.
type propShape struct {
	name string
	spec stream.Spec
	gen  harness.DisorderOptions
}

var propShapes = []propShape{
	{"tumbling 60s grace 5s", stream.Spec{Type: stream.Tumbling, Size: 60_000, Grace: 5_000},
		harness.DisorderOptions{Groups: 4, Start: 1_764_000_000_000, Step: 2_000, MaxDisorder: 8_000}},
	{"hopping 5m every 1m grace 10s", stream.Spec{Type: stream.Hopping, Size: 300_000, Advance: 60_000, Grace: 10_000},
		harness.DisorderOptions{Groups: 3, Start: 1_764_000_000_000, Step: 5_000, MaxDisorder: 15_000, LateExtra: 300_000}},
	{"session gap 30m grace 1m", stream.Spec{Type: stream.Session, Gap: 1_800_000, Grace: 60_000},
		harness.DisorderOptions{Groups: 5, Start: 1_764_000_000_000, Step: 240_000, MaxDisorder: 120_000, LateExtra: 1_800_000}},
	{"tumbling 10 grace 0", stream.Spec{Type: stream.Tumbling, Size: 10},
		harness.DisorderOptions{Groups: 2, Start: -50, Step: 2, MaxDisorder: 5}},
	{"tumbling 10 grace 3", stream.Spec{Type: stream.Tumbling, Size: 10, Grace: 3},
		harness.DisorderOptions{Groups: 3, Start: -50, Step: 2, MaxDisorder: 6}},
	{"hopping 10 every 5 grace 2", stream.Spec{Type: stream.Hopping, Size: 10, Advance: 5, Grace: 2},
		harness.DisorderOptions{Groups: 2, Start: -40, Step: 2, MaxDisorder: 4, LateExtra: 10}},
	{"hopping 12 every 4 grace 0", stream.Spec{Type: stream.Hopping, Size: 12, Advance: 4},
		harness.DisorderOptions{Groups: 3, Start: -40, Step: 1, MaxDisorder: 3, LateExtra: 12}},
	{"hopping 10 every 10", stream.Spec{Type: stream.Hopping, Size: 10, Advance: 10, Grace: 1},
		harness.DisorderOptions{Groups: 2, Start: -40, Step: 2, MaxDisorder: 3}},
	{"session gap 5 grace 0", stream.Spec{Type: stream.Session, Gap: 5},
		harness.DisorderOptions{Groups: 3, Start: -30, Step: 2, MaxDisorder: 4, LateExtra: 5}},
	{"session gap 5 grace 2", stream.Spec{Type: stream.Session, Gap: 5, Grace: 2},
		harness.DisorderOptions{Groups: 2, Start: -30, Step: 3, MaxDisorder: 6, LateExtra: 5}},
	{"session gap 1 grace 1", stream.Spec{Type: stream.Session, Gap: 1, Grace: 1},
		harness.DisorderOptions{Groups: 2, Start: 0, Step: 1, MaxDisorder: 2, LateExtra: 1}},
}

// propSeeds is the number of seeds per shape and mode; keep the package under 10 s.
const propSeeds = 16

// newScenario draws a engineScenario for shape and seed: 1-3 sources, late events in every
// other seed, lagging sources now and then, markers after about 8% of the events,
// restarts when withRestarts, and (in three seeds of four) a final marker on every
// source that closes everything.
func newScenario(shape propShape, emit stream.EmitMode, seed uint64, withRestarts bool) engineScenario {
	r := rand.New(rand.NewPCG(seed, 99))
	gen := shape.gen
	gen.Seed = seed
	gen.Sources = 1 + int(seed%3)
	gen.Events = 100 + r.IntN(200)
	gen.Grace = shape.spec.Grace
	if seed%2 == 1 {
		gen.LateFraction = 0.1
	}
	if r.IntN(3) == 0 {
		gen.SourceLag = gen.Step * int64(1+r.IntN(20))
	}
	if r.IntN(4) == 0 {
		gen.NullFraction = 0.2
	}
	spec := shape.spec
	spec.Name = "prop"
	spec.Emit = emit
	spec.Measures = allMeasures
	spec.Sources = harness.DisorderSourceIDs(gen.Sources)
	sc := engineScenario{spec: spec, events: harness.Disorder(gen)}

	maxT := map[string]int64{}
	last := gen.Start
	for i, e := range sc.events {
		if m, ok := maxT[e.Source]; !ok || e.Time > m {
			maxT[e.Source] = e.Time
		}
		last = max(last, e.Time)
		if r.Float64() < 0.08 {
			src := spec.Sources[r.IntN(len(spec.Sources))]
			base, ok := maxT[src]
			if !ok {
				base = e.Time
			}
			// Sometimes ahead of the source's events, sometimes behind (a no-op).
			wm := base + r.Int64N(2*gen.Step+1) - gen.Step
			sc.advances = append(sc.advances, harness.OracleAdvance{AfterIndex: i, Source: src, Watermark: wm})
		}
		if withRestarts && r.Float64() < 0.05 {
			sc.restarts = append(sc.restarts, i)
		}
	}
	if withRestarts {
		sc.restarts = append([]int{-1}, sc.restarts...)
	}
	// Close everything at the end, except in every fourth seed, which leaves windows open
	// to compare the open-window counts.
	if seed%4 != 3 {
		end := last + 1_000_000_000
		for _, src := range spec.Sources {
			sc.advances = append(sc.advances, harness.OracleAdvance{AfterIndex: len(sc.events) - 1, Source: src, Watermark: end})
		}
	}
	if withRestarts {
		sc.restarts = append(sc.restarts, len(sc.events)-1)
	}
	return sc
}

// run drives the engine through sc, applying markers and restarts by the oracle's rules.
func (sc engineScenario) run(tb testing.TB) *harness.Driver {
	d := harness.NewDriver(tb, sc.spec)
	marks := slices.Clone(sc.advances)
	for i := range marks {
		marks[i].AfterIndex = max(-1, min(marks[i].AfterIndex, len(sc.events)-1))
	}
	slices.SortStableFunc(marks, func(a, b harness.OracleAdvance) int { return cmp.Compare(a.AfterIndex, b.AfterIndex) })
	next := 0
	after := func(pos int) {
		for next < len(marks) && marks[next].AfterIndex == pos {
			d.Advance(marks[next].Source, marks[next].Watermark)
			next++
		}
		for _, p := range sc.restarts {
			if max(-1, min(p, len(sc.events)-1)) == pos {
				d.Restart()
			}
		}
	}
	after(-1)
	for i, ev := range sc.events {
		d.Pipe(ev)
		after(i)
	}
	return d
}

// checkOracle runs sc through the oracle and the engine and describes the first
// difference; it also returns the oracle's answer.
func (sc engineScenario) checkOracle(tb testing.TB) (harness.OracleResult, error) {
	want := harness.Oracle(sc.spec, sc.events, sc.advances...)
	return want, sc.against(tb, want)
}

// against runs sc through the engine and compares with the oracle's answer.
func (sc engineScenario) against(tb testing.TB, want harness.OracleResult) error {
	d := sc.run(tb)

	wantLate := make([]string, 0, len(want.Late))
	for _, i := range want.Late {
		wantLate = append(wantLate, sc.events[i].EventID)
	}
	var gotLate []string
	for _, e := range d.LateEvents() {
		gotLate = append(gotLate, e.EventID)
	}
	if !slices.Equal(gotLate, wantLate) {
		return fmt.Errorf("late events:\n engine %q\n oracle %q", gotLate, wantLate)
	}
	if got := d.StreamTime(); got != want.StreamTime {
		return fmt.Errorf("stream time: engine %d, oracle %d", got, want.StreamTime)
	}
	if got := d.OpenWindows(); got != len(want.Open) {
		return fmt.Errorf("open windows: engine %d, oracle %d", got, len(want.Open))
	}
	if sc.spec.Emit == stream.EmitUpdates {
		return compareUpdates(d.Outputs(), want.Updates)
	}
	return compareResults(d.Outputs(), want.Finals)
}

// compareResults compares engine and oracle results in order.
func compareResults(got, want []stream.Result) error {
	for i := range min(len(got), len(want)) {
		if err := sameResult(got[i], want[i]); err != nil {
			return fmt.Errorf("result %d: %w\n engine %s\n oracle %s", i, err, showResult(got[i]), showResult(want[i]))
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("engine emitted %d results, oracle %d; engine extra %s, oracle extra %s",
			len(got), len(want), showResults(got[min(len(got), len(want)):]), showResults(want[min(len(got), len(want)):]))
	}
	return nil
}

// compareUpdates compares emit-updates outputs window by window (the order of the
// windows one event updates is not part of the contract).
func compareUpdates(got, want []stream.Result) error {
	type key struct {
		group      string
		start, end int64
	}
	byKey := func(rs []stream.Result) (map[key][]stream.Result, []key) {
		m := map[key][]stream.Result{}
		var order []key
		for _, r := range rs {
			k := key{r.Group, r.Start, r.End}
			if _, ok := m[k]; !ok {
				order = append(order, k)
			}
			m[k] = append(m[k], r)
		}
		return m, order
	}
	g, _ := byKey(got)
	w, order := byKey(want)
	for _, k := range order {
		if err := compareResults(g[k], w[k]); err != nil {
			return fmt.Errorf("updates of window %v: %w", k, err)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("engine emitted %d updates, oracle %d", len(got), len(want))
	}
	return nil
}

// sameResult compares two results; measure values within a relative 1e-9.
func sameResult(a, b stream.Result) error {
	switch {
	case a.Group != b.Group || !slices.Equal(a.GroupValues, b.GroupValues):
		return errors.New("group differs")
	case a.Start != b.Start || a.End != b.End:
		return errors.New("window differs")
	case a.Count != b.Count:
		return errors.New("count differs")
	case a.Final != b.Final:
		return errors.New("final flag differs")
	case a.IngestTS != b.IngestTS || a.EventID != b.EventID:
		return errors.New("newest event differs")
	case len(a.Measures) != len(b.Measures):
		return errors.New("measure count differs")
	}
	for i := range a.Measures {
		x, y := a.Measures[i], b.Measures[i]
		if x.Column != y.Column || x.Null != y.Null {
			return fmt.Errorf("measure %d differs", i)
		}
		if !x.Null && math.Abs(x.Value-y.Value) > 1e-9*max(1, math.Abs(y.Value)) {
			return fmt.Errorf("measure %s differs", x.Column)
		}
	}
	return nil
}

func showResult(r stream.Result) string {
	var ms []string
	for _, m := range r.Measures {
		if m.Null {
			ms = append(ms, m.Column+"=null")
		} else {
			ms = append(ms, fmt.Sprintf("%s=%g", m.Column, m.Value))
		}
	}
	return fmt.Sprintf("{%s [%d,%d] n=%d final=%v newest=%s/%d %s}", r.Group, r.Start, r.End, r.Count, r.Final, r.EventID, r.IngestTS, strings.Join(ms, " "))
}

func showResults(rs []stream.Result) string {
	var s []string
	for _, r := range rs {
		s = append(s, showResult(r))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// fatalTB turns the driver's t.Fatalf into a panic the shrinker can recover.
type fatalTB struct{ testing.TB }

type fatalError string

func (f fatalTB) Fatalf(format string, args ...any) { panic(fatalError(fmt.Sprintf(format, args...))) }
func (f fatalTB) Fatal(args ...any)                 { panic(fatalError(fmt.Sprint(args...))) }
func (f fatalTB) Helper()                           {}

// try checks sc and turns an engine panic or driver failure into an error.
func (sc engineScenario) try(tb testing.TB) error {
	_, err := sc.tryOracle(tb)
	return err
}

// tryOracle is try that also returns the oracle's answer.
func (sc engineScenario) tryOracle(tb testing.TB) (want harness.OracleResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return sc.checkOracle(fatalTB{tb})
}

// without returns sc with event j removed, markers and restarts renumbered.
func (sc engineScenario) without(j int) engineScenario {
	out := sc
	out.events = slices.Delete(slices.Clone(sc.events), j, j+1)
	shift := func(p int) int {
		if p >= j {
			return p - 1
		}
		return p
	}
	out.advances = slices.Clone(sc.advances)
	for i := range out.advances {
		out.advances[i].AfterIndex = shift(out.advances[i].AfterIndex)
	}
	out.restarts = slices.Clone(sc.restarts)
	for i := range out.restarts {
		out.restarts[i] = shift(out.restarts[i])
	}
	return out
}

// shrink removes events, markers, restarts and measures while the engineScenario still fails.
func (sc engineScenario) shrink(tb testing.TB) engineScenario {
	for progress := true; progress; {
		progress = false
		for j := len(sc.events) - 1; j >= 0; j-- {
			if c := sc.without(j); c.try(tb) != nil {
				sc, progress = c, true
			}
		}
		for j := len(sc.advances) - 1; j >= 0; j-- {
			c := sc
			c.advances = slices.Delete(slices.Clone(sc.advances), j, j+1)
			if c.try(tb) != nil {
				sc, progress = c, true
			}
		}
		for j := len(sc.restarts) - 1; j >= 0; j-- {
			c := sc
			c.restarts = slices.Delete(slices.Clone(sc.restarts), j, j+1)
			if c.try(tb) != nil {
				sc, progress = c, true
			}
		}
		for j := len(sc.spec.Measures) - 1; j >= 0; j-- {
			c := sc
			c.spec.Measures = slices.Delete(slices.Clone(sc.spec.Measures), j, j+1)
			if c.try(tb) != nil {
				sc, progress = c, true
			}
		}
	}
	return sc
}

// String prints a engineScenario as a reproducible recipe.
func (sc engineScenario) String() string {
	var b strings.Builder
	s := sc.spec
	fmt.Fprintf(&b, "spec: %s size=%d advance=%d gap=%d grace=%d emit=%s sources=%q measures=%v\n",
		s.Type, s.Size, s.Advance, s.Gap, s.Grace, s.Emit, s.Sources, s.Measures)
	step := func(pos int) {
		for _, a := range sc.advances {
			if max(-1, min(a.AfterIndex, len(sc.events)-1)) == pos {
				fmt.Fprintf(&b, "  Advance(%s, %d)\n", a.Source, a.Watermark)
			}
		}
		for _, p := range sc.restarts {
			if max(-1, min(p, len(sc.events)-1)) == pos {
				fmt.Fprintf(&b, "  Restart()\n")
			}
		}
	}
	step(-1)
	for i, e := range sc.events {
		fmt.Fprintf(&b, "  %d: Add(%s t=%d group=%s id=%s ingest=%d values=%v)\n", i, e.Source, e.Time, e.GroupValues, e.EventID, e.IngestTS, e.Values)
		step(i)
	}
	return b.String()
}

// requireMatch fails the test with a shrunk engineScenario when engine and oracle differ; it
// returns the oracle's answer.
func requireMatch(t *testing.T, sc engineScenario) harness.OracleResult {
	t.Helper()
	want, err := sc.tryOracle(t)
	if err == nil {
		return want
	}
	small := sc.shrink(t)
	t.Fatalf("engine differs from oracle: %v\nminimal input (%d events, from %d):\n%s-> %v",
		err, len(small.events), len(sc.events), small, small.try(t))
	return want
}

func TestEngineMatchesOracle(t *testing.T) {
	for _, shape := range propShapes {
		for _, emit := range []stream.EmitMode{stream.EmitFinal, stream.EmitUpdates} {
			for _, restarts := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/restarts=%v", shape.name, emit, restarts)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					var events, finals, late, restartN int
					for seed := range uint64(propSeeds) {
						sc := newScenario(shape, emit, seed, restarts)
						o := requireMatch(t, sc)
						events, finals, late, restartN = events+len(sc.events), finals+len(o.Finals), late+len(o.Late), restartN+len(sc.restarts)
					}
					// Guard against vacuous inputs: windows must close and events be late.
					t.Logf("%d events, %d finals, %d late, %d restarts", events, finals, late, restartN)
					if finals < propSeeds || late == 0 || (restarts && restartN < 3*propSeeds) {
						t.Errorf("inputs too tame: %d finals, %d late, %d restarts", finals, late, restartN)
					}
				})
			}
		}
	}
}

// TestNoLateWithinGrace is the promise of docs/DESIGN.md#windows-and-watermarks: a record is late only if it is more
// than grace behind its own source partition, however unevenly the sources progress.
func TestNoLateWithinGrace(t *testing.T) {
	for _, shape := range propShapes {
		t.Run(shape.name, func(t *testing.T) {
			for seed := range uint64(6) {
				g := shape.gen
				g.Seed, g.Sources, g.Events = seed, 3, 300
				g.MaxDisorder = shape.spec.Grace
				g.SourceLag = g.Step * int64(10*seed)
				spec := shape.spec
				spec.Emit, spec.Measures, spec.Sources = stream.EmitFinal, allMeasures, harness.DisorderSourceIDs(3)
				sc := engineScenario{spec: spec, events: harness.Disorder(g), restarts: []int{100, 200}}
				if late := harness.Oracle(spec, sc.events).Late; len(late) != 0 {
					t.Fatalf("seed %d: oracle says %d events late", seed, len(late))
				}
				requireMatch(t, sc)
			}
		})
	}
}

// FuzzEngineMatchesOracle derives small scenarios from bytes: each pair of bytes is an
// event (source, group and a time delta that may go backwards) or, now and then, a
// marker or a restart.
func FuzzEngineMatchesOracle(f *testing.F) {
	f.Add(uint8(0), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add(uint8(1), []byte{0x10, 0x05, 0x22, 0x80, 0x31, 0xf0, 0x40, 0x02})
	f.Add(uint8(2), []byte{0xff, 0xff, 0x00, 0x00, 0x7f, 0x01, 0x33, 0x44, 0x12, 0x90})
	f.Add(uint8(3), binary.BigEndian.AppendUint64(nil, 0x0123456789abcdef))
	f.Fuzz(func(t *testing.T, shapeSel uint8, data []byte) {
		shapes := propShapes[3:] // the small ones stress boundaries
		shape := shapes[int(shapeSel)%len(shapes)]
		spec := shape.spec
		spec.Name, spec.Measures = "fuzz", allMeasures
		spec.Emit = []stream.EmitMode{stream.EmitFinal, stream.EmitUpdates}[int(shapeSel/16)%2]
		spec.Sources = harness.DisorderSourceIDs(2)
		sc := engineScenario{spec: spec}
		now := int64(0)
		for i := 0; i+1 < len(data) && len(sc.events) < 64; i += 2 {
			a, b := data[i], data[i+1]
			src := spec.Sources[a&1]
			switch {
			case a>>5 == 7 && len(sc.events) > 0: // marker
				sc.advances = append(sc.advances, harness.OracleAdvance{AfterIndex: len(sc.events) - 1, Source: src, Watermark: now + int64(b%16) - 8})
			case a>>5 == 6 && len(sc.events) > 0: // restart
				sc.restarts = append(sc.restarts, len(sc.events)-1)
			default:
				now += int64(b % 8)
				ts := now - int64(b>>3)%12
				n := len(sc.events)
				g := fmt.Sprintf("g%d", (a>>1)&1)
				sc.events = append(sc.events, stream.Event{
					Source: src, Time: ts, Group: stream.GroupKey([]string{g}), GroupValues: []string{g},
					Values: map[string]any{"amount": float64(a), "user_id": fmt.Sprintf("u%d", b&3)}, IngestTS: int64(n + 1), EventID: fmt.Sprintf("ev-%d", n),
				})
			}
		}
		if err := sc.try(t); err != nil {
			small := sc.shrink(t)
			t.Fatalf("engine differs from oracle: %v\nminimal input:\n%s-> %v", err, small, small.try(t))
		}
	})
}

// TestEngineMatchesOracleEdgeCases runs hand-made edge cases of the rules of
// docs/DESIGN.md#windows-and-watermarks through engine and oracle.
func TestEngineMatchesOracleEdgeCases(t *testing.T) {
	ev := func(src string, ts int64, g string, vals map[string]any) stream.Event {
		e := oev(src, ts, g)
		e.Group = stream.GroupKey(e.GroupValues)
		e.Values, e.IngestTS = vals, ts
		e.EventID = fmt.Sprintf("%s/%s@%d", src, g, ts)
		return e
	}
	spec := func(typ stream.WindowType, size, adv, gap, grace int64, emit stream.EmitMode, sources ...string) stream.Spec {
		return stream.Spec{Name: "edge", Type: typ, Size: size, Advance: adv, Gap: gap, Grace: grace, Emit: emit, Measures: allMeasures, Sources: sources}
	}
	amount := func(v any) map[string]any { return map[string]any{"amount": v, "user_id": v} }
	cases := []struct {
		name string
		sc   engineScenario
	}{
		{"source outside Spec.Sources", engineScenario{
			spec:   spec(stream.Tumbling, 10, 0, 0, 0, stream.EmitFinal, "p0"),
			events: []stream.Event{ev("p0", 1, "a", nil), ev("px", 30, "a", nil), ev("p0", 20, "a", nil), ev("px", 2, "a", nil)},
			advances: []harness.OracleAdvance{
				{AfterIndex: 3, Source: "px", Watermark: 100},
				{AfterIndex: 3, Source: "p0", Watermark: 100},
			},
		}},
		{"flush with the largest watermark", engineScenario{
			spec:     spec(stream.Hopping, 10, 5, 0, 7, stream.EmitFinal, "p0", "p1"),
			events:   []stream.Event{ev("p0", -3, "a", nil), ev("p1", 4, "b", nil), ev("p0", 12, "a", nil)},
			advances: []harness.OracleAdvance{{AfterIndex: 2, Source: "p0", Watermark: math.MaxInt64}, {AfterIndex: 2, Source: "p1", Watermark: math.MaxInt64}},
			restarts: []int{2},
		}},
		{"sessions flushed with the largest watermark", engineScenario{
			spec:     spec(stream.Session, 0, 0, 5, 3, stream.EmitFinal, "p0"),
			events:   []stream.Event{ev("p0", -3, "a", nil), ev("p0", 4, "b", nil), ev("p0", 2, "a", nil)},
			advances: []harness.OracleAdvance{{AfterIndex: 2, Source: "p0", Watermark: math.MaxInt64}},
		}},
		{"far negative times", engineScenario{
			spec:     spec(stream.Hopping, 60_000, 20_000, 0, 1_000, stream.EmitFinal, "p0"),
			events:   []stream.Event{ev("p0", -1e15, "a", nil), ev("p0", -1e15+59_999, "a", nil), ev("p0", -1e15+61_000, "a", nil), ev("p0", -1e15+1, "a", nil)},
			advances: []harness.OracleAdvance{{AfterIndex: 3, Source: "p0", Watermark: 0}},
		}},
		{"numeric types, nil and distinct by %v", engineScenario{
			spec: spec(stream.Tumbling, 10, 0, 0, 0, stream.EmitFinal, "p0"),
			events: []stream.Event{
				ev("p0", 1, "a", amount(int64(3))), ev("p0", 2, "a", amount(int32(-7))), ev("p0", 3, "a", amount(float32(0.5))),
				ev("p0", 4, "a", amount(nil)), ev("p0", 5, "a", amount(3.0)), ev("p0", 6, "b", amount(nil)), ev("p0", 7, "c", nil),
			},
			advances: []harness.OracleAdvance{{AfterIndex: 6, Source: "p0", Watermark: 10}},
			restarts: []int{3},
		}},
		{"session merge in updates mode and restart", engineScenario{
			spec: spec(stream.Session, 0, 0, 5, 0, stream.EmitUpdates, "p0", "p1"),
			events: []stream.Event{
				ev("p0", 10, "a", amount(1.0)), ev("p0", 12, "a", amount(2.0)), ev("p0", 20, "a", amount(4.0)), ev("p1", 16, "a", amount(8.0)),
				ev("p1", 25, "a", amount(16.0)),
			},
			advances: []harness.OracleAdvance{{AfterIndex: -1, Source: "p1", Watermark: 14}, {AfterIndex: 4, Source: "p0", Watermark: 40}},
			restarts: []int{-1, 0, 1, 2, 3, 4},
		}},
		{"exact close instant on each side", engineScenario{
			spec: spec(stream.Tumbling, 10, 0, 0, 3, stream.EmitFinal, "p0"),
			events: []stream.Event{
				ev("p0", 12, "a", nil), ev("p0", 9, "a", nil), ev("p0", 13, "a", nil), ev("p0", 9, "b", nil), ev("p0", 10, "b", nil),
			},
		}},
		{"equal timestamps across groups and sources", engineScenario{
			spec: spec(stream.Session, 0, 0, 5, 0, stream.EmitFinal, "p0", "p1"),
			events: []stream.Event{
				ev("p0", 10, "a", nil), ev("p1", 10, "b", nil), ev("p0", 15, "b", nil), ev("p1", 15, "a", nil), ev("p1", 15, "c", nil), ev("p0", 20, "a", nil),
			},
			advances: []harness.OracleAdvance{{AfterIndex: 5, Source: "p1", Watermark: 30}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { requireMatch(t, tc.sc) })
	}
}
