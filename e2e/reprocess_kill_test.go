package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/reprocess"
	"github.com/sluicehq/sluice/pipeline/sink"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// warehouseRow is one row of AGGREGATES.
type warehouseRow struct {
	count int64
	sum   float64
}

// checkAggregatesTable waits until the sink has every committed record, then checks that
// AGGREGATES holds exactly one row per window of aggregation a and that each row has the
// count and sum_amount of the window's latest result in agg.<name> (latest): the sink's
// MERGE replaced the rows a reprocess rewrote. It returns the number of rows.
func checkAggregatesTable(t *testing.T, p *harness.Pipeline, w *sink.SQLWarehouse, a config.Aggregation, latest map[string]harness.Record) int {
	t.Helper()
	p.WaitSinkCaughtUp(w, sinkCaughtUp)
	rows, err := w.Query(t.Context(), "SELECT GROUP_KEY, WINDOW_START, CAST(MEASURES AS VARCHAR) FROM "+sink.AggregatesTable+
		" WHERE AGGREGATION = '"+a.Name+"'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got, n := map[string]warehouseRow{}, map[string]int{}
	for rows.Next() {
		var gk, ms string
		var start time.Time
		if err := rows.Scan(&gk, &start, &ms); err != nil {
			t.Fatal(err)
		}
		var g map[string]any
		if err := json.Unmarshal([]byte(gk), &g); err != nil {
			t.Fatalf("GROUP_KEY %q: %v", gk, err)
		}
		vals := make([]string, len(a.GroupBy))
		for i, f := range a.GroupBy {
			vals[i] = fmt.Sprint(g[f])
		}
		var m struct {
			Count int64   `json:"count"`
			Sum   float64 `json:"sum_amount"`
		}
		if err := json.Unmarshal([]byte(ms), &m); err != nil {
			t.Fatalf("MEASURES %q: %v", ms, err)
		}
		k := stream.GroupKey(vals) + "@" + fmt.Sprint(start.UnixMilli())
		got[k] = warehouseRow{count: m.Count, sum: m.Sum}
		n[k]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for k, c := range n {
		if c != 1 {
			if bad++; bad < 10 {
				t.Errorf("AGGREGATES: window %s has %d rows, want 1", k, c)
			}
		}
	}
	for k, r := range latest {
		g, ok := got[k]
		want := r.Value["sum_amount"].(float64)
		switch {
		case !ok:
			if bad++; bad < 10 {
				t.Errorf("AGGREGATES: window %s missing", k)
			}
		case g.count != r.Value["count"].(int64) || math.Abs(g.sum-want) > 1e-9*math.Max(1, math.Abs(want)):
			if bad++; bad < 10 {
				t.Errorf("AGGREGATES: window %s count %d sum %v; agg.%s's latest result has count %v sum %v", k, g.count, g.sum, a.Name, r.Value["count"], want)
			}
		}
	}
	for k := range got {
		if _, ok := latest[k]; !ok {
			if bad++; bad < 10 {
				t.Errorf("AGGREGATES: window %s is not in agg.%s", k, a.Name)
			}
		}
	}
	if len(latest) == 0 {
		t.Fatal("no window in agg: the check proves nothing")
	}
	return len(got)
}

// headerCounts reads topic read_uncommitted (aborted and open transactions included) up
// to its high watermark and counts the records by the value of header key.
func headerCounts(t *testing.T, p *harness.Pipeline, topic, key string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ends, err := p.Admin().ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	parts := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			parts[o.Partition] = kgo.NewOffset().AtStart()
			left[o.Partition] = o.Offset
		}
	})
	out := map[string]int{}
	if len(parts) == 0 {
		return out
	}
	// Control records (commit and abort markers) are kept so that the read knows when it
	// reached the end of a partition whose last offset is a marker.
	cl, err := kgo.NewClient(append(p.Deps.Kafka.Opts(), kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_uncommitted %s: partitions %v not read to their end", topic, left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				out[hdrValue(r, key)]++
			}
			if e, ok := left[r.Partition]; ok && r.Offset+1 >= e {
				delete(left, r.Partition)
			}
		})
	}
	return out
}

func hdrValue(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

var errKilled = errors.New("reprocess killed by the test")

// TestReprocessKilledMidwayIsIdempotent: a reprocess over [2m, 8m) of a live aggregation
// whose results a faulty deployment wrote wrong (sum doubled) is killed after it
// committed two of its output transactions, with the third flushed and not committed.
// A read-committed reader then sees exactly the two committed transactions' windows
// rewritten (the open one never). Run again (a new run id), every window in range
// equals the oracle, every window outside it is as it was, the killed run's open
// transaction was aborted (its records are in the log but never visible), a third run
// has nothing to change, and the warehouse (DuckDB sink, running throughout) has exactly
// one row per window with the topic's latest values. Before any window closed, a
// reprocess refuses and says the live job has no watermark yet.
func TestReprocessKilledMidwayIsIdempotent(t *testing.T) {
	p := harness.Start(t)
	w := harness.OpenWarehouse(t, harness.DuckDB)
	p.StartSink(w)
	a, _ := p.Deps.Pipeline.Aggregation("revenue_by_country_1m")
	codec := p.Deps.AggCodecs[a.Name]
	from, to := windowBase.Add(2*time.Minute), windowBase.Add(8*time.Minute)
	const batch = 25
	opts := func(runID string) reprocess.Options {
		return reprocess.Options{Pipeline: p.Deps.Pipeline, Kafka: p.Deps.Kafka, Decoder: p.Schemas, Codec: codec,
			Aggregation: a.Name, From: from, To: to, RunID: runID, BatchRecords: batch}
	}

	// Nothing closed yet: the refusal names the missing watermark.
	if _, err := reprocess.Run(t.Context(), opts("too-early")); err == nil ||
		!strings.Contains(err.Error(), "the live job has not closed yet: its watermark is none yet (no window has closed)") {
		t.Fatalf("reprocess before any window closed: %v, want the live-watermark refusal", err)
	}

	evs := windowEvents(t, gen.Purchases, 71, 3000, windowBase, 200*time.Millisecond, time.Second) // 10 minutes
	produced := p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(time.Minute)
	spec, _, _ := process.Spec(*a, 3)
	want := harness.Oracle(spec, oracleEvents(t, *a, produced))
	// On a real broker the commit markers of the last transactions may be written a
	// moment after the groups report caught up: wait (bounded) for every window.
	var live map[string]harness.Record
	waitFor(t, fmt.Sprintf("%d windows of %s", len(want.Finals), a.Name), func() bool {
		live, _ = latestResults(t, p, *a)
		return len(live) >= len(want.Finals)
	})
	compareWithOracle(t, *a, asResults(live), want)
	injectDoubledSums(t, p, *a, live)
	before, _ := latestResults(t, p, *a)
	wantIn := finalsIn(want, from, to)
	inWant := len(wantIn.Finals)
	if inWant <= 3*batch {
		t.Fatalf("%d windows in range: not enough for more than three transactions of %d", inWant, batch)
	}

	// The kill: two transactions committed, the third flushed and left open.
	o := opts("killed")
	o.BeforeCommit = func(committed int) error {
		if committed == 2 {
			return errKilled
		}
		return nil
	}
	if _, err := reprocess.Run(t.Context(), o); !errors.Is(err, errKilled) || !strings.Contains(err.Error(), fmt.Sprintf("%d of %d windows committed", 2*batch, inWant)) {
		t.Fatalf("killed run: %v, want it stopped with %d of %d windows committed", err, 2*batch, inWant)
	}
	mid := latestAfterReprocess(t, p, *a, 2*batch)
	fixed := 0
	for k, r := range mid {
		switch id := r.Headers[wire.HeaderReprocessID]; {
		case id == "killed":
			fixed++
			if !inRange(k, from, to) {
				t.Errorf("killed run rewrote window %s outside the range", k)
			}
		case id != "":
			t.Errorf("window %s: reprocess id %q", k, id)
		case r.Value["sum_amount"] != before[k].Value["sum_amount"]:
			t.Errorf("window %s changed without a reprocess header", k)
		}
	}
	if fixed != 2*batch {
		t.Errorf("after the kill a read-committed reader sees %d rewritten windows, want the %d of the two committed transactions", fixed, 2*batch)
	}

	// Again: what the killed run committed already holds the fixed values.
	var progress bytes.Buffer
	o = opts("rerun")
	o.Progress = &progress
	s, err := reprocess.Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Windows != inWant || s.Changed != inWant-2*batch || s.New != 0 {
		t.Errorf("rerun: %d windows, %d changed, %d new; want %d, %d (the killed run fixed %d), 0",
			s.Windows, s.Changed, s.New, inWant, inWant-2*batch, 2*batch)
	}
	txns := (inWant + batch - 1) / batch
	if !strings.Contains(progress.String(), fmt.Sprintf("reprocess: committed transaction %d: %d / %d windows written", txns, inWant, inWant)) {
		t.Errorf("rerun progress lacks its last transaction (%d): %q", txns, progress.String())
	}
	var after map[string]harness.Record
	waitFor(t, "every window in range rewritten by the rerun", func() bool {
		after, _ = latestResults(t, p, *a)
		n := 0
		for _, r := range after {
			if r.Headers[wire.HeaderReprocessID] == "rerun" {
				n++
			}
		}
		return n == inWant
	})
	gotIn := map[string]aggResult{}
	for k, r := range after {
		if inRange(k, from, to) {
			gotIn[k] = asResults(map[string]harness.Record{k: r})[k]
			continue
		}
		if r.Value["sum_amount"] != before[k].Value["sum_amount"] || r.Headers[wire.HeaderReprocessID] != "" {
			t.Errorf("window %s outside the range changed: %v -> %v", k, before[k].Value["sum_amount"], r.Value["sum_amount"])
		}
	}
	compareWithOracle(t, *a, gotIn, wantIn)

	// The killed run's open transaction was aborted: its records are in the log, and a
	// read-committed reader sees only the two committed transactions.
	committed := map[string]int{}
	for _, r := range p.ReadAll(wire.AggTopic(a.Name)) {
		committed[r.Headers[wire.HeaderReprocessID]]++
	}
	all := headerCounts(t, p, wire.AggTopic(a.Name), wire.HeaderReprocessID)
	if committed["killed"] != 2*batch || all["killed"] != 3*batch {
		t.Errorf("killed run: %d records committed and %d in the log, want %d and %d (one open transaction aborted)",
			committed["killed"], all["killed"], 2*batch, 3*batch)
	}
	if committed["rerun"] != inWant {
		t.Errorf("rerun: %d records committed, want %d", committed["rerun"], inWant)
	}

	// A third run has nothing to change.
	o = opts("third")
	o.DryRun = true
	if s, err := reprocess.Run(t.Context(), o); err != nil || s.Changed != 0 || s.Windows != inWant {
		t.Errorf("third run: %+v, %v; want %d windows, none changed", s, err, inWant)
	}

	// The warehouse: one row per window, the latest values (the oracle's in range).
	rows := checkAggregatesTable(t, p, w, *a, after)
	t.Logf("AGGREGATES: %d rows for %s, %d of them rewritten by the rerun", rows, a.Name, inWant)
}

// TestReprocessKilledReleasesLiveResults: a reprocess killed with its first output
// transaction open (and not run again) holds back read-committed readers of agg.<name>
// only until the broker aborts that transaction after the run's TxnTimeout: live windows
// that close afterwards become visible (the kgo default of 40 s would fail the bounded
// wait), equal to the oracle, and the killed run's records stay invisible.
func TestReprocessKilledReleasesLiveResults(t *testing.T) {
	p := harness.Start(t)
	a, _ := p.Deps.Pipeline.Aggregation("revenue_by_country_1m")
	spec, _, _ := process.Spec(*a, 3)
	evs := windowEvents(t, gen.Purchases, 91, 3000, windowBase, 200*time.Millisecond, time.Second) // 10 minutes
	produced := p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(time.Minute)
	closed := map[string]bool{}
	for _, w := range harness.Oracle(spec, oracleEvents(t, *a, produced)).Finals {
		closed[fmt.Sprintf("%s@%d", w.Group, w.Start)] = true
	}

	const batch = 25
	o := reprocess.Options{Pipeline: p.Deps.Pipeline, Kafka: p.Deps.Kafka, Decoder: p.Schemas, Codec: p.Deps.AggCodecs[a.Name],
		Aggregation: a.Name, From: windowBase.Add(2 * time.Minute), To: windowBase.Add(8 * time.Minute), RunID: "killed",
		BatchRecords: batch, TxnTimeout: time.Second,
		BeforeCommit: func(int) error { return errKilled }}
	if _, err := reprocess.Run(t.Context(), o); !errors.Is(err, errKilled) {
		t.Fatalf("killed run: %v", err)
	}
	killed := time.Now()

	more := windowEvents(t, gen.Purchases, 92, 600, windowBase.Add(10*time.Minute), 200*time.Millisecond, time.Second)
	produced = append(produced, p.ProduceEvents(gen.Purchases, more)...)
	want := harness.Oracle(spec, oracleEvents(t, *a, produced))
	var newly []string
	for _, w := range want.Finals {
		if k := fmt.Sprintf("%s@%d", w.Group, w.Start); !closed[k] {
			newly = append(newly, k)
		}
	}
	if len(newly) == 0 {
		t.Fatal("the new events close no window: the test proves nothing")
	}
	var latest map[string]harness.Record
	waitFor(t, fmt.Sprintf("%d windows closed after the kill visible in agg", len(newly)), func() bool {
		latest, _ = latestResults(t, p, *a)
		for _, k := range newly {
			if _, ok := latest[k]; !ok {
				return false
			}
		}
		return true
	})
	t.Logf("live windows closed after the kill visible %s after it (transaction timeout %s)", time.Since(killed).Round(time.Millisecond), o.TxnTimeout)
	p.WaitAllCaughtUp(time.Minute)
	latest, _ = latestResults(t, p, *a)
	compareWithOracle(t, *a, asResults(latest), want)
	for k, r := range latest {
		if id := r.Headers[wire.HeaderReprocessID]; id != "" {
			t.Errorf("window %s: a result of the killed run (%s) is visible", k, id)
		}
	}
	if n := headerCounts(t, p, wire.AggTopic(a.Name), wire.HeaderReprocessID)["killed"]; n != batch {
		t.Errorf("the killed run has %d records in the log, want its open transaction's %d", n, batch)
	}
}
