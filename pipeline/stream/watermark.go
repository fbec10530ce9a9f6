package stream

// watermarks tracks the largest event time seen per source and the task's stream time:
// the minimum over the spec's sources (NoWatermark while any has not reported). The
// minimum is cached and recomputed only when the source holding it moves, so with many
// sources the cost per record stays constant on average.
type watermarks struct {
	idx     map[string]int // spec source -> index in vals
	vals    []int64
	other   map[string]int64 // sources not in the spec: tracked, never part of the minimum
	current int64            // stream time
}

func newWatermarks(sources []string) watermarks {
	w := watermarks{idx: make(map[string]int, len(sources)), vals: make([]int64, len(sources)), other: make(map[string]int64)}
	for i, s := range sources {
		w.idx[s] = i
	}
	w.reset()
	return w
}

// reset forgets every watermark.
func (w *watermarks) reset() {
	for i := range w.vals {
		w.vals[i] = NoWatermark
	}
	clear(w.other)
	w.current = NoWatermark
}

// get returns a source's watermark, NoWatermark if unknown.
func (w *watermarks) get(source string) int64 {
	if i, ok := w.idx[source]; ok {
		return w.vals[i]
	}
	if v, ok := w.other[source]; ok {
		return v
	}
	return NoWatermark
}

// raise sets source's watermark to t if that is larger and reports whether it moved.
func (w *watermarks) raise(source string, t int64) bool {
	if i, ok := w.idx[source]; ok {
		old := w.vals[i]
		if t <= old {
			return false
		}
		w.vals[i] = t
		if old == w.current {
			w.recompute()
		}
		return true
	}
	if old, ok := w.other[source]; ok && t <= old {
		return false
	}
	if t == NoWatermark {
		return false
	}
	w.other[source] = t
	return true
}

// recompute sets the stream time to the minimum of the sources' watermarks.
func (w *watermarks) recompute() {
	if len(w.vals) == 0 {
		w.current = NoWatermark
		return
	}
	m := w.vals[0]
	for _, v := range w.vals[1:] {
		m = min(m, v)
	}
	w.current = m
}

// observe raises source's watermark to t and, when it moved, persists it in the marks
// store so the changelog carries it.
func (a *Aggregator) observe(source string, t int64) {
	if a.wm.raise(source, t) {
		a.marks.Put(source, t)
	}
}
