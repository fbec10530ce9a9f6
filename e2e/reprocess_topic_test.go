package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/reprocess"
	"github.com/sluicehq/sluice/pipeline/rules"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// withAmountMax returns a copy of p whose purchases rule on amount has maximum max.
func withAmountMax(t *testing.T, p *config.Pipeline, max float64) *config.Pipeline {
	t.Helper()
	q := *p
	q.Topics = slices.Clone(p.Topics)
	for i := range q.Topics {
		if q.Topics[i].Name != gen.Purchases {
			continue
		}
		q.Topics[i].Rules = slices.Clone(q.Topics[i].Rules)
		for j := range q.Topics[i].Rules {
			if q.Topics[i].Rules[j].Field == "amount" {
				m := max
				q.Topics[i].Rules[j].Max = &m
				return &q
			}
		}
	}
	t.Fatal("no purchases rule on amount")
	return nil
}

// waitRecords waits (bounded) until a read-committed reader sees at least n records in
// topic and returns them: on a real broker the commit markers of a transaction may be
// written a moment after the groups report caught up.
func waitRecords(t *testing.T, p *harness.Pipeline, topic string, n int) []harness.Record {
	t.Helper()
	var rs []harness.Record
	waitFor(t, fmt.Sprintf("%d records in %s", n, topic), func() bool {
		rs = p.ReadAll(topic)
		return len(rs) >= n
	})
	return rs
}

// deploy makes fixed the pipeline of p's next processor (what deploying a fixed pipeline
// file does) and returns its dependencies and schema registry.
func deploy(t *testing.T, p *harness.Pipeline, fixed *config.Pipeline) (service.Deps, *schema.Registry) {
	t.Helper()
	d, sreg, err := service.Setup(t.Context(), p.Deps.Service, fixed, p.Deps.Kafka, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	d.Now = p.Deps.Now
	p.Deps, p.Schemas = d, sreg
	return d, sreg
}

// endOffsets are the last stable offsets of topic, by partition.
func endOffsets(t *testing.T, p *harness.Pipeline, topic string) map[int32]int64 {
	t.Helper()
	offs, err := p.Admin().ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// TestReprocessTopicAddsWhatAWrongRuleDeadLettered: purchases go through a pipeline whose
// rule on amount is wrong (max 100: every larger purchase is dead-lettered). Then more
// purchases of the range arrive while the processor is down (the live stage has not
// cleaned them when the reprocess reads purchases.clean: the race the dedup state
// covers). The rule is fixed (a new pipeline file) and `reprocess --topic` runs over
// [2m, 5m) before the fixed processor starts. Afterwards every event of the range is in
// purchases.clean exactly once (the formerly dead-lettered ones added, the late
// arrivals' re-fed copies dropped as duplicates), outside the range nothing changed,
// the DLQ got nothing new, and the re-fed events that were late for the aggregations
// carry sluice-reprocess-id in purchases.late. A second run re-feeds nothing. --dry-run
// counts the same and writes nothing; each refusal names what is wrong.
func TestReprocessTopicAddsWhatAWrongRuleDeadLettered(t *testing.T) {
	wrong := withAmountMax(t, config.Default(), 100)
	p := harness.Start(t, harness.WithPipeline(wrong), harness.WithoutProcessor())
	pr := p.StartProcessor()
	evs := windowEvents(t, gen.Purchases, 71, 3000, windowBase, 200*time.Millisecond, time.Second) // 10 minutes
	produced := p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(time.Minute)

	from, to := windowBase.Add(2*time.Minute), windowBase.Add(5*time.Minute)
	inRange := func(pe harness.Produced) bool {
		et, err := time.Parse(time.RFC3339Nano, pe.Event["event_time"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return !et.Before(from) && et.Before(to)
	}
	big := func(pe harness.Produced) bool { return pe.Event["amount"].(float64) > 100 }
	var deadIn, deadOut, cleanIn int
	for _, pe := range produced {
		switch {
		case big(pe) && inRange(pe):
			deadIn++
		case big(pe):
			deadOut++
		case inRange(pe):
			cleanIn++
		}
	}
	dlq0 := waitRecords(t, p, wire.DLQTopic(gen.Purchases), deadIn+deadOut)
	if len(dlq0) != deadIn+deadOut || deadIn == 0 || deadOut == 0 || cleanIn == 0 {
		t.Fatalf("the wrong rule dead-lettered %d (%d in range, %d outside), %d clean in range: the test proves nothing", len(dlq0), deadIn, deadOut, cleanIn)
	}
	if err := pr.Stop(); err != nil {
		t.Fatal(err)
	}
	// Late arrivals of the range, produced while the processor is down: not clean yet
	// when the reprocess reads purchases.clean, so it re-feeds them too.
	arrivals := windowEvents(t, gen.Purchases, 72, 40, from.Add(30*time.Second), 2*time.Second, 0)
	for _, ev := range arrivals {
		ev["amount"] = 5.0 // pass both rules
	}
	lateProduced := p.ProduceEvents(gen.Purchases, arrivals)

	// The fix: a new pipeline file, a new processor (the same instance id: its state).
	fixed := withAmountMax(t, p.Deps.Pipeline, 1_000_000)
	d, sreg := deploy(t, p, fixed)

	now := windowBase.Add(11 * time.Minute) // the re-feed time (sluice-ingest-ts)
	opts := func(dry bool) reprocess.TopicOptions {
		return reprocess.TopicOptions{Pipeline: fixed, Rules: d.Schemas[gen.Purchases].Rules, Kafka: d.Kafka,
			Decoder: sreg, Topic: gen.Purchases, From: from, To: to, DryRun: dry, RunID: fmt.Sprintf("test-%v", dry),
			Now: func() time.Time { return now }, BatchRecords: 50}
	}

	// --dry-run: the counts, nothing written.
	raw0 := endOffsets(t, p, gen.Purchases)
	var progress bytes.Buffer
	o := opts(true)
	o.Progress = &progress
	s, err := reprocess.RunTopic(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dry run: %+v", *s)
	wantRefed := deadIn + len(lateProduced)
	if s.InRange != deadIn+cleanIn+len(lateProduced) || s.AlreadyClean != cleanIn || s.Refed != wantRefed ||
		s.StillFail != 0 || s.EarlierRefeeds != 0 || s.CleanIDs != cleanIn || s.Transactions != 0 {
		t.Errorf("dry run: %+v; want %d in range, %d already clean, %d re-fed", *s, deadIn+cleanIn+len(lateProduced), cleanIn, wantRefed)
	}
	if !strings.Contains(progress.String(), "reprocess: read ") {
		t.Errorf("no progress printed: %q", progress.String())
	}
	if got := endOffsets(t, p, gen.Purchases); !maps.Equal(got, raw0) {
		t.Fatalf("dry run wrote to %s: %v -> %v", gen.Purchases, raw0, got)
	}
	// Under the wrong rules the same range would re-feed only the late arrivals.
	ow := opts(true)
	ow.Rules = mustRules(t, wrong)
	if s, err := reprocess.RunTopic(t.Context(), ow); err != nil || s.Refed != len(lateProduced) || s.StillFail != deadIn ||
		s.StillFailRules["max on amount"] != deadIn {
		t.Errorf("dry run with the wrong rule: %+v, %v; want %d re-fed, %d still failing max on amount", s, err, len(lateProduced), deadIn)
	}

	// The run, with the processor down, then the fixed processor.
	s, err = reprocess.RunTopic(t.Context(), opts(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("run: %+v", *s)
	if s.Refed != wantRefed || s.Transactions != (wantRefed+49)/50 {
		t.Errorf("run: %d re-fed in %d transactions; want %d in %d", s.Refed, s.Transactions, wantRefed, (wantRefed+49)/50)
	}
	p.StartProcessorID(pr.InstanceID)
	p.WaitAllCaughtUp(time.Minute)

	var want []string
	refed := map[string]bool{}
	for _, pe := range produced {
		if !big(pe) || inRange(pe) {
			want = append(want, pe.EventID)
		}
		if big(pe) && inRange(pe) {
			refed[pe.EventID] = true
		}
	}
	for _, pe := range lateProduced {
		want = append(want, pe.EventID)
	}
	clean := waitRecords(t, p, wire.CleanTopic(gen.Purchases), len(want))
	exactlyOnce(t, idsOf(t, clean), want)
	for _, r := range clean {
		id := r.Headers[wire.HeaderEventID]
		if refed[id] != (r.Headers[wire.HeaderReprocessID] == "test-false") {
			t.Errorf("clean %s: %s = %q", id, wire.HeaderReprocessID, r.Headers[wire.HeaderReprocessID])
		}
		if !refed[id] {
			continue
		}
		its, _ := strconv.ParseInt(r.Headers[wire.HeaderIngestTS], 10, 64)
		if its != now.UnixMicro() || r.Headers[wire.HeaderFirstIngestTS] == "" {
			t.Errorf("clean %s: sluice-ingest-ts %s, %s %q; want the re-feed time and the original", id,
				r.Headers[wire.HeaderIngestTS], wire.HeaderFirstIngestTS, r.Headers[wire.HeaderFirstIngestTS])
		}
	}
	if n := len(p.ReadAll(wire.DLQTopic(gen.Purchases))); n != len(dlq0) {
		t.Errorf("the DLQ has %d records, had %d: the reprocess re-fed something that failed", n, len(dlq0))
	}
	if got := p.Metric("sluice_clean_duplicates_total", "topic", gen.Purchases); got != float64(len(lateProduced)) {
		t.Errorf("sluice_clean_duplicates_total = %v, want %d (the late arrivals' re-fed copies)", got, len(lateProduced))
	}
	// Re-fed events are late for revenue_by_country_1m (their windows closed long ago):
	// their late records carry the header, so `reprocess --aggregation` can tell them
	// apart. The late arrivals' originals are late too, without it.
	marked := 0
	for _, r := range waitRecords(t, p, wire.LateTopic(gen.Purchases), len(refed)+len(lateProduced)) {
		if id := r.Headers[wire.HeaderEventID]; refed[id] {
			if r.Headers[wire.HeaderReprocessID] != "test-false" {
				t.Errorf("late %s for %s without %s", id, r.Headers[wire.HeaderAggregation], wire.HeaderReprocessID)
			}
			marked++
		}
	}
	if marked != len(refed) {
		t.Errorf("%d late records of re-fed events, want %d (each late once for revenue_by_country_1m)", marked, len(refed))
	}

	// Again: everything in range is clean; the first run's copies are left out.
	raw1 := endOffsets(t, p, gen.Purchases)
	s, err = reprocess.RunTopic(t.Context(), opts(false))
	if err != nil {
		t.Fatal(err)
	}
	if s.Refed != 0 || s.EarlierRefeeds != wantRefed || s.AlreadyClean != s.InRange-s.EarlierRefeeds {
		t.Errorf("second run: %+v; want nothing re-fed, %d earlier copies", *s, wantRefed)
	}
	if got := endOffsets(t, p, gen.Purchases); !maps.Equal(got, raw1) {
		t.Errorf("second run wrote to %s: %v -> %v", gen.Purchases, raw1, got)
	}

	// Refusals.
	refuse := func(o reprocess.TopicOptions, want ...string) {
		t.Helper()
		_, err := reprocess.RunTopic(t.Context(), o)
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
	o.Topic = "nope"
	refuse(o, `unknown topic "nope"`, gen.Purchases)
	o = opts(true)
	o.From, o.To = to, from
	refuse(o, "must be before --to")
	// The horizon: 24h behind the latest event time in purchases.clean, plus the margin.
	var latest time.Time
	for _, r := range p.ReadAll(wire.CleanTopic(gen.Purchases)) {
		if r.Raw.Timestamp.After(latest) {
			latest = r.Raw.Timestamp
		}
	}
	o = opts(true)
	o.HorizonMargin = 24*time.Hour - time.Minute
	l := latest.UTC().Format(time.RFC3339)
	refuse(o, "older than the dedup horizon", "24h0m0s", "purchases.clean holds events up to "+l,
		"choose --from at or after "+latest.Add(-time.Minute).UTC().Format(time.RFC3339))
	// Retention: records of purchases partition 0 before its 500th are deleted.
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: gen.Purchases, Partition: 0, At: 500})
	if _, err := p.Admin().DeleteRecords(t.Context(), offs); err != nil {
		t.Fatal(err)
	}
	o = opts(true)
	o.From = windowBase
	refuse(o, "no longer retained", gen.Purchases, "partition 0 from 2026-11-01T10:")
}

func mustRules(t *testing.T, p *config.Pipeline) *rules.Set {
	t.Helper()
	tp, _ := p.Topic(gen.Purchases)
	rs, err := rules.Compile(tp.Rules)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestReprocessTopicKilledMidwayRunAgain: a dead letter of the range, replayed to
// another partition, is clean before the reprocess (its original must not be re-fed). A
// reprocess killed between two re-feed transactions (the first committed, the second flushed and left open, as a killed
// process leaves it) holds the live clean stage back on those partitions until the next
// run, with the same transactional id, fences and aborts it. Run again, it re-feeds what
// is not clean yet; the live stage, running the fixed rules throughout, drops the copies
// it already cleaned: every event once in purchases.clean, nothing new in the DLQ.
func TestReprocessTopicKilledMidwayRunAgain(t *testing.T) {
	wrong := withAmountMax(t, config.Default(), 100)
	p := harness.Start(t, harness.WithPipeline(wrong), harness.WithoutProcessor())
	pr := p.StartProcessor()
	evs := windowEvents(t, gen.Purchases, 73, 1500, windowBase, 200*time.Millisecond, time.Second) // 5 minutes
	produced := p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(time.Minute)
	bigAll := 0
	for _, pe := range produced {
		if pe.Event["amount"].(float64) > 100 {
			bigAll++
		}
	}
	dlq0 := len(waitRecords(t, p, wire.DLQTopic(gen.Purchases), bigAll))
	if err := pr.Stop(); err != nil {
		t.Fatal(err)
	}
	fixed := withAmountMax(t, p.Deps.Pipeline, 1_000_000)
	d, sreg := deploy(t, p, fixed)
	p.StartProcessorID(pr.InstanceID)

	from, to := windowBase.Add(time.Minute), windowBase.Add(4*time.Minute)
	var want []string
	deadIn := 0
	for _, pe := range produced {
		et, _ := time.Parse(time.RFC3339Nano, pe.Event["event_time"].(string))
		big := pe.Event["amount"].(float64) > 100
		if big && !et.Before(from) && et.Before(to) {
			deadIn++
		}
		if !big || !et.Before(from) && et.Before(to) {
			want = append(want, pe.EventID)
		}
	}
	if deadIn <= 60 {
		t.Fatalf("%d dead letters in range: too few for two transactions", deadIn)
	}
	// One dead letter of the range is replayed (sluice dlq replay) before the reprocess,
	// and lands on another partition than its original (a replay goes by the key
	// partitioner): the fixed stage cleans it there. The reprocess must not re-feed its
	// original, whose partition's dedup state never saw the id.
	var replayed string
	for _, r := range p.ReadAll(wire.DLQTopic(gen.Purchases)) {
		if ts := r.Raw.Timestamp; !ts.Before(from) && ts.Before(to) {
			rr := dlq.ReplayRecord(r.Raw, "")
			rr.Partition = (r.Partition + 1) % 3
			p.Produce(rr)
			replayed = r.Headers[wire.HeaderEventID]
			break
		}
	}
	waitFor(t, "the replayed dead letter in purchases.clean", func() bool {
		for _, r := range p.ReadAll(wire.CleanTopic(gen.Purchases)) {
			if r.Headers[wire.HeaderEventID] == replayed {
				return true
			}
		}
		return false
	})
	o := reprocess.TopicOptions{Pipeline: fixed, Rules: d.Schemas[gen.Purchases].Rules, Kafka: d.Kafka, Decoder: sreg,
		Topic: gen.Purchases, From: from, To: to, BatchRecords: 30}
	killed := errors.New("killed")
	o.BeforeCommit = func(committed int) error {
		if committed == 1 {
			return killed
		}
		return nil
	}
	if _, err := reprocess.RunTopic(t.Context(), o); !errors.Is(err, killed) {
		t.Fatalf("the killed run: %v", err)
	}
	o.BeforeCommit = nil
	s, err := reprocess.RunTopic(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second run: %+v", *s)
	// The first transaction's 30 copies: either clean already or re-fed again. The
	// replayed dead letter and its original: already clean.
	if s.EarlierRefeeds != 30 || s.Refed+s.AlreadyClean != s.InRange-s.EarlierRefeeds || s.Refed < deadIn-1-30 || s.Refed > deadIn-1 {
		t.Errorf("second run: %+v; want the 30 committed copies left out and the rest of %d re-fed", *s, deadIn-1)
	}
	p.WaitAllCaughtUp(time.Minute)
	exactlyOnce(t, idsOf(t, waitRecords(t, p, wire.CleanTopic(gen.Purchases), len(want))), want)
	if n := len(p.ReadAll(wire.DLQTopic(gen.Purchases))); n != dlq0 {
		t.Errorf("the DLQ has %d records, had %d", n, dlq0)
	}
}

// TestOperationsRunbookFixRule runs the commands of docs/OPERATIONS.md's "Fix a wrong
// rule" runbook, as written, with the sluice binary (its built-in pipeline file has the
// right rule on amount) against a pipeline whose processor ran a wrong one and was then
// redeployed with the fix: the dry run counts the dead-lettered events of the range and
// writes nothing; the reprocess re-feeds them and the live clean stage adds each to
// purchases.clean once.
func TestOperationsRunbookFixRule(t *testing.T) {
	cmds := runbookCommands(t, "Fix a wrong rule")
	if len(cmds) != 2 {
		t.Fatalf("the runbook has %d sluice commands, want 2: %v", len(cmds), cmds)
	}
	wrong := withAmountMax(t, config.Default(), 100)
	p := harness.Start(t, harness.WithPipeline(wrong), harness.WithoutProcessor())
	pr := p.StartProcessor()
	evs := windowEvents(t, gen.Purchases, 74, 3000, windowBase, 200*time.Millisecond, time.Second)
	produced := p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(time.Minute)
	if err := pr.Stop(); err != nil {
		t.Fatal(err)
	}
	fixed := config.Default()
	deploy(t, p, fixed)
	p.StartProcessorID(pr.InstanceID)

	// The runbook's range is [10:02, 10:05) of windowBase's day.
	from, to := windowBase.Add(2*time.Minute), windowBase.Add(5*time.Minute)
	var want []string
	deadIn := 0
	for _, pe := range produced {
		et, _ := time.Parse(time.RFC3339Nano, pe.Event["event_time"].(string))
		in, big := !et.Before(from) && et.Before(to), pe.Event["amount"].(float64) > 100
		if big && in {
			deadIn++
		}
		if !big || in {
			want = append(want, pe.EventID)
		}
	}
	if deadIn == 0 {
		t.Fatal("no dead letter in the runbook's range: the test proves nothing")
	}

	bin := harness.SluiceBinary(t)
	run := func(args []string) reprocess.TopicSummary {
		t.Helper()
		c := exec.CommandContext(t.Context(), bin, args...)
		c.Env = append(os.Environ(), "SLUICE_BROKERS="+strings.Join(p.Brokers, ","), "SLUICE_REGISTRY_URL="+p.Deps.Service.RegistryURL)
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		if err := c.Run(); err != nil {
			t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		var s reprocess.TopicSummary
		if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
			t.Fatalf("sluice %s: output %q: %v", strings.Join(args, " "), stdout.String(), err)
		}
		t.Logf("sluice %s:\n%s", strings.Join(args, " "), stderr.String())
		return s
	}
	raw0 := endOffsets(t, p, gen.Purchases)
	if s := run(cmds[0]); !s.DryRun || s.Refed != deadIn || s.StillFail != 0 || s.AlreadyClean != s.InRange-deadIn {
		t.Errorf("runbook step 1: %+v; want a dry run re-feeding the %d dead-lettered events", s, deadIn)
	}
	if got := endOffsets(t, p, gen.Purchases); !maps.Equal(got, raw0) {
		t.Fatalf("the dry run wrote to %s: %v -> %v", gen.Purchases, raw0, got)
	}
	if s := run(cmds[1]); s.DryRun || s.Refed != deadIn || s.Transactions != 1 {
		t.Errorf("runbook step 2: %+v; want %d re-fed in one transaction", s, deadIn)
	}
	p.WaitAllCaughtUp(time.Minute)
	exactlyOnce(t, idsOf(t, waitRecords(t, p, wire.CleanTopic(gen.Purchases), len(want))), want)
}

// TestMeasureReprocessTopicRate prints how fast `reprocess --topic` reads and re-feeds:
// N purchases over an hour go through a clean stage whose amount rule is wrong (max 100),
// then the whole hour is reprocessed with the fixed rule (dry run, then a real run, the
// fixed clean stage running). SLUICE_MEASURE=1 runs it; SLUICE_MEASURE_EVENTS sets N
// (default 200,000).
func TestMeasureReprocessTopicRate(t *testing.T) {
	if os.Getenv("SLUICE_MEASURE") == "" {
		t.Skip("a measurement: SLUICE_MEASURE=1")
	}
	n := 200_000
	if v := os.Getenv("SLUICE_MEASURE_EVENTS"); v != "" {
		fmt.Sscan(v, &n)
	}
	wrong := withAmountMax(t, config.Default(), 100)
	p := harness.Start(t, harness.WithPipeline(wrong), harness.WithCleanOnly(), harness.WithoutProcessor())
	pr := p.StartProcessor()
	evs := windowEvents(t, gen.Purchases, 75, n, windowBase, time.Hour/time.Duration(n), time.Second)
	began := time.Now()
	p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(10 * time.Minute)
	t.Logf("live clean stage: %d events in %s", n, time.Since(began).Round(time.Millisecond))
	if err := pr.Stop(); err != nil {
		t.Fatal(err)
	}
	fixed := config.Default()
	d, sreg := deploy(t, p, fixed)
	p.StartProcessorID(pr.InstanceID)
	for _, dry := range []bool{true, false} {
		s, err := reprocess.RunTopic(t.Context(), reprocess.TopicOptions{Pipeline: fixed, Rules: d.Schemas[gen.Purchases].Rules,
			Kafka: d.Kafka, Decoder: sreg, Topic: gen.Purchases, From: windowBase, To: windowBase.Add(time.Hour), DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("reprocess --topic (dry run %v): %d raw records read (and %d clean ids) in %.2f s = %.0f records/s; %d re-fed in %d transactions",
			dry, s.Records, s.CleanIDs, s.Seconds, s.RecordsPerS, s.Refed, s.Transactions)
	}
	began = time.Now()
	p.WaitAllCaughtUp(10 * time.Minute)
	t.Logf("live clean stage took the re-fed records in %s", time.Since(began).Round(time.Millisecond))
}

// TestReprocessTopicThenAggregation is the runbook's order after a wrong rule: `reprocess
// --topic` re-feeds what the rule dead-lettered (the live aggregation dead-letters the
// re-fed events as late, their windows closed long ago), then `reprocess
// revenue_by_country_1m` over the same range recomputes its windows. The recomputed
// windows must count the re-fed events: the late records a re-feed caused (they carry
// sluice-reprocess-id) are not excluded like the live job's own late events. Afterwards
// the windows of the range equal the oracle's over every event, the dead-lettered ones
// included.
func TestReprocessTopicThenAggregation(t *testing.T) {
	wrong := withAmountMax(t, config.Default(), 100)
	p := harness.Start(t, harness.WithPipeline(wrong), harness.WithoutProcessor())
	pr := p.StartProcessor()
	a, _ := p.Deps.Pipeline.Aggregation("revenue_by_country_1m")
	evs := windowEvents(t, gen.Purchases, 76, 3000, windowBase, 200*time.Millisecond, time.Second)
	produced := p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(time.Minute)
	if err := pr.Stop(); err != nil {
		t.Fatal(err)
	}
	fixed := config.Default()
	d, sreg := deploy(t, p, fixed)
	p.StartProcessorID(pr.InstanceID)
	from, to := windowBase.Add(2*time.Minute), windowBase.Add(5*time.Minute)
	s, err := reprocess.RunTopic(t.Context(), reprocess.TopicOptions{Pipeline: fixed, Rules: d.Schemas[gen.Purchases].Rules,
		Kafka: d.Kafka, Decoder: sreg, Topic: gen.Purchases, From: from, To: to, RunID: "topic-run"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Refed == 0 {
		t.Fatal("nothing re-fed: the test proves nothing")
	}
	p.WaitAllCaughtUp(time.Minute)
	// The live aggregations dead-letter every re-fed event as late (two aggregations
	// read purchases.clean): wait until this one's are there.
	waitFor(t, fmt.Sprintf("%d re-fed late records of %s", s.Refed, a.Name), func() bool {
		n := 0
		for _, r := range p.ReadAll(wire.LateTopic(gen.Purchases)) {
			if r.Headers[wire.HeaderAggregation] == a.Name && r.Headers[wire.HeaderReprocessID] != "" {
				n++
			}
		}
		return n >= s.Refed
	})
	as, err := reprocess.Run(t.Context(), reprocess.Options{Pipeline: fixed, Kafka: d.Kafka, Decoder: sreg, Codec: d.AggCodecs[a.Name],
		Aggregation: a.Name, From: from, To: to, RunID: "agg-run"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("topic: %d re-fed; aggregation: %d windows, %d changed, %d late left out", s.Refed, as.Windows, as.Changed, as.LateExcluded)
	spec, _, _ := process.Spec(*a, 3)
	want := harness.Oracle(spec, oracleEvents(t, *a, produced))
	after := latestAfterReprocess(t, p, *a, as.Windows)
	gotIn := map[string]aggResult{}
	for k, r := range after {
		if inRange(k, from, to) {
			gotIn[k] = asResults(map[string]harness.Record{k: r})[k]
		}
	}
	compareWithOracle(t, *a, gotIn, finalsIn(want, from, to))
}
