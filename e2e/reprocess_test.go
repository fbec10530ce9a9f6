package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/reprocess"
	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// latestAfterReprocess is latestResults once at least n windows carry the reprocess
// header. Kafka writes the commit markers after the coordinator answers EndTxn, so a
// read-committed reader may see a finished rewrite a moment later: wait, bounded.
func latestAfterReprocess(t *testing.T, p *harness.Pipeline, a config.Aggregation, n int) map[string]harness.Record {
	t.Helper()
	var last map[string]harness.Record
	waitFor(t, fmt.Sprintf("%d rewritten windows of %s", n, a.Name), func() bool {
		last, _ = latestResults(t, p, a)
		got := 0
		for _, r := range last {
			if r.Headers[wire.HeaderReprocessID] != "" {
				got++
			}
		}
		return got >= n
	})
	return last
}

// finalsIn is want with only the final results of the windows that start in [from, to),
// and no late events.
func finalsIn(want harness.OracleResult, from, to time.Time) harness.OracleResult {
	in := want
	in.Finals, in.Late = nil, nil
	for _, w := range want.Finals {
		if w.Start >= from.UnixMilli() && w.Start < to.UnixMilli() {
			in.Finals = append(in.Finals, w)
		}
	}
	return in
}

// latestResults reads agg.<name> and keeps the last result of every window, with the
// number of records each window has in the topic.
func latestResults(t *testing.T, p *harness.Pipeline, a config.Aggregation) (map[string]harness.Record, map[string]int) {
	t.Helper()
	last, n := map[string]harness.Record{}, map[string]int{}
	for _, r := range p.ReadAll(wire.AggTopic(a.Name)) {
		if r.DecodeErr != nil {
			t.Fatalf("%s: %v", a.Name, r.DecodeErr)
		}
		last[r.Key] = r
		n[r.Key]++
	}
	return last, n
}

// injectDoubledSums writes, for every result in live, the same result with sum_amount
// doubled: what a faulty deployment of the aggregation would have written.
func injectDoubledSums(t *testing.T, p *harness.Pipeline, a config.Aggregation, live map[string]harness.Record) {
	t.Helper()
	codec := p.Deps.AggCodecs[a.Name]
	var wrong []*kgo.Record
	for _, r := range live {
		v := make(map[string]any, len(r.Value))
		for k, x := range r.Value {
			v[k] = x
		}
		v["sum_amount"] = r.Value["sum_amount"].(float64) * 2
		b, err := codec.AppendEncode(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		wrong = append(wrong, &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: []byte(r.Key), Value: b, Timestamp: r.Raw.Timestamp})
	}
	p.Produce(wrong...)
}

func asResults(rs map[string]harness.Record) map[string]aggResult {
	out := map[string]aggResult{}
	for k, r := range rs {
		out[k] = aggResult{key: k, count: r.Value["count"].(int64), measures: r.Value}
	}
	return out
}

func inRange(key string, from, to time.Time) bool {
	st, ok := process.WindowStartOfKey([]byte(key))
	return ok && st >= from.UnixMilli() && st < to.UnixMilli()
}

// TestReprocessRewritesWindowsInRange: a live aggregation runs over ten minutes of
// purchases (plus late events, which it dead-letters); then a faulty deployment writes
// wrong results (sum doubled) for every window. `reprocess` over [2m, 5m) must, in that
// range, give every window the oracle's values (late events still left out) with the
// sluice-reprocess-id header, leave every window outside it as it was, and run again
// with nothing to change (idempotent); the warehouse (DuckDB sink) then has exactly one
// row per window, with those values. --dry-run writes nothing. The refusals each name
// what is wrong.
func TestReprocessRewritesWindowsInRange(t *testing.T) {
	p := harness.Start(t)
	w := harness.OpenWarehouse(t, harness.DuckDB)
	p.StartSink(w)
	a, _ := p.Deps.Pipeline.Aggregation("revenue_by_country_1m")
	evs := windowEvents(t, gen.Purchases, 21, 3000, windowBase, 200*time.Millisecond, time.Second) // 10 minutes
	produced := p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(time.Minute)
	late := windowEvents(t, gen.Purchases, 22, 20, windowBase.Add(2*time.Minute), 5*time.Second, 0)
	p.ProduceEvents(gen.Purchases, late)
	p.WaitAllCaughtUp(time.Minute)
	// On a real broker the last late records may become visible after the groups
	// report caught up (seen once in CI: 4 of 20): wait for them, bounded.
	waitFor(t, "every late record in purchases.late", func() bool {
		return len(p.ReadAll(wire.LateTopic(gen.Purchases))) == len(late)
	})
	spec, _, _ := process.Spec(*a, 3)
	want := harness.Oracle(spec, oracleEvents(t, *a, produced))
	live, _ := latestResults(t, p, *a)
	compareWithOracle(t, *a, asResults(live), want)

	// Reprocessing what the live job got right changes nothing (its sums added the same
	// events in another order: equal within rounding).
	from, to := windowBase.Add(2*time.Minute), windowBase.Add(5*time.Minute)
	if s, err := reprocess.Run(t.Context(), reprocess.Options{Pipeline: p.Deps.Pipeline, Kafka: p.Deps.Kafka,
		Decoder: p.Schemas, Codec: p.Deps.AggCodecs[a.Name], Aggregation: a.Name, From: from, To: to, DryRun: true}); err != nil || s.Changed != 0 || s.Windows == 0 {
		t.Fatalf("dry run over the live results: %+v, %v; want windows and none changed", s, err)
	}

	// The faulty deployment: every window's sum doubled, same keys and partitions.
	injectDoubledSums(t, p, *a, live)
	codec := p.Deps.AggCodecs[a.Name]
	before, _ := latestResults(t, p, *a)

	opts := func(dry bool) reprocess.Options {
		return reprocess.Options{Pipeline: p.Deps.Pipeline, Kafka: p.Deps.Kafka, Decoder: p.Schemas, Codec: codec,
			Aggregation: a.Name, From: from, To: to, DryRun: dry, Show: 3, RunID: fmt.Sprintf("test-%v", dry)}
	}
	inWant := 0
	for _, w := range want.Finals {
		if w.Start >= from.UnixMilli() && w.Start < to.UnixMilli() {
			inWant++
		}
	}
	if inWant == 0 {
		t.Fatal("no oracle window in the range: the test proves nothing")
	}

	// --dry-run: the diff, nothing written.
	n0 := len(p.ReadAll(wire.AggTopic(a.Name)))
	var progress bytes.Buffer
	o := opts(true)
	o.Progress = &progress
	s, err := reprocess.Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Windows != inWant || s.Changed != inWant || s.New != 0 || len(s.Changes) != 3 || s.LateExcluded == 0 {
		t.Errorf("dry run: %+v; want %d windows, all changed, none new, 3 shown, late excluded", s, inWant)
	}
	for _, c := range s.Changes {
		if b, a := c.Before["sum_amount"].(float64), c.After["sum_amount"].(float64); b != 2*a {
			t.Errorf("dry run change %s: before %v after %v, want before = 2 x after", c.Key, b, a)
		}
	}
	if !strings.Contains(progress.String(), "reprocess: read ") {
		t.Errorf("no progress printed: %q", progress.String())
	}
	if n := len(p.ReadAll(wire.AggTopic(a.Name))); n != n0 {
		t.Fatalf("dry run wrote %d records to agg", n-n0)
	}

	// The run: in range the oracle's values, outside the faulty ones, exactly once each.
	s, err = reprocess.Run(t.Context(), opts(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reprocess: %+v", *s)
	if s.Windows != inWant || s.Changed != inWant {
		t.Errorf("run: %d windows, %d changed; want %d and %d", s.Windows, s.Changed, inWant, inWant)
	}
	after := latestAfterReprocess(t, p, *a, s.Windows)
	gotIn := map[string]aggResult{}
	for k, r := range after {
		if inRange(k, from, to) {
			gotIn[k] = asResults(map[string]harness.Record{k: r})[k]
			if r.Headers[wire.HeaderReprocessID] != "test-false" {
				t.Errorf("window %s: %s = %q", k, wire.HeaderReprocessID, r.Headers[wire.HeaderReprocessID])
			}
			continue
		}
		if b := before[k]; b.Value["sum_amount"] != r.Value["sum_amount"] || r.Headers[wire.HeaderReprocessID] != "" {
			t.Errorf("window %s outside the range changed: %v -> %v", k, b.Value["sum_amount"], r.Value["sum_amount"])
		}
	}
	compareWithOracle(t, *a, gotIn, finalsIn(want, from, to))

	// Again: the same values, nothing changed.
	s, err = reprocess.Run(t.Context(), opts(false))
	if err != nil {
		t.Fatal(err)
	}
	if s.Windows != inWant || s.Changed != 0 {
		t.Errorf("second run: %d windows, %d changed; want %d and 0", s.Windows, s.Changed, inWant)
	}
	// The warehouse: the sink's MERGE replaced the rewritten rows, one row per window.
	latest, _ := latestResults(t, p, *a)
	checkAggregatesTable(t, p, w, *a, latest)

	// Refusals.
	refuse := func(o reprocess.Options, want ...string) {
		t.Helper()
		_, err := reprocess.Run(t.Context(), o)
		if err == nil {
			t.Fatalf("%s: no error", want[0])
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
	}
	o = opts(true)
	o.Aggregation = "nope"
	refuse(o, `unknown aggregation "nope"`, "revenue_by_country_1m")
	o = opts(true)
	o.From, o.To = to, from
	refuse(o, "must be before --to")
	o = opts(true)
	o.To = windowBase.Add(30 * time.Minute)
	refuse(o, "the live job has not closed yet", "its watermark is 2026-11-01T10:09:")

	// Retention: records of purchases.clean partition 0 before its 1000th are deleted.
	adm := p.Admin()
	clean := wire.CleanTopic(gen.Purchases)
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: clean, Partition: 0, At: 500})
	if _, err := adm.DeleteRecords(t.Context(), offs); err != nil {
		t.Fatal(err)
	}
	o = opts(true)
	o.From = windowBase
	refuse(o, "no longer retained", clean, "partition 0 from 2026-11-01T10:")
}

// TestResetStageRebuildsState: `reset` refuses a stage whose group has a live member;
// after the processor stops, --dry-run lists what it would delete and deletes nothing;
// the reset deletes the aggregate stage's offsets, changelogs and local state; a restart
// then rebuilds the windows from the repartition topic and every result equals the
// oracle.
func TestResetStageRebuildsState(t *testing.T) {
	p := harness.Start(t, harness.WithoutProcessor())
	pr := p.StartProcessor()
	a, _ := p.Deps.Pipeline.Aggregation("revenue_by_country_1m")
	evs := windowEvents(t, gen.Purchases, 31, 2000, windowBase, 200*time.Millisecond, time.Second)
	produced := p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(time.Minute)
	spec, _, _ := process.Spec(*a, 3)
	want := harness.Oracle(spec, oracleEvents(t, *a, produced))

	stage := wire.StageAggregate(a.Name)
	opts := reprocess.ResetOptions{Pipeline: p.Deps.Pipeline, Kafka: p.Deps.Kafka, Stage: stage,
		StateDirs: []string{p.StateDir(pr.InstanceID)}}
	if _, err := reprocess.Reset(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "live member") {
		t.Fatalf("reset of a running stage: %v, want a refusal naming its live member", err)
	}
	o := opts
	o.Stage = "agg.nope"
	if _, err := reprocess.Reset(t.Context(), o); err == nil || !strings.Contains(err.Error(), `unknown stage "agg.nope"`) || !strings.Contains(err.Error(), stage) {
		t.Errorf("unknown stage: %v", err)
	}
	if err := pr.Stop(); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(p.StateDir(pr.InstanceID), stage)
	o = opts
	o.DryRun = true
	plan, err := reprocess.Reset(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	wantLogs := []string{wire.AggChangelogTopic(a.Name, "marks"), wire.AggChangelogTopic(a.Name, "windows")}
	if !slices.Equal(plan.Changelogs, wantLogs) || !slices.Equal(plan.StateDirs, []string{stateDir}) || len(plan.Offsets) != 3 {
		t.Errorf("dry run plan %+v; want changelogs %v, state %s, 3 offsets", plan, wantLogs, stateDir)
	}
	if _, err := os.Stat(stateDir); err != nil {
		t.Fatalf("dry run removed the state: %v", err)
	}
	if len(p.ReadAll(wantLogs[1])) == 0 {
		t.Fatal("dry run emptied the changelog (or it was empty: the test proves nothing)")
	}

	if _, err := reprocess.Reset(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
		t.Errorf("state %s still there: %v", stateDir, err)
	}
	if n := len(p.ReadAll(wantLogs[1])); n != 0 {
		t.Errorf("changelog %s has %d records after the reset", wantLogs[1], n)
	}
	resultsBefore := len(p.ReadAll(wire.AggTopic(a.Name)))

	p.StartProcessorID(pr.InstanceID)
	p.WaitAllCaughtUp(time.Minute)
	last, n := latestResults(t, p, *a)
	compareWithOracle(t, *a, asResults(last), want)
	// Every closed window was emitted again (from the start of the repartition topic).
	if got := len(p.ReadAll(wire.AggTopic(a.Name))); got != 2*resultsBefore {
		t.Errorf("agg has %d results after the rebuild, want %d (each window twice)", got, 2*resultsBefore)
	}
	for k, c := range n {
		if c != 2 {
			t.Errorf("window %s: %d results, want 2", k, c)
			break
		}
	}
}

// TestMeasureReprocessRate prints how fast `reprocess` reads and recomputes: N purchases
// over an hour go through the live pipeline, then the whole hour but its last minutes is
// reprocessed (dry run and a real run). SLUICE_MEASURE=1 runs it; SLUICE_MEASURE_EVENTS
// sets N (default 200,000). docs/BENCHMARKS.md#reprocessing-history-issue-22 has the figures.
func TestMeasureReprocessRate(t *testing.T) {
	if os.Getenv("SLUICE_MEASURE") == "" {
		t.Skip("a measurement: SLUICE_MEASURE=1")
	}
	n := 200_000
	if v := os.Getenv("SLUICE_MEASURE_EVENTS"); v != "" {
		fmt.Sscan(v, &n)
	}
	p := harness.Start(t)
	a, _ := p.Deps.Pipeline.Aggregation("revenue_by_country_1m")
	evs := windowEvents(t, gen.Purchases, 41, n, windowBase, time.Hour/time.Duration(n), time.Second)
	began := time.Now()
	p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(10 * time.Minute)
	t.Logf("live pipeline: %d events in %s", n, time.Since(began).Round(time.Millisecond))
	for _, dry := range []bool{true, false} {
		s, err := reprocess.Run(t.Context(), reprocess.Options{Pipeline: p.Deps.Pipeline, Kafka: p.Deps.Kafka,
			Decoder: p.Schemas, Codec: p.Deps.AggCodecs[a.Name], Aggregation: a.Name,
			From: windowBase, To: windowBase.Add(55 * time.Minute), DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("reprocess (dry run %v): %d records read in %.2f s = %.0f records/s; %d windows, %d changed",
			dry, s.Records, s.Seconds, s.RecordsPerS, s.Windows, s.Changed)
	}
}

// TestNewAggregationStart adds three aggregations to a pipeline that already processed
// a backlog: start earliest (a backfill of the whole retained history: exact and with
// no late record), start at a time (no window before it; from one window after it on,
// the backfill's values) and start latest (only what arrives afterwards).
func TestNewAggregationStart(t *testing.T) {
	p := harness.Start(t, harness.WithoutProcessor())
	pr := p.StartProcessor()
	n := 12_000
	if v := os.Getenv("SLUICE_BACKFILL_EVENTS"); v != "" { // the 1 M run: docs/BENCHMARKS.md#reprocessing-history-issue-22
		fmt.Sscan(v, &n)
	}
	// The 1 M run on a shared machine takes minutes per phase: the bound grows with n.
	bound := max(10*time.Minute, time.Duration(n/1000)*4*time.Second)
	span := 20 * time.Minute
	evs := windowEvents(t, gen.Purchases, 51, n, windowBase, span/time.Duration(n), time.Second)
	began := time.Now()
	produced := p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(bound)
	t.Logf("live pipeline over the backlog of %d events: %s", n, time.Since(began).Round(time.Millisecond))
	if err := pr.Stop(); err != nil {
		t.Fatal(err)
	}

	at := windowBase.Add(10 * time.Minute)
	p1 := *p.Deps.Pipeline
	p1.Aggregations = slices.Clone(p1.Aggregations)
	mk := func(name, start string) config.Aggregation {
		return config.Aggregation{Name: name, From: gen.Purchases, GroupBy: []string{"device"},
			Window:   config.Window{Type: config.WindowTumbling, Size: config.Duration(time.Minute), Grace: config.Duration(5 * time.Second)},
			Measures: []string{"count", "sum(amount)"}, Emit: config.EmitFinal, Start: start}
	}
	early, timed, late := mk("dev_earliest", config.StartEarliest), mk("dev_time", at.Format(time.RFC3339)), mk("dev_latest", config.StartLatest)
	p1.Aggregations = append(p1.Aggregations, early, timed, late)
	if err := p1.Validate(); err != nil {
		t.Fatal(err)
	}
	d, sreg, err := service.Setup(t.Context(), p.Deps.Service, &p1, p.Deps.Kafka, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	d.Now = p.Deps.Now
	p.Deps, p.Schemas = d, sreg
	p.StartProcessorID(pr.InstanceID)
	began = time.Now()
	p.WaitAllCaughtUp(bound)
	t.Logf("backfill of %d events: %s", n, time.Since(began).Round(time.Millisecond))

	// earliest: the oracle over the whole backlog, nothing late.
	spec, _, _ := process.Spec(early, 3)
	e, _ := latestResults(t, p, early)
	compareWithOracle(t, early, asResults(e), harness.Oracle(spec, oracleEvents(t, early, produced)))
	for _, r := range p.ReadAll(wire.LateTopic(gen.Purchases)) {
		t.Errorf("late record for %s in the backfill", r.Headers[wire.HeaderAggregation])
	}
	// a time: the oracle over the records of <from>.clean from the offsets the broker
	// lists for that time (the first record at or after it; kfake answers by batch).
	offs, err := p.Admin().ListOffsetsAfterMilli(t.Context(), at.UnixMilli(), wire.CleanTopic(gen.Purchases))
	if err != nil {
		t.Fatal(err)
	}
	cleanOffset := map[string]int64{}
	for _, r := range p.ReadAll(wire.CleanTopic(gen.Purchases)) {
		cleanOffset[r.Headers[wire.HeaderEventID]] = r.Offset
	}
	var after []harness.Produced
	for _, pe := range produced {
		o, ok := offs.Lookup(wire.CleanTopic(gen.Purchases), pe.Partition)
		if !ok {
			t.Fatalf("no offset listed for partition %d", pe.Partition)
		}
		if cleanOffset[pe.EventID] >= o.Offset {
			after = append(after, pe)
		}
	}
	if len(after) == 0 || len(after) == len(produced) {
		t.Fatalf("start at a time: %d of %d events after it: the test proves nothing", len(after), len(produced))
	}
	tm, _ := latestResults(t, p, timed)
	compareWithOracle(t, timed, asResults(tm), harness.Oracle(spec, oracleEvents(t, timed, after)))
	// latest: nothing from the backlog; the next events only.
	if l, _ := latestResults(t, p, late); len(l) != 0 {
		t.Errorf("start latest: %d results from the backlog", len(l))
	}
	more := windowEvents(t, gen.Purchases, 52, 2000, windowBase.Add(span), 300*time.Millisecond, time.Second)
	p.ProduceEvents(gen.Purchases, more)
	p.WaitAllCaughtUp(time.Minute)
	l, _ := latestResults(t, p, late)
	e, _ = latestResults(t, p, early)
	if len(l) == 0 {
		t.Fatal("start latest: no results for the new events")
	}
	for k, r := range l {
		st, _ := process.WindowStartOfKey([]byte(k))
		if st < windowBase.Add(span-time.Minute).UnixMilli() {
			t.Errorf("start latest: window %s is from the backlog", k)
		}
		if st >= windowBase.Add(span).UnixMilli() && e[k].Value["count"] != r.Value["count"] {
			t.Errorf("start latest: window %s count %v, the backfill has %v", k, r.Value["count"], e[k].Value["count"])
		}
	}
}
