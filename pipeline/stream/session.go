package stream

// Sessions of one group are kept sorted by start in the group's index. Between calls the
// open sessions of a group are disjoint and more than Gap apart (otherwise they would
// have merged), so they are sorted by end too and the sessions a record can join form
// one contiguous run of the index.

// sessionClose is the close time of a session whose last record is at end.
func (a *Aggregator) sessionClose(end int64) int64 {
	return satAdd(satAdd(end, a.spec.Gap), a.spec.Grace)
}

// addSession applies ev to the session it joins, merging every session in state it is
// within Gap of, or starts a new session. It reports false (late) when the session the
// record would form is already closed.
//
// "Open" means in state and not closed before this call (closed sessions the
// per-transaction bound left in state are skipped): every call ends by closing what is
// due, so an unskipped session in state is closed at the current stream time only when this very
// record moved stream time to exactly its close instant. That happens only with grace 0
// and a record exactly Gap after the session's last record, and such a record
// joins; the merged session then ends at t, so it is open. Emitted sessions are gone and
// are never reopened. In emit-updates mode it appends the session's result.
func (a *Aggregator) addSession(ev *Event, st int64, out []Result) ([]Result, bool) {
	t, gap := ev.Time, a.spec.Gap
	g := a.groups[ev.Group]
	lo, hi := 0, 0
	if g != nil {
		// First session with end+gap >= t (ends are sorted).
		lo, hi = 0, len(g.wins)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if satAdd(g.wins[m].st.end, gap) < t {
				lo = m + 1
			} else {
				hi = m
			}
		}
		// Sessions closed but still in state (the per-transaction closing bound) are gone
		// for the records: they end earliest, so they are the first of the group.
		if n := len(g.wins); lo < n && a.sessionClose(g.wins[lo].st.end) <= a.closedTo {
			l, h := lo, n
			for l < h {
				m := int(uint(l+h) >> 1)
				if a.sessionClose(g.wins[m].st.end) <= a.closedTo {
					l = m + 1
				} else {
					h = m
				}
			}
			lo = l
		}
		hi = lo
		for hi < len(g.wins) && satSub(g.wins[hi].st.start, gap) <= t {
			hi++
		}
	}
	if lo == hi {
		if st >= a.sessionClose(t) {
			return out, false
		}
		if g == nil {
			g = a.group(ev)
		}
		i, _ := g.find(t)
		ws := a.newState(g, t, t)
		r := winRef{key: windowKey(g.key, t), st: ws}
		g.insert(i, r)
		a.heap.push(closeEntry{close: a.sessionClose(t), end: t, start: t, group: g.key})
		a.open++
		a.plan.apply(ws, ev)
		a.windows.Put(r.key, ws)
		if a.spec.Emit == EmitUpdates {
			out = append(out, a.result(g.key, ws, false))
		}
		return out, true
	}

	base := g.wins[lo]
	ws := base.st
	for _, r := range g.wins[lo+1 : hi] {
		a.plan.merge(ws, r.st)
		if r.st.end > ws.end {
			ws.end = r.st.end
		}
		a.windows.Delete(r.key)
		a.open--
	}
	a.plan.apply(ws, ev)
	if t > ws.end {
		ws.end = t
	}
	if t < ws.start {
		// The session now starts earlier: it moves to a new key. The old key's close
		// entry goes stale; the new key gets its own.
		a.windows.Delete(base.key)
		ws.start = t
		base.key = windowKey(g.key, t)
		a.heap.push(closeEntry{close: a.sessionClose(ws.end), end: ws.end, start: t, group: g.key})
	}
	// The kept session's close entry, if it moved, is rescheduled lazily when popped.
	g.wins[lo] = base
	if hi-lo > 1 {
		n := copy(g.wins[lo+1:], g.wins[hi:])
		clear(g.wins[lo+1+n:])
		g.wins = g.wins[:lo+1+n]
	}
	a.windows.Put(base.key, ws)
	if a.spec.Emit == EmitUpdates {
		out = append(out, a.result(g.key, ws, false))
	}
	return out, true
}
