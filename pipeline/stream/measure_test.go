package stream_test

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// closeOne feeds events (field "v") into one tumbling window and returns its final result.
func closeOne(t *testing.T, ms []stream.Measure, vals ...map[string]any) stream.Result {
	t.Helper()
	e := newEngine(t, withMeasures(tumbling(10, 0, stream.EmitFinal), ms))
	for i, v := range vals {
		if _, late := e.agg.Add(stream.Event{Source: "p0", Time: int64(i % 10), Group: "k", Values: v}); late != nil {
			t.Fatalf("event %d late", i)
		}
	}
	rs := e.agg.Advance("p0", 10)
	if len(rs) != 1 {
		t.Fatalf("got %d results, want 1", len(rs))
	}
	return rs[0]
}

func TestMeasureColumnsFollowSpecOrder(t *testing.T) {
	ms := []stream.Measure{
		{Func: stream.MeasureCountDistinct, Field: "u"}, {Func: stream.MeasureCount},
		{Func: stream.MeasureMax, Field: "v"}, {Func: stream.MeasureSum, Field: "v"},
		{Func: stream.MeasureAvg, Field: "v"}, {Func: stream.MeasureMin, Field: "w"},
		{Func: stream.MeasureCount, Field: ""},
	}
	r := closeOne(t, ms,
		map[string]any{"v": 2.0, "u": "a", "w": int64(-3)},
		map[string]any{"v": int64(4), "u": "b"},
		map[string]any{"v": int32(6), "u": "a", "w": int64(7)},
	)
	want := []stream.MeasureValue{
		{Column: "count_distinct_u", Value: 2},
		{Column: "max_v", Value: 6},
		{Column: "sum_v", Value: 12},
		{Column: "avg_v", Value: 4},
		{Column: "min_w", Value: -3},
	}
	if r.Count != 3 || !slices.Equal(r.Measures, want) {
		t.Fatalf("count %d measures %+v, want 3 %+v", r.Count, r.Measures, want)
	}
}

func TestNumericConversion(t *testing.T) {
	ms := []stream.Measure{{Func: stream.MeasureSum, Field: "v"}, {Func: stream.MeasureAvg, Field: "v"}, {Func: stream.MeasureMin, Field: "v"}, {Func: stream.MeasureMax, Field: "v"}}
	cases := []struct {
		name string
		v    any
		want float64 // sum of one value; NaN: no contribution
	}{
		{"float64", 1.5, 1.5},
		{"float32", float32(0.25), 0.25},
		{"int64", int64(-7), -7},
		{"int32", int32(1 << 30), 1 << 30},
		{"int", 42, 42},
		{"int16", int16(-2), -2},
		{"int8", int8(3), 3},
		{"uint64", uint64(9), 9},
		{"uint32", uint32(9), 9},
		{"uint8", uint8(9), 9},
		{"json.Number integer", json.Number("12"), 12},
		{"json.Number decimal", json.Number("-0.5"), -0.5},
		{"json.Number exponent", json.Number("1e3"), 1000},
		{"json.Number garbage is ignored", json.Number("x"), math.NaN()},
		{"string is ignored", "5", math.NaN()},
		{"bool is ignored", true, math.NaN()},
		{"nil is ignored", nil, math.NaN()},
		{"NaN is ignored", math.NaN(), math.NaN()},
		{"map is ignored", map[string]any{"double": 1.0}, math.NaN()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := closeOne(t, ms, map[string]any{"v": c.v}, map[string]any{})
			if r.Count != 2 {
				t.Fatalf("count = %d, want 2 (a non-numeric value still counts)", r.Count)
			}
			if math.IsNaN(c.want) {
				want := []stream.MeasureValue{{Column: "sum_v"}, {Column: "avg_v", Null: true}, {Column: "min_v", Null: true}, {Column: "max_v", Null: true}}
				if !slices.Equal(r.Measures, want) {
					t.Fatalf("measures %+v, want %+v", r.Measures, want)
				}
				return
			}
			want := []stream.MeasureValue{{Column: "sum_v", Value: c.want}, {Column: "avg_v", Value: c.want}, {Column: "min_v", Value: c.want}, {Column: "max_v", Value: c.want}}
			if !slices.Equal(r.Measures, want) {
				t.Fatalf("measures %+v, want %+v", r.Measures, want)
			}
		})
	}
}

// count_distinct compares values by their fmt %v string, whatever their type.
func TestCountDistinctUsesFmtV(t *testing.T) {
	ms := []stream.Measure{{Func: stream.MeasureCountDistinct, Field: "u"}}
	values := []any{
		"x", int64(1), int32(-2), 7, uint64(18446744073709551615), 1.5, 1e21, 1e-7, 100000.0, 1e6,
		float32(0.1), float32(1e10), math.Inf(1), math.Inf(-1), true, false, json.Number("1.50"),
		[]int{1, 2}, map[string]int{"a": 1}, struct{ A int }{3}, int8(5), uint16(6),
	}
	for _, v := range values {
		t.Run(fmt.Sprintf("%T %v", v, v), func(t *testing.T) {
			r := closeOne(t, ms, map[string]any{"u": v}, map[string]any{"u": fmt.Sprint(v)}, map[string]any{"u": v})
			if got := r.Measures[0].Value; got != 1 {
				t.Fatalf("%T %v and its %%v string %q: %v distinct, want 1", v, v, fmt.Sprint(v), got)
			}
		})
	}
	t.Run("missing and nil do not count", func(t *testing.T) {
		r := closeOne(t, ms, map[string]any{"u": nil}, map[string]any{}, map[string]any{"u": "a"}, map[string]any{"u": "b"})
		if got := r.Measures[0]; got.Value != 2 || got.Null {
			t.Fatalf("count_distinct = %+v, want 2", got)
		}
	})
	t.Run("no values is 0, not null", func(t *testing.T) {
		r := closeOne(t, ms, map[string]any{})
		if got := r.Measures[0]; got.Value != 0 || got.Null {
			t.Fatalf("count_distinct = %+v, want 0", got)
		}
	})
}

// Results carry the newest contributing event: largest IngestTS, ties by EventID, so
// the choice does not depend on arrival order.
func TestNewestEvent(t *testing.T) {
	cases := []struct {
		name   string
		events [][2]any // IngestTS, EventID
		wantTS int64
		wantID string
	}{
		{"largest ingest ts wins", [][2]any{{int64(5), "a"}, {int64(9), "b"}, {int64(7), "c"}}, 9, "b"},
		{"first event", [][2]any{{int64(0), ""}}, 0, ""},
		{"tie broken by event id", [][2]any{{int64(9), "b"}, {int64(9), "c"}, {int64(9), "a"}}, 9, "c"},
		{"older arrival later does not win", [][2]any{{int64(9), "z"}, {int64(1), "zz"}}, 9, "z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, typ := range []stream.Spec{tumbling(10, 0, stream.EmitFinal), session(100, 0, stream.EmitFinal)} {
				e := newEngine(t, typ)
				for i, ev := range c.events {
					e.agg.Add(stream.Event{Source: "p0", Time: int64(i), Group: "k", IngestTS: ev[0].(int64), EventID: ev[1].(string)})
				}
				rs := e.agg.Advance("p0", 1000)
				if len(rs) != 1 || rs[0].IngestTS != c.wantTS || rs[0].EventID != c.wantID {
					t.Fatalf("%s: results %+v, want ingest %d id %q", typ.Type, rs, c.wantTS, c.wantID)
				}
			}
		})
	}
	t.Run("session merge keeps the newest of both", func(t *testing.T) {
		e := newEngine(t, session(5, 100, stream.EmitFinal))
		e.agg.Add(stream.Event{Source: "p0", Time: 10, Group: "k", IngestTS: 50, EventID: "old"})
		e.agg.Add(stream.Event{Source: "p0", Time: 20, Group: "k", IngestTS: 90, EventID: "new"})
		e.agg.Add(stream.Event{Source: "p0", Time: 15, Group: "k", IngestTS: 60, EventID: "bridge"})
		rs := e.agg.Advance("p0", 1000)
		if len(rs) != 1 || rs[0].IngestTS != 90 || rs[0].EventID != "new" || rs[0].Count != 3 {
			t.Fatalf("results %+v, want one session with ingest 90 id new", rs)
		}
	})
}

func TestGroupValuesCarried(t *testing.T) {
	e := newEngine(t, tumbling(10, 0, stream.EmitFinal))
	vals := []string{"DE", "a|b"}
	e.agg.Add(stream.Event{Source: "p0", Time: 1, Group: stream.GroupKey(vals), GroupValues: vals})
	vals[0] = "mutated by caller"
	rs := e.agg.Advance("p0", 10)
	if len(rs) != 1 || rs[0].Group != `DE|a\|b` || !slices.Equal(rs[0].GroupValues, []string{"DE", "a|b"}) {
		t.Fatalf("results %+v", rs)
	}
}
