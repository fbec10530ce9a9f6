package stream

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"slices"
)

// Aggregator is the window engine of one task. It is deterministic: its outputs depend
// only on the sequence of calls, never on wall-clock time or map order. State lives in
// the two stores (so the stage can changelog and restore it); after the stores were
// restored call Restored to rebuild the in-memory indexes.
//
// Semantics (docs/DESIGN.md#windows-and-watermarks, written here so tests can be exact):
//   - Tumbling/hopping windows are [start, start+size), start a multiple of advance
//     (size for tumbling), aligned to the epoch with floor division (negative times ok).
//     A hopping record belongs to every window with start <= t < start+size.
//   - A session holds records whose gaps are at most Gap; a record exactly Gap after the
//     last joins; a record that bridges two open sessions merges them.
//   - A source's watermark is the largest event time seen from it (via Add or Advance);
//     it never moves backwards. Stream time = min over Spec.Sources.
//   - A window is closed when streamTime >= end + grace (sessions: lastRecordTime + gap +
//     grace). The SAME predicate decides acceptance and emission.
//   - Add: first update the source's watermark (and so stream time), then assign the
//     event to its windows that are not closed (a hopping record may be partly
//     accepted), then emit every window that is now closed (in order of end time, then
//     group, then start). A record none of whose windows is open is late: nothing is
//     applied, Add returns a non-nil *Late. For sessions: a record is late if the
//     session it would form (after merging with the open sessions it is within Gap of)
//     is closed; closed sessions are never reopened.
//   - Closing is bounded per transaction: at most CloseLimit windows (DefaultExpiryLimit
//     unless set) are emitted and deleted in one transaction of the windows store (its
//     Txn count); windows closed beyond it stay in state, closed, and are emitted, in the
//     same order, by the next calls (Add, Advance or CloseDue) of later transactions. A
//     closed window still in state takes no records (the predicate above decides) and no
//     session merges with it, so the results are those of an unbounded engine, later.
//   - Emit final: each closed window emits exactly one Result (Final=true) and is
//     deleted from state (a tombstone in the changelog). Emit updates: every Add that
//     changes a window emits that window's current result (Final=false); when a session
//     merge removes sessions, nothing is emitted for the removed ones (documented
//     limitation); closing deletes state silently.
//   - Clarification (sessions): the open sessions a record merges with are those still
//     in state. Closed windows are emitted at the end of every call, so the only closed
//     session still in state is one whose close instant this very record reached: grace
//     0 and a record exactly Gap after the session's last record. Such a record joins it
//     (a record exactly gap after the last one joins), the merged session is open,
//     and nothing emitted ever changes.
//
// Closing is driven by a min-heap of close times, so a record costs O(log n) in the open
// windows, never a scan of them. The engine mutates the states it stores in place: after
// a transaction aborts, rebuild it from the changelog (fresh stores, NewAggregator,
// Restored) instead of reusing the aborted stores. An Aggregator is not safe for
// concurrent use.
type Aggregator struct {
	spec      Spec
	perRecord int64 // windows per record: Size/Advance (tumbling and hopping)
	plan      measurePlan
	windows   *Store[*WindowState]
	marks     *Store[int64]
	wm        watermarks
	groups    map[string]*groupWins
	free      []*groupWins
	heap      closeHeap
	open      int
	// closedTo is the stream time of the last closing pass: every window whose close time
	// is at or before it is closed, emitted or not yet (closing is bounded per
	// transaction); nothing more can close until stream time passes it.
	closedTo int64
	// closeLimit is the most windows one transaction closes (results and tombstones);
	// closeTxn is the windows store's Txn() that closeDone counts for; largestClose is
	// the most windows one transaction closed.
	closeLimit   int
	closeTxn     uint64
	closeDone    int
	largestClose int
	// results is a slab the returned result slices are cut from (see outStart).
	results []Result
}

// resultSlab is how many results one slab holds.
const resultSlab = 256

// ErrInvalidSpec is returned (wrapped, naming the field) by NewAggregator for a Spec
// that breaks its documented constraints.
var ErrInvalidSpec = errors.New("invalid window spec")

// LateWindowClosed is Late.Reason for a record all of whose windows were closed.
const LateWindowClosed = "window closed"

// maxFreeGroups bounds the free list of group indexes kept for reuse.
const maxFreeGroups = 1024

// NewAggregator returns an engine over the given stores: windows holds open windows
// (key: GroupKey + "@" + 16 hex digits of the start with its sign bit flipped, so a
// group's keys sort by start), marks holds the per-source watermarks (key: source id).
// Stores that already hold state (restored) are indexed at once. A tumbling spec may
// leave Advance 0 (it is Size); an empty Emit means EmitFinal.
func NewAggregator(spec Spec, windows *Store[*WindowState], marks *Store[int64]) (*Aggregator, error) {
	if windows == nil || marks == nil {
		return nil, fmt.Errorf("%w %q: nil store", ErrInvalidSpec, spec.Name)
	}
	spec.Measures = slices.Clone(spec.Measures)
	spec.Sources = slices.Clone(spec.Sources)
	if err := validateSpec(&spec); err != nil {
		return nil, err
	}
	a := &Aggregator{
		spec:    spec,
		plan:    newMeasurePlan(spec.Measures),
		windows: windows,
		marks:   marks,
		wm:      newWatermarks(spec.Sources),
		groups:  make(map[string]*groupWins),

		closeLimit: DefaultExpiryLimit,
	}
	if spec.Type != Session {
		a.perRecord = spec.Size / spec.Advance
	}
	a.Restored()
	return a, nil
}

// validateSpec checks spec and fills defaults.
func validateSpec(s *Spec) error {
	bad := func(field, want string, got any) error {
		return fmt.Errorf("%w %q: %s: must be %s (got %v)", ErrInvalidSpec, s.Name, field, want, got)
	}
	switch s.Type {
	case Tumbling:
		if s.Size <= 0 {
			return bad("size", "> 0", s.Size)
		}
		if s.Advance == 0 {
			s.Advance = s.Size
		}
		if s.Advance != s.Size {
			return bad("advance", "0 or size for a tumbling window", s.Advance)
		}
	case Hopping:
		if s.Size <= 0 {
			return bad("size", "> 0", s.Size)
		}
		if s.Advance <= 0 || s.Advance > s.Size {
			return bad("advance", fmt.Sprintf("in (0, size=%d]", s.Size), s.Advance)
		}
		if s.Size%s.Advance != 0 {
			return bad("advance", fmt.Sprintf("a divisor of size=%d", s.Size), s.Advance)
		}
	case Session:
		if s.Gap <= 0 {
			return bad("gap", "> 0", s.Gap)
		}
	default:
		return bad("type", "tumbling, hopping or session", fmt.Sprintf("%q", s.Type))
	}
	if s.Grace < 0 {
		return bad("grace", ">= 0", s.Grace)
	}
	switch s.Emit {
	case "":
		s.Emit = EmitFinal
	case EmitFinal, EmitUpdates:
	default:
		return bad("emit", "final or updates", fmt.Sprintf("%q", s.Emit))
	}
	for i, m := range s.Measures {
		switch m.Func {
		case MeasureCount:
		case MeasureCountDistinct, MeasureSum, MeasureAvg, MeasureMin, MeasureMax:
			if m.Field == "" {
				return bad(fmt.Sprintf("measures[%d].field", i), "set for "+string(m.Func), `""`)
			}
		default:
			return bad(fmt.Sprintf("measures[%d].func", i), "count, count_distinct, sum, avg, min or max", fmt.Sprintf("%q", m.Func))
		}
	}
	if len(s.Sources) == 0 {
		return bad("sources", "non-empty (stream time is their minimum watermark)", "[]")
	}
	seen := make(map[string]bool, len(s.Sources))
	for i, src := range s.Sources {
		if seen[src] {
			return bad(fmt.Sprintf("sources[%d]", i), "unique", fmt.Sprintf("%q", src))
		}
		seen[src] = true
	}
	return nil
}

// Restored rebuilds the in-memory indexes (per-group windows and sessions, the close
// heap, the watermarks and stream time, the open-window count) from the stores, e.g.
// after they were restored from their changelogs. NewAggregator calls it too.
func (a *Aggregator) Restored() {
	a.wm.reset()
	a.marks.Range(func(src string, v int64) bool {
		a.wm.raise(src, v)
		return true
	})
	clear(a.groups)
	clear(a.heap)
	a.heap = a.heap[:0]
	a.open = 0
	// Windows in state that are closed at the restored stream time (left by a
	// transaction that reached its closing bound) stay closed: the next calls emit them.
	a.closedTo = a.wm.current
	a.windows.Range(func(k string, ws *WindowState) bool {
		if ws == nil {
			return true
		}
		a.plan.fit(ws)
		group := groupOfKey(k, ws.start)
		g := a.groups[group]
		if g == nil {
			g = a.newGroup(group, ws.groupValues)
		}
		g.wins = append(g.wins, winRef{key: k, st: ws})
		a.open++
		return true
	})
	for _, g := range a.groups {
		slices.SortFunc(g.wins, func(x, y winRef) int {
			if c := cmp.Compare(x.st.start, y.st.start); c != 0 {
				return c
			}
			return cmp.Compare(x.key, y.key)
		})
		for _, r := range g.wins {
			a.heap = append(a.heap, closeEntry{close: a.closeOf(r.st), end: r.st.end, start: r.st.start, group: g.key})
		}
	}
	heap.Init(&a.heap)
}

// Add applies one event and returns the results it caused, or a non-nil *Late. A late
// event is not applied, but it may still raise its source's watermark (only a source
// outside Spec.Sources can be behind its own late record) and the results of windows
// that closed are returned along with the *Late.
func (a *Aggregator) Add(ev Event) ([]Result, *Late) {
	a.observe(ev.Source, ev.Time)
	st := a.wm.current
	a.plan.prepare(&ev)
	out := a.outStart()
	var applied bool
	if a.spec.Type == Session {
		out, applied = a.addSession(&ev, st, out)
	} else {
		out, applied = a.addFixed(&ev, st, out)
	}
	out = a.outEnd(a.closeDue(out))
	if !applied {
		return out, &Late{Reason: LateWindowClosed, StreamTime: st}
	}
	return out, nil
}

// Advance raises a source's watermark (a watermark marker from upstream, or idle
// advance) and returns the results of the windows that closed. A watermark not above
// the source's current one is ignored: watermarks never move backwards.
func (a *Aggregator) Advance(source string, watermark int64) []Result {
	a.observe(source, watermark)
	return a.outEnd(a.closeDue(a.outStart()))
}

// outStart returns an empty result slice backed by the slab's spare capacity, so
// returning results costs no allocation per call.
func (a *Aggregator) outStart() []Result {
	if cap(a.results)-len(a.results) < 8 {
		a.results = make([]Result, 0, resultSlab)
	}
	return a.results[len(a.results):len(a.results)]
}

// outEnd hands out to the caller: nil when empty, else capped at its length (so a
// caller's append never writes into the slab); the slab's used part grows by out when
// out still lives there (append moved it elsewhere when it outgrew the spare capacity).
func (a *Aggregator) outEnd(out []Result) []Result {
	if len(out) == 0 {
		return nil
	}
	if n := len(a.results); cap(out) == cap(a.results)-n && &out[0] == &a.results[:n+1][n] {
		a.results = a.results[:n+len(out)]
	}
	return out[:len(out):len(out)]
}

// CloseDue emits windows that are closed but were left in state by the per-transaction
// bound (see CloseLimit), within this transaction's bound: a task calls it in
// transactions without records (ticks) so a watermark jump drains without new input.
func (a *Aggregator) CloseDue() []Result {
	return a.outEnd(a.closeDue(a.outStart()))
}

// CloseLimit sets the most windows one transaction closes (default DefaultExpiryLimit,
// at least 1) and returns a.
func (a *Aggregator) CloseLimit(n int) *Aggregator {
	a.closeLimit = max(n, 1)
	return a
}

// CloseBacklog reports whether closed windows wait in state for a later transaction.
func (a *Aggregator) CloseBacklog() bool {
	return len(a.heap) > 0 && a.heap[0].close <= a.closedTo
}

// LargestCloseBatch is the most windows one transaction has closed (each a tombstone,
// and in emit-final mode a result).
func (a *Aggregator) LargestCloseBatch() int { return a.largestClose }

// StreamTime is the current stream time (NoWatermark until every source reported).
func (a *Aggregator) StreamTime() int64 { return a.wm.current }

// Watermark returns one source's watermark (NoWatermark if not heard from).
func (a *Aggregator) Watermark(source string) int64 { return a.wm.get(source) }

// OpenWindows is the number of open windows (sessions included) in state.
func (a *Aggregator) OpenWindows() int { return a.open }

// closeOf is a window's close time: end+grace (sessions: end+gap+grace), saturated.
func (a *Aggregator) closeOf(ws *WindowState) int64 {
	if a.spec.Type == Session {
		return a.sessionClose(ws.end)
	}
	return satAdd(ws.end, a.spec.Grace)
}

// closeDue removes windows closed at the current stream time, in order of end, group,
// start, appending their final results in emit-final mode, until the transaction's
// closing bound; the rest stay in state for the next calls.
func (a *Aggregator) closeDue(out []Result) []Result {
	if st := a.wm.current; st > a.closedTo {
		a.closedTo = st
	}
	if len(a.heap) == 0 || a.heap[0].close > a.closedTo {
		return out
	}
	if g := a.windows.Txn(); g != a.closeTxn {
		a.closeTxn, a.closeDone = g, 0
	}
	for len(a.heap) > 0 && a.heap[0].close <= a.closedTo && a.closeDone < a.closeLimit {
		e := &a.heap[0]
		g := a.groups[e.group]
		if g == nil {
			a.heap.popTop()
			continue
		}
		i, ok := g.find(e.start)
		if !ok {
			a.heap.popTop() // stale: the window closed or merged away
			continue
		}
		ws := g.wins[i].st
		if c := a.closeOf(ws); c != e.close || ws.end != e.end {
			// The session grew since this entry was pushed: reschedule it.
			e.close, e.end = c, ws.end
			heap.Fix(&a.heap, 0)
			continue
		}
		a.heap.popTop()
		if a.spec.Emit == EmitFinal {
			out = append(out, a.result(g.key, ws, true))
		}
		a.remove(g, i)
		a.closeDone++
	}
	a.largestClose = max(a.largestClose, a.closeDone)
	return out
}

// result is the current result of ws.
func (a *Aggregator) result(group string, ws *WindowState, final bool) Result {
	return Result{
		Group:       group,
		GroupValues: ws.groupValues,
		Start:       ws.start,
		End:         ws.end,
		Count:       ws.count,
		Measures:    a.plan.values(ws),
		Final:       final,
		IngestTS:    ws.ingestTS,
		EventID:     ws.eventID,
	}
}

// group returns ev's group index, creating it.
func (a *Aggregator) group(ev *Event) *groupWins {
	if g := a.groups[ev.Group]; g != nil {
		return g
	}
	return a.newGroup(ev.Group, slices.Clone(ev.GroupValues))
}

func (a *Aggregator) newGroup(key string, values []string) *groupWins {
	var g *groupWins
	if n := len(a.free); n > 0 {
		g = a.free[n-1]
		a.free[n-1] = nil
		a.free = a.free[:n-1]
	} else {
		g = &groupWins{}
	}
	g.key, g.values = key, values
	a.groups[key] = g
	return g
}

// newState returns a fresh state for a window of g.
func (a *Aggregator) newState(g *groupWins, start, end int64) *WindowState {
	return a.plan.newState(g.values, start, end)
}

// remove deletes g's window i from state and the index.
func (a *Aggregator) remove(g *groupWins, i int) {
	a.windows.Delete(g.wins[i].key)
	copy(g.wins[i:], g.wins[i+1:])
	g.wins[len(g.wins)-1] = winRef{}
	g.wins = g.wins[:len(g.wins)-1]
	a.open--
	if len(g.wins) > 0 {
		return
	}
	delete(a.groups, g.key)
	if len(a.free) < maxFreeGroups {
		g.key, g.values = "", nil
		a.free = append(a.free, g)
	}
}
