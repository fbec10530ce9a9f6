package stream

import (
	"container/heap"
	"strings"
)

// WindowState is the stored state of one open window of one group: the group values,
// the window's start and end (for a session its first and last record's time; for a
// tumbling or hopping window start+size), the record count, one numeric accumulator per
// field measured by sum, avg, min or max, one set of distinct values per field measured
// by count_distinct, and the newest contributing event (largest IngestTS).
//
// The engine owns the values it puts in the windows store and mutates them in place;
// after a transaction aborts, rebuild the task from its changelog (fresh stores, then
// Restored) rather than reusing the old stores.
type WindowState struct {
	groupValues []string
	start, end  int64
	count       int64
	ingestTS    int64
	eventID     string
	num         []numAcc
	dist        []map[string]struct{}
	// sorted is, per distinct set, its values in increasing order as of the last Encode;
	// added lists the values apply put in the set since (distinct.go).
	sorted, added [][]string
}

// numAcc accumulates one numeric field: n values seen, their sum, min and max.
type numAcc struct {
	n             int64
	sum, min, max float64
}

// Group-key escaping: values are joined with groupSep; groupSep and groupEsc inside a
// value are preceded by groupEsc.
const (
	groupSep = '|'
	groupEsc = '\\'
)

// GroupKey joins group_by values into a group key unambiguously: values are separated by
// '|', and '|' or '\' inside a value is escaped with '\'. A single value without those
// characters is its own key ("DE"), so keys stay readable in topics. Keys are
// unambiguous among value lists of the same length (one aggregation's group_by); the
// only collision across lengths is nil versus [""], both "".
func GroupKey(values []string) string {
	n := 0
	esc := false
	for _, v := range values {
		n += len(v) + 1
		if strings.ContainsAny(v, "|\\") {
			esc = true
			n += strings.Count(v, "|") + strings.Count(v, "\\")
		}
	}
	if len(values) == 1 && !esc {
		return values[0]
	}
	var b strings.Builder
	b.Grow(n)
	for i, v := range values {
		if i > 0 {
			b.WriteByte(groupSep)
		}
		if !esc {
			b.WriteString(v)
			continue
		}
		for j := 0; j < len(v); j++ {
			if c := v[j]; c == groupSep || c == groupEsc {
				b.WriteByte(groupEsc)
			}
			b.WriteByte(v[j])
		}
	}
	return b.String()
}

// startSuffixLen is the length of a window key's suffix: '@' and 16 hex digits.
const startSuffixLen = 17

// windowKey is the windows-store key of the window of group starting at start: the group
// key, '@', and start as 16 hex digits of start with its sign bit flipped, so that keys
// of one group sort by start (negative starts included) and the group is the key minus
// its fixed-width suffix.
func windowKey(group string, start int64) string {
	var b strings.Builder
	b.Grow(len(group) + startSuffixLen)
	b.WriteString(group)
	var suf [startSuffixLen]byte
	appendStartSuffix(suf[:0], start)
	b.Write(suf[:])
	return b.String()
}

func appendStartSuffix(dst []byte, start int64) []byte {
	const hex = "0123456789abcdef"
	u := uint64(start) ^ (1 << 63)
	dst = append(dst, '@')
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hex[(u>>uint(shift))&0xf])
	}
	return dst
}

// groupOfKey returns the group part of a window key whose window starts at start; a key
// not in windowKey's format is its own group.
func groupOfKey(key string, start int64) string {
	if len(key) < startSuffixLen {
		return key
	}
	var suf [startSuffixLen]byte
	appendStartSuffix(suf[:0], start)
	if key[len(key)-startSuffixLen:] != string(suf[:]) {
		return key
	}
	return key[:len(key)-startSuffixLen]
}

// winRef is one open window in the in-memory index: its store key and its state (the
// same pointer the windows store holds).
type winRef struct {
	key string
	st  *WindowState
}

// groupWins holds one group's open windows, sorted by start. Open sessions of a group
// are disjoint, so they are sorted by end as well.
type groupWins struct {
	key    string
	values []string
	wins   []winRef
}

// find returns the index of the window starting at start, or where it would be inserted.
func (g *groupWins) find(start int64) (int, bool) {
	lo, hi := 0, len(g.wins)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if g.wins[m].st.start < start {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(g.wins) && g.wins[lo].st.start == start
}

// insert puts r at index i.
func (g *groupWins) insert(i int, r winRef) {
	g.wins = append(g.wins, winRef{})
	copy(g.wins[i+1:], g.wins[i:])
	g.wins[i] = r
}

// closeEntry schedules the window (group, start) to close at close. Entries are lazily
// deleted: an entry whose window no longer exists is skipped, and one whose window's
// close time moved (an extended session) is rescheduled when it reaches the top.
type closeEntry struct {
	close, end, start int64
	group             string
}

// closeHeap is a min-heap of closeEntry by (close, end, group, start). Because close is
// a non-decreasing function of end, popping it yields windows in the emission order:
// end time, then group, then start.
type closeHeap []closeEntry

var _ heap.Interface = (*closeHeap)(nil)

func (h closeHeap) Len() int { return len(h) }

func (h closeHeap) Less(i, j int) bool {
	a, b := &h[i], &h[j]
	if a.close != b.close {
		return a.close < b.close
	}
	if a.end != b.end {
		return a.end < b.end
	}
	if a.group != b.group {
		return a.group < b.group
	}
	return a.start < b.start
}

func (h closeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

// Push implements heap.Interface.
func (h *closeHeap) Push(x any) { *h = append(*h, x.(closeEntry)) }

// Pop implements heap.Interface.
func (h *closeHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = closeEntry{}
	*h = old[:len(old)-1]
	return e
}

// push adds e without boxing it into an interface (heap.Push would allocate).
func (h *closeHeap) push(e closeEntry) {
	*h = append(*h, e)
	heap.Fix(h, len(*h)-1)
}

// popTop removes the minimum without boxing it.
func (h *closeHeap) popTop() {
	old := *h
	n := len(old) - 1
	old[0] = old[n]
	old[n] = closeEntry{}
	*h = old[:n]
	if n > 0 {
		heap.Fix(h, 0)
	}
}
