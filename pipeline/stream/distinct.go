package stream

import (
	"slices"
	"strings"
)

// Sorted distinct sets for the changelog. WindowStateCodec writes every count_distinct
// set in increasing order so equal states encode to equal bytes; sorting a whole set
// every time its window changes made the hopping views_by_url aggregation spend more CPU
// on sorting than on aggregating. Sets only grow (apply adds, nothing removes), so a state
// keeps its last sorted order and the values added since, and Encode sorts and merges
// just those. Anything that changes a set otherwise (a session merge, a restore, a
// reshape) leaves the cache out of step, which distinctSorted detects by size and
// answers by sorting the whole set, as before.

// noteDistinct records that s was just added to distinct set i.
func (ws *WindowState) noteDistinct(i int, s string) {
	if len(ws.added) != len(ws.dist) {
		ws.resetDistinctCache()
	}
	ws.added[i] = append(ws.added[i], s)
}

// dropDistinctCache forgets the sorted order of set i (it changed other than by apply).
func (ws *WindowState) dropDistinctCache(i int) {
	if i < len(ws.sorted) {
		ws.sorted[i], ws.added[i] = nil, nil
	}
}

func (ws *WindowState) resetDistinctCache() {
	ws.sorted = make([][]string, len(ws.dist))
	ws.added = make([][]string, len(ws.dist))
}

// distinctSorted returns the values of distinct set i in increasing order and updates
// the cache. The caller must not modify the result.
func (ws *WindowState) distinctSorted(i int) []string {
	set := ws.dist[i]
	if len(ws.sorted) != len(ws.dist) || len(ws.added) != len(ws.dist) {
		ws.resetDistinctCache()
	}
	old, add := ws.sorted[i], ws.added[i]
	if old != nil && len(old)+len(add) == len(set) {
		if len(add) == 0 {
			return old
		}
		slices.Sort(add)
		if merged, ok := mergeSorted(old, add, len(set)); ok {
			ws.sorted[i], ws.added[i] = merged, add[:0]
			return merged
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	ws.sorted[i], ws.added[i] = keys, add[:0]
	return keys
}

// mergeSorted merges two increasing lists; ok is false if a value is in both or
// repeated (then the cache was wrong and the caller sorts the whole set).
func mergeSorted(a, b []string, n int) (out []string, ok bool) {
	out = make([]string, 0, n)
	for len(a) > 0 && len(b) > 0 {
		switch c := strings.Compare(a[0], b[0]); {
		case c < 0:
			out, a = append(out, a[0]), a[1:]
		case c > 0:
			out, b = append(out, b[0]), b[1:]
		default:
			return nil, false
		}
	}
	out = append(append(out, a...), b...)
	for j := 1; j < len(out); j++ {
		if out[j-1] >= out[j] {
			return nil, false
		}
	}
	return out, true
}
