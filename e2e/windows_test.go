package e2e

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// windowBase is the event time the window tests start at: far enough in the past that
// nothing is "in the future", aligned to an hour so windows are easy to read.
var windowBase = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

// windowEvents returns n events of topic whose event times advance by step from start,
// each up to maxDisorder earlier than its slot (seeded), so the stream is out of order
// by at most maxDisorder+step.
func windowEvents(t *testing.T, topic string, seed uint64, n int, start time.Time, step, maxDisorder time.Duration) []map[string]any {
	t.Helper()
	g, err := gen.New(topic, gen.Options{Seed: seed, Now: func() time.Time { return start }})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 99))
	out := make([]map[string]any, n)
	for i := range out {
		ev := g.Next()
		at := start.Add(time.Duration(i) * step)
		if maxDisorder > 0 {
			at = at.Add(-time.Duration(r.Int64N(int64(maxDisorder))))
		}
		ev["event_time"] = at.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		ev["event_id"] = fmt.Sprintf("%s-%d-%d", topic, seed, i)
		out[i] = ev
	}
	return out
}

// oracleEvents turns produced events into the oracle's input for aggregation a.
func oracleEvents(t *testing.T, a config.Aggregation, ps []harness.Produced) []stream.Event {
	t.Helper()
	ms, err := a.ParsedMeasures()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]stream.Event, 0, len(ps))
	for _, p := range ps {
		et, err := time.Parse(time.RFC3339Nano, p.Event["event_time"].(string))
		if err != nil {
			t.Fatal(err)
		}
		vals := make([]string, len(a.GroupBy))
		for i, f := range a.GroupBy {
			vals[i] = fmt.Sprint(p.Event[f])
		}
		ev := stream.Event{
			Source:      process.SourceID(wire.CleanTopic(a.From), p.Partition),
			Time:        et.UnixMilli(),
			Group:       stream.GroupKey(vals),
			GroupValues: vals,
			Values:      map[string]any{},
			EventID:     p.EventID,
		}
		for _, m := range ms {
			if m.Field != "" {
				ev.Values[m.Field] = p.Event[m.Field]
			}
		}
		out = append(out, ev)
	}
	return out
}

// aggResult is one decoded agg.* record, keyed for comparison.
type aggResult struct {
	key      string
	count    int64
	measures map[string]any
}

// readResults reads agg.<name> and fails on any window emitted twice.
func readResults(t *testing.T, p *harness.Pipeline, a config.Aggregation) map[string]aggResult {
	t.Helper()
	out := map[string]aggResult{}
	for _, r := range p.ReadAll(wire.AggTopic(a.Name)) {
		if r.DecodeErr != nil {
			t.Fatalf("%s: %v", a.Name, r.DecodeErr)
		}
		g, _ := r.Value["group"].(map[string]any)
		vals := make([]string, len(a.GroupBy))
		for i, f := range a.GroupBy {
			vals[i] = fmt.Sprint(g[f])
		}
		start := r.Value["window_start"].(time.Time).UnixMilli()
		k := stream.GroupKey(vals) + "@" + fmt.Sprint(start)
		if _, dup := out[k]; dup {
			t.Errorf("%s: window %s emitted twice", a.Name, k)
		}
		if r.Headers[wire.HeaderIngestTS] == "" || r.Headers[wire.HeaderEventID] == "" {
			t.Errorf("%s: result %s without sluice-ingest-ts/sluice-event-id headers", a.Name, k)
		}
		out[k] = aggResult{key: k, count: r.Value["count"].(int64), measures: r.Value}
	}
	return out
}

// compareWithOracle checks the emitted results of a against the oracle's finals: the same
// windows, each with the same count and measures.
func compareWithOracle(t *testing.T, a config.Aggregation, got map[string]aggResult, want harness.OracleResult) {
	t.Helper()
	if len(want.Late) != 0 {
		t.Errorf("%s: oracle says %d events are late; the generator promised none", a.Name, len(want.Late))
	}
	seen := map[string]bool{}
	bad := 0
	for _, w := range want.Finals {
		k := w.Group + "@" + fmt.Sprint(w.Start)
		seen[k] = true
		g, ok := got[k]
		if !ok {
			if bad++; bad < 10 {
				t.Errorf("%s: window %s (count %d) missing", a.Name, k, w.Count)
			}
			continue
		}
		if g.count != w.Count {
			if bad++; bad < 10 {
				t.Errorf("%s: window %s count %d, oracle %d", a.Name, k, g.count, w.Count)
			}
		}
		for _, m := range w.Measures {
			gv := g.measures[m.Column]
			if m.Null {
				if gv != nil {
					t.Errorf("%s: window %s %s = %v, oracle null", a.Name, k, m.Column, gv)
				}
				continue
			}
			var f float64
			switch x := gv.(type) {
			case float64:
				f = x
			case int64:
				f = float64(x)
			default:
				t.Errorf("%s: window %s %s = %T %v", a.Name, k, m.Column, gv, gv)
				continue
			}
			if math.Abs(f-m.Value) > 1e-6*math.Max(1, math.Abs(m.Value)) {
				if bad++; bad < 10 {
					t.Errorf("%s: window %s %s = %v, oracle %v", a.Name, k, m.Column, f, m.Value)
				}
			}
		}
	}
	for k := range got {
		if !seen[k] {
			if bad++; bad < 10 {
				t.Errorf("%s: window %s emitted but the oracle has it open or absent", a.Name, k)
			}
		}
	}
	if len(want.Finals) == 0 {
		t.Errorf("%s: the oracle closed no window: the test proves nothing", a.Name)
	}
	t.Logf("%s: %d windows compared, %d emitted", a.Name, len(want.Finals), len(got))
}

// TestWindowsExactAcrossCrashRebalanceRestart runs 3 processor instances over 100k
// events of the three event types, out of order by less than every grace. Mid-run one
// instance is killed and another joins (rebalance); later every instance is stopped and
// three new ones restore the state from the changelogs. Every agg.* result must equal
// the oracle's, none duplicated, and no event may be late.
func TestWindowsExactAcrossCrashRebalanceRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("100k events")
	}
	p := harness.Start(t, harness.WithoutProcessor())
	procs := []*harness.Processor{p.StartProcessor(), p.StartProcessor(), p.StartProcessor()}

	counts := map[string]int{gen.PageViews: 40_000, gen.Clicks: 30_000, gen.Purchases: 30_000}
	span := time.Hour
	all := map[string][]map[string]any{}
	for i, topic := range gen.Topics() {
		n := counts[topic]
		all[topic] = windowEvents(t, topic, uint64(1000+i), n, windowBase, span/time.Duration(n), 3*time.Second)
	}
	produced := map[string][]harness.Produced{}
	phase := func(from, to float64) {
		for _, topic := range gen.Topics() {
			evs := all[topic]
			lo, hi := int(from*float64(len(evs))), int(to*float64(len(evs)))
			produced[topic] = append(produced[topic], p.ProduceEvents(topic, evs[lo:hi])...)
		}
	}

	began := time.Now()
	step := func(what string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	phase(0, 0.4)
	step("phase 1 produced")
	procs[0].Kill() // a crash mid-stream: its open transactions time out
	procs = append(procs[1:], p.StartProcessor())
	phase(0.4, 0.7)
	step("phase 2 produced")
	for _, pr := range procs {
		if err := pr.Stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
	}
	procs = []*harness.Processor{p.StartProcessor(), p.StartProcessor(), p.StartProcessor()}
	step("all stopped")
	phase(0.7, 1)
	step("phase 3 produced")
	p.WaitAllCaughtUp(3 * time.Minute)
	step("caught up")

	for _, a := range p.Deps.Pipeline.Aggregations {
		spec, _, err := process.Spec(a, 3)
		if err != nil {
			t.Fatal(err)
		}
		want := harness.Oracle(spec, oracleEvents(t, a, produced[a.From]))
		compareWithOracle(t, a, readResults(t, p, a), want)
		if late := p.ReadAll(wire.LateTopic(a.From)); len(late) != 0 {
			t.Errorf("%s: %d records routed late", a.From, len(late))
		}
	}
	if got := p.Metric("sluice_late_events_total"); got != 0 {
		t.Errorf("sluice_late_events_total = %v, want 0", got)
	}
}

// TestLateDataRoutedAndResultsUnchanged sends events for windows that closed long ago:
// they land in <from>.late with the reason, and no emitted result changes or repeats.
func TestLateDataRoutedAndResultsUnchanged(t *testing.T) {
	p := harness.Start(t)
	a, _ := p.Deps.Pipeline.Aggregation("revenue_by_country_1m")
	evs := windowEvents(t, gen.Purchases, 5, 3000, windowBase, 200*time.Millisecond, time.Second) // 10 minutes
	// Make sure every source partition reaches the end of the span.
	produced := p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(time.Minute)
	before := readResults(t, p, *a)
	if len(before) == 0 {
		t.Fatal("no window closed")
	}

	late := windowEvents(t, gen.Purchases, 6, 20, windowBase.Add(time.Minute), time.Second, 0)
	p.ProduceEvents(gen.Purchases, late)
	p.WaitAllCaughtUp(time.Minute)

	after := readResults(t, p, *a)
	if len(after) != len(before) {
		t.Errorf("results: %d before the late events, %d after", len(before), len(after))
	}
	for k, b := range before {
		if after[k].count != b.count {
			t.Errorf("window %s changed: count %d -> %d", k, b.count, after[k].count)
		}
	}
	lr := p.ReadAll(wire.LateTopic(gen.Purchases))
	if len(lr) != len(late) {
		t.Fatalf("purchases.late has %d records, want %d", len(lr), len(late))
	}
	for _, r := range lr {
		if r.Headers[wire.HeaderLateReason] == "" || r.Headers[wire.HeaderAggregation] != a.Name || r.Headers[wire.HeaderClass] != "late" {
			t.Errorf("late record headers %v", r.Headers)
		}
		if r.DecodeErr != nil || r.Value["event_id"] == nil {
			t.Errorf("late record value not kept: %v", r.DecodeErr)
		}
	}
	if got := p.Metric("sluice_late_events_total", "aggregation", a.Name); got != float64(len(late)) {
		t.Errorf("sluice_late_events_total = %v, want %d", got, len(late))
	}
	// The oracle agrees with what was emitted before the late events.
	spec, _, _ := process.Spec(*a, 3)
	compareWithOracle(t, *a, before, harness.Oracle(spec, oracleEvents(t, *a, produced)))
}
