package stream_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// apply performs one op and returns its outputs, late records included, as strings.
func (e *engine) apply(o op) []string {
	if o.adv {
		return e.fmtAll(e.agg.Advance(o.ev.Source, o.ev.Time))
	}
	rs, late := e.agg.Add(o.ev)
	out := e.fmtAll(rs)
	if late != nil {
		out = append(out, fmt.Sprintf("late %s@%d st=%d", o.ev.Group, o.ev.Time, late.StreamTime))
	}
	return out
}

// Crash recovery (section 4 case 13): a task commits every batch (outputs, changelog and
// input offsets together); when it crashes, the uncommitted batch's outputs are lost,
// a new engine is rebuilt from the changelog alone (through the codecs) and the input is
// replayed from the last commit. The committed outputs must equal an uninterrupted run,
// record for record: no result lost or duplicated, the same records late.
func TestCrashRecovery(t *testing.T) {
	const n, batch = 2000, 37
	crashes := []struct {
		name string
		at   []int // op indexes at which the task crashes (before processing that op)
	}{
		{"crash right after a commit", []int{batch * 20}},
		{"crash mid-batch", []int{batch*20 + 11}},
		{"three crashes", []int{batch*5 + 3, batch * 27, n - 5}},
	}
	for _, spec := range specsUnderTest() {
		for _, preload := range []bool{false, true} {
			ops := genStream(42, n, spec.Sources, 20, 8)
			want := runUninterrupted(t, spec, ops, batch)
			for _, c := range crashes {
				t.Run(fmt.Sprintf("%s/%s/preload=%v", specName(spec), c.name, preload), func(t *testing.T) {
					var log changelog
					e := newEngine(t, spec)
					var committed, pending []string
					done := 0 // ops committed
					for i := 0; i < len(ops); {
						if len(c.at) > 0 && i == c.at[0] {
							c.at = c.at[1:]
							pending = nil
							e = log.restore(t, spec, preload)
							i = done
							continue
						}
						pending = append(pending, e.apply(ops[i])...)
						i++
						if i%batch == 0 || i == len(ops) {
							log.commit(e)
							committed = append(committed, pending...)
							pending = nil
							done = i
						}
					}
					if !slices.Equal(committed, want) {
						i := 0
						for i < min(len(committed), len(want)) && committed[i] == want[i] {
							i++
						}
						t.Fatalf("outputs differ from the uninterrupted run at %d (got %d, want %d outputs):\n got  %q\n want %q",
							i, len(committed), len(want), committed[i:min(i+3, len(committed))], want[i:min(i+3, len(want))])
					}
				})
			}
		}
	}
}

func runUninterrupted(t *testing.T, spec stream.Spec, ops []op, batch int) []string {
	t.Helper()
	var log changelog
	e := newEngine(t, spec)
	var out []string
	for i, o := range ops {
		out = append(out, e.apply(o)...)
		if (i+1)%batch == 0 {
			log.commit(e)
		}
	}
	return out
}

// A restored engine has the same stream time, watermarks and open windows, so a record
// late before the restart is late after it.
func TestRestoredState(t *testing.T) {
	spec := withMeasures(hopping(10, 5, 2, stream.EmitFinal, "p0", "p1"), oracleMeasures)
	e := newEngine(t, spec)
	var log changelog
	for _, o := range genStream(9, 500, spec.Sources, 5, 4) {
		e.apply(o)
	}
	log.commit(e)
	r := log.restore(t, spec)
	if r.agg.StreamTime() != e.agg.StreamTime() || r.agg.OpenWindows() != e.agg.OpenWindows() {
		t.Fatalf("restored stream time %d, open %d; want %d, %d", r.agg.StreamTime(), r.agg.OpenWindows(), e.agg.StreamTime(), e.agg.OpenWindows())
	}
	for _, src := range []string{"p0", "p1", "nope"} {
		if r.agg.Watermark(src) != e.agg.Watermark(src) {
			t.Fatalf("Watermark(%s) = %d, want %d", src, r.agg.Watermark(src), e.agg.Watermark(src))
		}
	}
	st := e.agg.StreamTime()
	late := stream.Event{Source: "p0", Time: st - 13, Group: "g1"}
	_, l1 := e.agg.Add(late)
	_, l2 := r.agg.Add(late)
	if l1 == nil || l2 == nil || *l1 != *l2 {
		t.Fatalf("late before restart %+v, after %+v; want both late", l1, l2)
	}
	got := append(r.fmtAll(r.agg.Advance("p1", st+1000)), r.fmtAll(r.agg.Advance("p0", st+1000))...)
	want := append(e.fmtAll(e.agg.Advance("p1", st+1000)), e.fmtAll(e.agg.Advance("p0", st+1000))...)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("restored engine closes\n %q\nwant\n %q", got, want)
	}
}
