package stream

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// The measure functions.
const (
	// MeasureCount counts records; it is always computed and reported as Result.Count.
	MeasureCount MeasureFunc = "count"
	// MeasureCountDistinct counts distinct values of a field, compared by their fmt %v
	// string. It is exact: the window keeps the set.
	MeasureCountDistinct MeasureFunc = "count_distinct"
	// MeasureSum sums a numeric field (0 when no record had a value).
	MeasureSum MeasureFunc = "sum"
	// MeasureAvg averages a numeric field (Null when no record had a value).
	MeasureAvg MeasureFunc = "avg"
	// MeasureMin is the minimum of a numeric field (Null when no record had a value).
	MeasureMin MeasureFunc = "min"
	// MeasureMax is the maximum of a numeric field (Null when no record had a value).
	MeasureMax MeasureFunc = "max"
)

// measurePlan compiles Spec.Measures: every field measured by sum, avg, min or max gets
// one numeric accumulator (shared by the functions over it), every field measured by
// count_distinct one set, and cols lists the output columns in Spec order, count
// excluded.
type measurePlan struct {
	numFields  []string
	distFields []string
	cols       []column
	// keys holds, per distinct field, the current event's value key (see prepare), so a
	// hopping record builds each key once for all its windows.
	keys []distinctKey
	// slab is spare capacity that result measures are cut from, so emitting many
	// results costs one allocation per slab instead of one per result.
	slab []MeasureValue
}

// distinctKey is one count_distinct field's key for the current event: its %v bytes,
// and the same as a string once one was needed.
type distinctKey struct {
	present bool
	b       []byte
	s       string
	hasS    bool
}

// column is one output measure: its name, function and accumulator slot.
type column struct {
	name string
	fn   MeasureFunc
	slot int
}

func newMeasurePlan(ms []Measure) measurePlan {
	var p measurePlan
	slot := func(fields *[]string, f string) int {
		for i, x := range *fields {
			if x == f {
				return i
			}
		}
		*fields = append(*fields, f)
		return len(*fields) - 1
	}
	for _, m := range ms {
		c := column{name: string(m.Func) + "_" + m.Field, fn: m.Func}
		switch m.Func {
		case MeasureCount:
			continue
		case MeasureCountDistinct:
			c.slot = slot(&p.distFields, m.Field)
		default:
			c.slot = slot(&p.numFields, m.Field)
		}
		p.cols = append(p.cols, c)
	}
	p.keys = make([]distinctKey, len(p.distFields))
	return p
}

// newState returns an empty state shaped for the plan. Up to four numeric accumulators
// live in the same allocation as the state.
func (p *measurePlan) newState(values []string, start, end int64) *WindowState {
	var ws *WindowState
	switch len(p.numFields) {
	case 0:
		ws = &WindowState{}
	case 1:
		x := &struct {
			ws  WindowState
			num [1]numAcc
		}{}
		ws = &x.ws
		ws.num = x.num[:]
	case 2:
		x := &struct {
			ws  WindowState
			num [2]numAcc
		}{}
		ws = &x.ws
		ws.num = x.num[:]
	case 3, 4:
		x := &struct {
			ws  WindowState
			num [4]numAcc
		}{}
		ws = &x.ws
		ws.num = x.num[:len(p.numFields):len(p.numFields)]
	default:
		ws = &WindowState{num: make([]numAcc, len(p.numFields))}
	}
	ws.groupValues, ws.start, ws.end = values, start, end
	if len(p.distFields) > 0 {
		ws.dist = make([]map[string]struct{}, len(p.distFields))
	}
	return ws
}

// fit reshapes a restored state to the plan, so a state written under another measure
// list can never index out of range.
func (p *measurePlan) fit(ws *WindowState) {
	if len(ws.num) != len(p.numFields) {
		num := make([]numAcc, len(p.numFields))
		copy(num, ws.num)
		ws.num = num
	}
	if len(ws.dist) != len(p.distFields) {
		dist := make([]map[string]struct{}, len(p.distFields))
		copy(dist, ws.dist)
		ws.dist = dist
	}
}

// newer reports whether event (ts, id) is newer than (curTS, curID): larger IngestTS,
// ties broken by the larger EventID, so the choice does not depend on arrival order.
func newer(ts int64, id string, curTS int64, curID string) bool {
	return ts > curTS || ts == curTS && id > curID
}

// apply adds ev to ws.
func (p *measurePlan) apply(ws *WindowState, ev *Event) {
	if ws.count == 0 || newer(ev.IngestTS, ev.EventID, ws.ingestTS, ws.eventID) {
		ws.ingestTS, ws.eventID = ev.IngestTS, ev.EventID
	}
	ws.count++
	for i, f := range p.numFields {
		x, ok := toFloat(ev.Values[f])
		if !ok {
			continue
		}
		acc := &ws.num[i]
		if acc.n == 0 {
			acc.min, acc.max = x, x
		} else {
			acc.min = math.Min(acc.min, x)
			acc.max = math.Max(acc.max, x)
		}
		acc.sum += x
		acc.n++
	}
	for i := range p.keys {
		k := &p.keys[i]
		if !k.present {
			continue
		}
		set := ws.dist[i]
		if set == nil {
			set = make(map[string]struct{})
			ws.dist[i] = set
		}
		if k.hasS {
			if _, ok := set[k.s]; !ok {
				set[k.s] = struct{}{}
				ws.noteDistinct(i, k.s)
			}
			continue
		}
		if _, ok := set[string(k.b)]; !ok {
			k.s, k.hasS = string(k.b), true
			set[k.s] = struct{}{}
			ws.noteDistinct(i, k.s)
		}
	}
}

// prepare computes ev's count_distinct keys; call it once per event before apply.
func (p *measurePlan) prepare(ev *Event) {
	for i, f := range p.distFields {
		k := &p.keys[i]
		v := ev.Values[f]
		k.present, k.hasS, k.s = v != nil, false, ""
		switch x := v.(type) {
		case nil:
		case string:
			k.s, k.hasS = x, true
		default:
			k.b = appendDistinct(k.b[:0], v)
		}
	}
}

// merge adds src's contents to dst (a session merge); src must not be used afterwards.
func (p *measurePlan) merge(dst, src *WindowState) {
	if src.count > 0 && (dst.count == 0 || newer(src.ingestTS, src.eventID, dst.ingestTS, dst.eventID)) {
		dst.ingestTS, dst.eventID = src.ingestTS, src.eventID
	}
	dst.count += src.count
	for i := range dst.num {
		s, d := src.num[i], &dst.num[i]
		if s.n == 0 {
			continue
		}
		if d.n == 0 {
			d.min, d.max = s.min, s.max
		} else {
			d.min = math.Min(d.min, s.min)
			d.max = math.Max(d.max, s.max)
		}
		d.sum += s.sum
		d.n += s.n
	}
	for i := range dst.dist {
		s, d := src.dist[i], dst.dist[i]
		if len(s) > len(d) {
			s, d = d, s // insert the smaller set into the larger
		}
		if d == nil && len(s) == 0 {
			continue
		}
		for k := range s {
			d[k] = struct{}{}
		}
		dst.dist[i] = d
		dst.dropDistinctCache(i)
	}
}

// values returns the output measures of ws in Spec order.
func (p *measurePlan) values(ws *WindowState) []MeasureValue {
	n := len(p.cols)
	if n == 0 {
		return nil
	}
	if cap(p.slab)-len(p.slab) < n {
		p.slab = make([]MeasureValue, 0, 128*n)
	}
	out := p.slab[len(p.slab) : len(p.slab)+n : len(p.slab)+n]
	p.slab = p.slab[:len(p.slab)+n]
	for i, c := range p.cols {
		mv := MeasureValue{Column: c.name}
		if c.fn == MeasureCountDistinct {
			mv.Value = float64(len(ws.dist[c.slot]))
			out[i] = mv
			continue
		}
		acc := ws.num[c.slot]
		switch c.fn {
		case MeasureSum:
			mv.Value = acc.sum
		case MeasureAvg:
			if acc.n > 0 {
				mv.Value = acc.sum / float64(acc.n)
			}
		case MeasureMin:
			mv.Value = acc.min
		case MeasureMax:
			mv.Value = acc.max
		}
		mv.Null = acc.n == 0 && c.fn != MeasureSum
		out[i] = mv
	}
	return out
}

// toFloat converts a numeric field value. Anything else (strings, bools, nil, NaN) is
// not a number and does not contribute to sum, avg, min or max.
func toFloat(v any) (float64, bool) {
	var x float64
	switch n := v.(type) {
	case float64:
		x = n
	case float32:
		x = float64(n)
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case int:
		return float64(n), true
	case int16:
		return float64(n), true
	case int8:
		return float64(n), true
	case uint64:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint8:
		return float64(n), true
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return 0, false
		}
		x = f
	default:
		return 0, false
	}
	if math.IsNaN(x) {
		return 0, false
	}
	return x, true
}

// appendDistinct appends v's fmt %v string, without fmt for the common types.
func appendDistinct(dst []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return append(dst, x...)
	case json.Number:
		return append(dst, x...)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case int32:
		return strconv.AppendInt(dst, int64(x), 10)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case uint64:
		return strconv.AppendUint(dst, x, 10)
	case float64:
		return strconv.AppendFloat(dst, x, 'g', -1, 64)
	case float32:
		return strconv.AppendFloat(dst, float64(x), 'g', -1, 32)
	case bool:
		return strconv.AppendBool(dst, x)
	default:
		return fmt.Append(dst, v)
	}
}
