package harness

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// The reference oracle of the window engine. It is written independently of
// pipeline/stream's window code and on purpose in the slowest, most literal way: it keeps
// every observation, recomputes watermarks and stream time from scratch at every step,
// keeps each open window as the list of the events it accepted and computes measures
// from that list only when a result is needed. It uses only stream's plain types (Spec,
// Event, Result, MeasureValue) for its input and output shapes.
//
// Assumptions: event times, window ends and their sums with gap and grace fit in int64
// (tests use ordinary times); Spec is valid (see stream.Spec).

// OracleAdvance is a watermark marker (stream.Aggregator.Advance) interleaved with the
// events given to Oracle.
type OracleAdvance struct {
	// AfterIndex is the index of the event after which the marker is applied; a negative
	// index applies it before the first event, an index past the end after the last.
	// Markers with the same position apply in slice order.
	AfterIndex int
	// Source is the source partition whose watermark is raised.
	Source string
	// Watermark is the marker's value; a smaller value than the current one is a no-op.
	Watermark int64
}

// OracleResult is what the engine must produce for one input sequence.
type OracleResult struct {
	// Finals holds every window that closed by the end, in the engine's emission order:
	// by the step (event or marker) that closed it, then by end, group and start. Final is
	// true. It is computed whatever Spec.Emit says: in emit-updates mode it is what the
	// last update of each closed window must show.
	Finals []stream.Result
	// Updates holds what emit-updates mode emits (only when Spec.Emit is EmitUpdates):
	// after every accepted event, the current result of each window it changed (for a
	// session, the merged session), by end then start. Final is false.
	Updates []stream.Result
	// Late holds the indices of late events, ascending.
	Late []int
	// Open holds the windows still open at the end, by end, group and start; Final is false.
	Open []stream.Result
	// StreamTime is the stream time at the end (stream.NoWatermark until every source
	// reported).
	StreamTime int64
}

// oracleObs is one watermark observation: an event's time or a marker's value.
type oracleObs struct {
	source string
	time   int64
}

// oracleWindow is one open window of one group: the events it accepted, by index.
type oracleWindow struct {
	group  string
	start  int64 // tumbling/hopping: window start; session: recomputed from events
	events []int
}

// oracleRun is the state of one Oracle call.
type oracleRun struct {
	spec   stream.Spec
	events []stream.Event
	obs    []oracleObs
	// maxBy is the largest observation per source so far (kept alongside obs so stream
	// time is not recomputed quadratically on large runs).
	maxBy map[string]int64
	// windows are the open windows: tumbling/hopping keyed by group and start, sessions
	// listed per group (every session in the slice is open).
	windows  map[oracleWindowKey]*oracleWindow
	sessions map[string][]*oracleWindow
	res      OracleResult
}

type oracleWindowKey struct {
	group string
	start int64
}

// Oracle computes, by brute force, the results of feeding events (in arrival order) and
// the interleaved watermark markers to a stream.Aggregator built with spec, following the
// semantics documented on stream.Aggregator and in docs/DESIGN.md#windows-and-watermarks:
//   - a source's watermark is the largest time among its events and markers so far;
//     stream time is the minimum over spec.Sources (stream.NoWatermark while one has not
//     reported); sources outside spec.Sources never count;
//   - a window is closed when stream time >= end + grace (sessions: last + gap + grace);
//   - an event first moves time, then joins every window of its own that is still open
//     (late when there is none), then every closed window is emitted;
//   - sessions: an event joins and merges every open session of its group with
//     start-gap <= t <= last+gap, "open" meaning not yet emitted (emission ends every
//     step); it is late if the session it would form is closed. An emitted session is
//     never joined. So with grace 0 a record exactly gap after a session's last record
//     joins it even though its own time just reached that session's close instant
//     (10 then 15 with gap 5 give [10,15]).
func Oracle(spec stream.Spec, events []stream.Event, advances ...OracleAdvance) OracleResult {
	r := &oracleRun{
		spec:     spec,
		events:   events,
		windows:  make(map[oracleWindowKey]*oracleWindow),
		sessions: make(map[string][]*oracleWindow),
	}
	// Place every marker at a position: before event 0 is position -1, after the last
	// event is len(events)-1. A stable sort keeps slice order among equal positions.
	marks := slices.Clone(advances)
	for i := range marks {
		marks[i].AfterIndex = max(-1, min(marks[i].AfterIndex, len(events)-1))
	}
	slices.SortStableFunc(marks, func(a, b OracleAdvance) int { return cmp.Compare(a.AfterIndex, b.AfterIndex) })

	next := 0
	applyMarks := func(pos int) {
		for next < len(marks) && marks[next].AfterIndex == pos {
			r.observe(oracleObs{marks[next].Source, marks[next].Watermark})
			r.emitClosed()
			next++
		}
	}
	applyMarks(-1)
	for i := range events {
		r.event(i)
		applyMarks(i)
	}

	r.res.StreamTime = r.streamTime()
	var open []*oracleWindow
	for _, w := range r.windows {
		open = append(open, w)
	}
	for _, ss := range r.sessions {
		open = append(open, ss...)
	}
	r.res.Open = r.sortedResults(open, false)
	return r.res
}

// event processes events[i]: time first, then assignment, then emission.
func (r *oracleRun) event(i int) {
	ev := r.events[i]
	r.observe(oracleObs{ev.Source, ev.Time})
	st := r.streamTime()

	var changed []*oracleWindow
	if r.spec.Type == stream.Session {
		changed = r.session(i, st)
	} else {
		for _, start := range r.windowStarts(ev.Time) {
			if r.closed(start+r.spec.Size, r.spec.Grace, st) {
				continue
			}
			k := oracleWindowKey{ev.Group, start}
			w := r.windows[k]
			if w == nil {
				w = &oracleWindow{group: ev.Group, start: start}
				r.windows[k] = w
			}
			w.events = append(w.events, i)
			changed = append(changed, w)
		}
	}
	if len(changed) == 0 {
		r.res.Late = append(r.res.Late, i)
	} else if r.spec.Emit == stream.EmitUpdates {
		r.res.Updates = append(r.res.Updates, r.sortedResults(changed, false)...)
	}
	r.emitClosed()
}

// session assigns events[i] to the sessions of its group; it returns the merged session,
// or nothing when the event is late.
func (r *oracleRun) session(i int, st int64) []*oracleWindow {
	ev := r.events[i]
	gap := r.spec.Gap
	merged := &oracleWindow{group: ev.Group, events: []int{i}}
	var keep []*oracleWindow
	for _, s := range r.sessions[ev.Group] {
		if first, last := r.span(s); first-gap <= ev.Time && ev.Time <= last+gap {
			merged.events = append(merged.events, s.events...)
			continue
		}
		keep = append(keep, s)
	}
	if _, last := r.span(merged); r.closed(last, gap+r.spec.Grace, st) {
		return nil // the session it would form is closed: late, nothing changes
	}
	slices.Sort(merged.events)
	r.sessions[ev.Group] = append(keep, merged)
	return []*oracleWindow{merged}
}

// emitClosed emits, in order of end, group and start, every open window that is closed
// at the current stream time, and forgets it.
func (r *oracleRun) emitClosed() {
	st := r.streamTime()
	var closed []*oracleWindow
	for k, w := range r.windows {
		if r.closed(w.start+r.spec.Size, r.spec.Grace, st) {
			closed = append(closed, w)
			delete(r.windows, k)
		}
	}
	for g, ss := range r.sessions {
		var keep []*oracleWindow
		for _, s := range ss {
			if _, last := r.span(s); r.closed(last, r.spec.Gap+r.spec.Grace, st) {
				closed = append(closed, s)
			} else {
				keep = append(keep, s)
			}
		}
		if len(keep) == 0 {
			delete(r.sessions, g)
		} else {
			r.sessions[g] = keep
		}
	}
	r.res.Finals = append(r.res.Finals, r.sortedResults(closed, true)...)
}

// observe records one watermark observation.
func (r *oracleRun) observe(o oracleObs) {
	r.obs = append(r.obs, o)
	if r.maxBy == nil {
		r.maxBy = map[string]int64{}
	}
	if cur, ok := r.maxBy[o.source]; !ok || o.time > cur {
		r.maxBy[o.source] = o.time
	}
}

// streamTime is the minimum over the sources of the largest observation of each.
func (r *oracleRun) streamTime() int64 {
	if len(r.spec.Sources) == 0 {
		return stream.NoWatermark // the minimum over no sources; the engine rejects this spec
	}
	st := int64(0)
	for n, src := range r.spec.Sources {
		wm, ok := r.maxBy[src]
		if !ok {
			wm = stream.NoWatermark
		}
		if n == 0 || wm < st {
			st = wm
		}
	}
	return st
}

// closed reports whether a window whose closing instant is end+extra is closed at
// stream time st, i.e. st >= end+extra, computed without overflow.
func (r *oracleRun) closed(end, extra, st int64) bool {
	if st == stream.NoWatermark || st < end {
		return false
	}
	return uint64(st)-uint64(end) >= uint64(extra)
}

// windowStarts lists the starts of every tumbling or hopping window holding t: the
// multiples s of the advance with s <= t < s+size, newest first.
func (r *oracleRun) windowStarts(t int64) []int64 {
	adv := r.spec.Advance
	if r.spec.Type == stream.Tumbling || adv <= 0 {
		adv = r.spec.Size
	}
	var starts []int64
	for s := oracleFloorDiv(t, adv) * adv; s > t-r.spec.Size; s -= adv {
		starts = append(starts, s)
	}
	return starts
}

// oracleFloorDiv is a / b rounded toward negative infinity (b > 0).
func oracleFloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// span is the first and last event time of a window's events.
func (r *oracleRun) span(w *oracleWindow) (first, last int64) {
	for n, i := range w.events {
		t := r.events[i].Time
		if n == 0 || t < first {
			first = t
		}
		if n == 0 || t > last {
			last = t
		}
	}
	return first, last
}

// sortedResults computes the results of ws ordered by end, group and start.
func (r *oracleRun) sortedResults(ws []*oracleWindow, final bool) []stream.Result {
	out := make([]stream.Result, 0, len(ws))
	for _, w := range ws {
		out = append(out, r.result(w, final))
	}
	slices.SortFunc(out, func(a, b stream.Result) int {
		return cmp.Or(cmp.Compare(a.End, b.End), cmp.Compare(a.Group, b.Group), cmp.Compare(a.Start, b.Start))
	})
	return out
}

// result computes one window's result from the events it accepted.
func (r *oracleRun) result(w *oracleWindow, final bool) stream.Result {
	first := r.events[w.events[0]]
	res := stream.Result{
		Group:       w.group,
		GroupValues: slices.Clone(first.GroupValues),
		Count:       int64(len(w.events)),
		Final:       final,
	}
	if r.spec.Type == stream.Session {
		res.Start, res.End = r.span(w)
	} else {
		res.Start, res.End = w.start, w.start+r.spec.Size
	}
	// The newest contributing event: the largest IngestTS, the later arrival on a tie.
	for n, i := range w.events {
		ev := r.events[i]
		if n == 0 || ev.IngestTS >= res.IngestTS {
			res.IngestTS, res.EventID = ev.IngestTS, ev.EventID
		}
	}
	for _, m := range r.spec.Measures {
		if m.Func == "count" {
			continue
		}
		res.Measures = append(res.Measures, r.measure(m, w.events))
	}
	return res
}

// measure computes one measure over the given events.
func (r *oracleRun) measure(m stream.Measure, idx []int) stream.MeasureValue {
	mv := stream.MeasureValue{Column: string(m.Func) + "_" + m.Field}
	var nums []float64
	distinct := map[string]bool{}
	for _, i := range idx {
		v, ok := r.events[i].Values[m.Field]
		if !ok || v == nil {
			continue
		}
		if m.Func == "count_distinct" {
			distinct[fmt.Sprintf("%v", v)] = true
		} else if f, ok := oracleNumber(v); ok {
			nums = append(nums, f)
		}
	}
	sum := 0.0
	for _, f := range nums {
		sum += f
	}
	switch m.Func {
	case "count_distinct":
		mv.Value = float64(len(distinct))
	case "sum":
		mv.Value = sum
	case "avg":
		if len(nums) == 0 {
			mv.Null = true
		} else {
			mv.Value = sum / float64(len(nums))
		}
	case "min", "max":
		if len(nums) == 0 {
			mv.Null = true
			break
		}
		mv.Value = nums[0]
		for _, f := range nums[1:] {
			if (m.Func == "min" && f < mv.Value) || (m.Func == "max" && f > mv.Value) {
				mv.Value = f
			}
		}
	default:
		panic(fmt.Sprintf("oracle: unknown measure %q", m.Func))
	}
	return mv
}

// oracleNumber converts the numeric types the contract allows for sum, avg, min and max.
func oracleNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	}
	return 0, false
}
