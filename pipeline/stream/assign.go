package stream

import "math"

// Window arithmetic never wraps: sums and products saturate at the int64 limits, so a
// timestamp near math.MaxInt64 gets a window ending at MaxInt64 (it closes only when
// stream time reaches MaxInt64) and one near math.MinInt64 a window starting at
// MinInt64.

// satAdd returns a+b, saturated.
func satAdd(a, b int64) int64 {
	s := a + b
	if b > 0 && s < a {
		return math.MaxInt64
	}
	if b < 0 && s > a {
		return math.MinInt64
	}
	return s
}

// satSub returns a-b, saturated.
func satSub(a, b int64) int64 {
	s := a - b
	if b > 0 && s > a {
		return math.MinInt64
	}
	if b < 0 && s < a {
		return math.MaxInt64
	}
	return s
}

// satMul returns j*a for a > 0, saturated.
func satMul(j, a int64) int64 {
	if j > math.MaxInt64/a {
		return math.MaxInt64
	}
	if j < math.MinInt64/a { // MinInt64/a rounds toward zero, so it is the smallest safe j
		return math.MinInt64
	}
	return j * a
}

// floorDiv returns floor(t/a) for a > 0 (Go's / truncates toward zero).
func floorDiv(t, a int64) int64 {
	q := t / a
	if t%a < 0 {
		q--
	}
	return q
}

// windowRange returns the indexes [jLow, jHigh] of the fixed windows containing t: window
// j is [j*advance, j*advance+size), and there are size/advance of them per record. When
// some of those windows start before math.MinInt64 only the latest of them is kept, with
// its start clamped to MinInt64, so no two windows share a start.
func windowRange(t, advance, perRecord int64) (jLow, jHigh int64) {
	jHigh = floorDiv(t, advance)
	jLow = satSub(jHigh, perRecord-1)
	lo := math.MinInt64 / advance // smallest j whose start is representable
	if lo*advance != math.MinInt64 {
		lo-- // window lo-1 straddles MinInt64: keep it, clamped
	}
	if jLow < lo {
		jLow = lo
	}
	return jLow, jHigh
}

// addFixed applies ev to its open tumbling or hopping windows (oldest first) and reports
// whether any was open. In emit-updates mode it appends each changed window's result.
func (a *Aggregator) addFixed(ev *Event, st int64, out []Result) ([]Result, bool) {
	adv := a.spec.Advance
	jLow, jHigh := windowRange(ev.Time, adv, a.perRecord)
	var g *groupWins
	applied := false
	for j := jLow; ; j++ {
		start := satMul(j, adv)
		end := satMul(satAdd(j, a.perRecord), adv)
		if closeAt := satAdd(end, a.spec.Grace); st < closeAt {
			if g == nil {
				g = a.group(ev)
			}
			i, ok := g.find(start)
			if !ok {
				ws := a.newState(g, start, end)
				g.insert(i, winRef{key: windowKey(g.key, start), st: ws})
				a.heap.push(closeEntry{close: closeAt, end: end, start: start, group: g.key})
				a.open++
			}
			r := g.wins[i]
			a.plan.apply(r.st, ev)
			a.windows.Put(r.key, r.st)
			applied = true
			if a.spec.Emit == EmitUpdates {
				out = append(out, a.result(g.key, r.st, false))
			}
		}
		if j == jHigh {
			break
		}
	}
	return out, applied
}
