package stream_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
)

// boundOps is n records from p0, each alone in its window (groups g0..g999, times 10
// apart: tumbling size 10, sessions of gap 5), while p1 is silent so nothing closes; then
// p1's watermark jumps to jump, closing every window but the last group's; then records
// that meet windows closed but (under the bound) still in state: one for the first
// window (late: closed), one exactly gap after the last session (a new session, not a
// merge with the closed one), and fresh windows closing later.
func boundOps(n int) []op {
	ops := make([]op, 0, n+40)
	ev := func(src string, t int64, g string, i int) op {
		return op{ev: stream.Event{Source: src, Time: t, Group: g, GroupValues: []string{g},
			Values: map[string]any{"v": int64(i % 7), "u": fmt.Sprint("u", i%3)}, IngestTS: int64(i), EventID: fmt.Sprint("e", i)}}
	}
	for i := range n {
		g := fmt.Sprint("g", i%1000)
		ops = append(ops, ev("p0", int64(i)*10, g, i))
	}
	last := int64(n-1) * 10
	jump := last + 5 // the last session (end last, gap 5) closes at exactly the jump
	ops = append(ops, op{adv: true, ev: stream.Event{Source: "p0", Time: jump + 20}})
	ops = append(ops, op{adv: true, ev: stream.Event{Source: "p1", Time: jump}})
	ops = append(ops, ev("p0", 3, "g0", n))                             // late
	ops = append(ops, ev("p1", jump, fmt.Sprint("g", (n-1)%1000), n+1)) // gap after the last session
	for k := range 30 {
		ops = append(ops, ev([]string{"p0", "p1"}[k%2], jump+int64(k), fmt.Sprint("h", k%4), n+2+k))
	}
	ops = append(ops, op{adv: true, ev: stream.Event{Source: "p0", Time: jump + 1000}})
	ops = append(ops, op{adv: true, ev: stream.Event{Source: "p1", Time: jump + 1000}})
	return ops
}

// outputs splits one call's outputs by kind: final results, updates, late records.
type outputs struct{ finals, updates, lates []string }

func (o *outputs) add(typ stream.WindowType, rs []stream.Result, ev stream.Event, late bool) {
	for _, r := range rs {
		if r.Final {
			o.finals = append(o.finals, fmtResult(typ, r))
		} else {
			o.updates = append(o.updates, fmtResult(typ, r))
		}
	}
	if late {
		o.lates = append(o.lates, fmt.Sprintf("late %s@%d", ev.Group, ev.Time))
	}
}

func (o *outputs) addStrings(ss []string, ev stream.Event, late bool) {
	for _, s := range ss {
		if len(s) > 6 && s[len(s)-6:] == " final" {
			o.finals = append(o.finals, s)
		} else {
			o.updates = append(o.updates, s)
		}
	}
	if late {
		o.lates = append(o.lates, fmt.Sprintf("late %s@%d", ev.Group, ev.Time))
	}
}

func (o *outputs) append(p outputs) {
	o.finals = append(o.finals, p.finals...)
	o.updates = append(o.updates, p.updates...)
	o.lates = append(o.lates, p.lates...)
}

// boundBackend opens an engine's stores, and reopens them as a restarted task would.
type boundBackend struct {
	name string
	// open returns an engine over stores holding the committed state (log: the changelog
	// so far, for the memory backend; dir: the stores' directory, for pebble).
	open func(t *testing.T, spec stream.Spec, log *changelog, dir string) *engine
}

func boundBackends() []boundBackend {
	return []boundBackend{
		{"memory", func(t *testing.T, spec stream.Spec, log *changelog, _ string) *engine {
			return log.restore(t, spec)
		}},
		{"pebble", func(t *testing.T, spec stream.Spec, _ *changelog, dir string) *engine {
			wb, err := pebblestore.Open[*stream.WindowState](dir+"/windows", stream.WindowStateCodec{}, pebblestore.Options{CacheBytes: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			mb, err := pebblestore.Open[int64](dir+"/marks", stream.Int64Codec{}, pebblestore.Options{CacheBytes: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			e := &engine{
				windows: stream.NewStoreOn[*stream.WindowState]("windows", stream.WindowStateCodec{}, wb),
				marks:   stream.NewStoreOn[int64]("marks", stream.Int64Codec{}, mb),
				spec:    spec,
			}
			t.Cleanup(func() { _ = e.windows.Close(); _ = e.marks.Close() })
			agg, err := stream.NewAggregator(spec, e.windows, e.marks)
			if err != nil {
				t.Fatal(err)
			}
			e.agg = agg
			return e
		}},
	}
}

// TestWindowCloseBoundedPerTransaction: a watermark jump that closes 100,000 windows
// (30,000 with -short) closes at most stream.DefaultExpiryLimit of them per transaction
// (tombstones and final results), the rest in the following transactions (ticks call
// CloseDue); a closed window left in state takes no record and merges with no session;
// the final results, updates and late records equal, in order, those of the naive oracle
// (3,000 windows, bound 250: the oracle scans every window per record) and of an
// unbounded engine (100,000 windows), on both backends, also when a transaction in the
// middle of the drain aborts and the task restarts from its committed state.
func TestWindowCloseBoundedPerTransaction(t *testing.T) {
	big := 100_000
	if testing.Short() {
		big = 30_000
	}
	const batch = 2000 // records per transaction before the jump
	specs := []stream.Spec{
		withMeasures(tumbling(10, 0, stream.EmitFinal, "p0", "p1"), oracleMeasures),
		withMeasures(tumbling(10, 0, stream.EmitUpdates, "p0", "p1"), oracleMeasures),
		withMeasures(session(5, 0, stream.EmitFinal, "p0", "p1"), oracleMeasures),
	}
	for _, size := range []struct {
		n, limit int
		oracle   bool
	}{{3000, 250, true}, {big, stream.DefaultExpiryLimit, false}} {
		n, limit := size.n, size.limit
		ops := boundOps(n)
		for _, spec := range specs {
			var want outputs
			wantOpen := 0
			if size.oracle {
				o := newOracle(spec)
				for _, op := range ops {
					if op.adv {
						want.addStrings(o.advance(op.ev.Source, op.ev.Time), op.ev, false)
						continue
					}
					ss, late := o.add(op.ev)
					want.addStrings(ss, op.ev, late)
				}
				wantOpen = len(o.wins)
			} else {
				u := newEngine(t, spec)
				u.agg.CloseLimit(1 << 40)
				for _, op := range ops {
					if op.adv {
						want.add(spec.Type, u.agg.Advance(op.ev.Source, op.ev.Time), op.ev, false)
						continue
					}
					rs, late := u.agg.Add(op.ev)
					want.add(spec.Type, rs, op.ev, late != nil)
				}
				wantOpen = u.agg.OpenWindows()
			}
			if len(want.lates) == 0 {
				t.Fatal("boundOps has no late record")
			}
			for _, b := range boundBackends() {
				for _, abortAt := range []int{-1, 3} { // drain transaction that aborts (-1: none)
					t.Run(fmt.Sprintf("n=%d/%s/%s/abort=%d", n, specName(spec), b.name, abortAt), func(t *testing.T) {
						dir := t.TempDir()
						var log changelog
						e := b.open(t, spec, &log, dir)
						e.agg.CloseLimit(limit)
						var got outputs
						largest, drains, aborted := 0, 0, false
						for i, txns := 0, 0; ; txns++ {
							if txns > n/batch+n/limit+20 {
								t.Fatalf("still closing after %d transactions", txns)
							}
							start := i
							var pending outputs
							jumped := false
							for ; i < len(ops) && (i-start < batch || i == start); i++ {
								op := ops[i]
								if op.adv {
									pending.add(spec.Type, e.agg.Advance(op.ev.Source, op.ev.Time), op.ev, false)
									if op.ev.Source == "p1" {
										jumped = true
										i++
										break // the jump ends its transaction
									}
									continue
								}
								rs, late := e.agg.Add(op.ev)
								pending.add(spec.Type, rs, op.ev, late != nil)
								if e.agg.CloseBacklog() {
									i++
									break // one record per transaction while closed windows wait
								}
							}
							pending.add(spec.Type, e.agg.CloseDue(), stream.Event{}, false) // the tick
							tombs := 0
							e.windows.Changes(func(_ string, v []byte) {
								if v == nil {
									tombs++
								}
							})
							if tombs > limit || len(pending.finals) > limit {
								t.Fatalf("transaction %d: %d tombstones, %d final results; bound %d", txns, tombs, len(pending.finals), limit)
							}
							largest = max(largest, tombs)
							if e.agg.CloseBacklog() || jumped {
								drains++
							}
							if drains == abortAt && !aborted {
								// The transaction aborts: its outputs are gone, the task restarts
								// from its committed state and the input from the last commit.
								aborted = true
								e.windows.Abort()
								e.marks.Abort()
								if b.name == "pebble" {
									_ = e.windows.Close()
									_ = e.marks.Close()
								}
								e = b.open(t, spec, &log, dir)
								e.agg.CloseLimit(limit)
								i = start
								continue
							}
							log.commit(e)
							got.append(pending)
							if i == len(ops) && !e.agg.CloseBacklog() {
								break
							}
						}
						if largest != limit {
							t.Fatalf("largest transaction %d tombstones; want the bound %d reached", largest, limit)
						}
						if abortAt >= 0 && !aborted {
							t.Fatal("no transaction aborted")
						}
						for _, c := range []struct {
							kind      string
							got, want []string
						}{{"final results", got.finals, want.finals}, {"updates", got.updates, want.updates}, {"late records", got.lates, want.lates}} {
							if !slices.Equal(c.got, c.want) {
								i := 0
								for i < min(len(c.got), len(c.want)) && c.got[i] == c.want[i] {
									i++
								}
								t.Fatalf("%s differ from the oracle at %d (got %d, want %d):\n got  %q\n want %q", c.kind, i, len(c.got), len(c.want),
									c.got[i:min(i+3, len(c.got))], c.want[i:min(i+3, len(c.want))])
							}
						}
						if e.agg.OpenWindows() != wantOpen {
							t.Fatalf("OpenWindows %d, want %d", e.agg.OpenWindows(), wantOpen)
						}
					})
				}
			}
		}
	}
}
