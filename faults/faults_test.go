package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/sink"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// The topic and aggregation the suite drives: one event type keeps the per-case topic
// reset quick on three brokers. Windows of 10 s with a 2-minute grace: a batch retried
// for the whole of a fault (up to 30 s) is still on time, so the window results must
// equal the oracle's exactly.
const (
	faultTopic = gen.PageViews
	faultAgg   = "faults_views_by_country_10s"
	// ackTimeout is ingest's --ack-timeout here (its default). No request may take longer
	// than it plus the 2 s ingest waits for an unanswered commit (docs/API.md, 504), plus
	// requestSlack for the machine (504s were answered at 8.0 s on the 2-core development
	// machine at load 18; a hang is tens of seconds).
	ackTimeout   = 5 * time.Second
	requestSlack = 2 * time.Second
)

func faultPipeline() *config.Pipeline {
	p := config.Default()
	t, ok := p.Topic(faultTopic)
	if !ok {
		panic("no " + faultTopic + " in the default pipeline")
	}
	p.Topics = []config.Topic{*t}
	p.RetryTiers = nil
	p.Aggregations = []config.Aggregation{{
		Name: faultAgg, From: faultTopic, GroupBy: []string{"country"},
		Window:   config.Window{Type: "tumbling", Size: config.Duration(10 * time.Second), Grace: config.Duration(2 * time.Minute)},
		Measures: []string{"count"}, Emit: "final",
	}}
	return p
}

// env is what a fault acts on.
type env struct {
	t *testing.T
	c *Cluster
	p *harness.Pipeline
}

// wait waits d (pacing a fault: how long it lasts), or fails when the test ends first.
func (e env) wait(d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-e.t.Context().Done():
		e.t.Fatal("test ended during a fault")
	case <-tm.C:
	}
}

func (e env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// leaderOf returns the node leading partition 0 of the raw topic.
func (e env) leaderOf() int {
	e.t.Helper()
	ds, err := e.p.Admin().ListTopics(e.t.Context(), faultTopic)
	e.must(err)
	d := ds[faultTopic]
	if d.Err != nil {
		e.t.Fatal(d.Err)
	}
	return int(d.Partitions[0].Leader)
}

// coordinatorOf returns the node that coordinates most of ingest's transactional ids.
func (e env) coordinatorOf() int {
	e.t.Helper()
	ctx := e.t.Context()
	lt, err := e.p.Admin().ListTransactions(ctx, nil, nil)
	e.must(err)
	var ids []string
	for _, id := range lt.TransactionalIDs() {
		if strings.HasPrefix(id, "sluice.ingest.") {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		e.t.Fatalf("no ingest transactional id among %v", lt.TransactionalIDs())
	}
	votes := map[int]int{}
	for _, r := range e.p.Admin().FindTxnCoordinators(ctx, ids...) {
		if r.Err == nil {
			votes[int(r.NodeID)]++
		}
	}
	best := 0
	for n, v := range votes {
		if best == 0 || v > votes[best] {
			best = n
		}
	}
	if best == 0 {
		e.t.Fatalf("no coordinator found for %v", ids)
	}
	e.t.Logf("transaction coordinator of %v: node %d", ids, best)
	return best
}

// waitInSync waits until every partition of the pipeline's topics (and of the offsets and
// transaction state topics) has all three replicas in sync: the point at which MSK
// patching moves on to the next broker.
func (e env) waitInSync(timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		ds, err := e.p.Admin().ListTopics(e.t.Context())
		short := -1
		if err == nil {
			short = 0
			for _, d := range ds {
				for _, pd := range d.Partitions {
					if len(pd.ISR) < len(pd.Replicas) {
						short++
					}
				}
			}
		}
		if short == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d partitions still under-replicated after %s (%v)", short, timeout, err)
		}
		select {
		case <-e.t.Context().Done():
			e.t.Fatal(e.t.Context().Err())
		case <-tick.C:
		}
	}
}

// everyNode applies a toxic to every proxy for d, then removes it.
func (e env) everyNode(d time.Duration, tx Toxic) {
	for _, n := range Nodes {
		e.must(e.c.AddToxic(n, tx))
	}
	e.wait(d)
	for _, n := range Nodes {
		e.must(e.c.RemoveToxic(context.Background(), n, tx.Name))
	}
}

// faultCase is one case: the fault runs under load and returns when it has ended.
type faultCase struct {
	name  string
	fault func(e env)
	// max503, if set, is the goal for the longest run of 503s (docs/BENCHMARKS.md).
	max503 time.Duration
}

// max503Bound is what a case asserts of its longest run of 503s. The full suite
// (make test-faults, run on a quiet host for docs/BENCHMARKS.md) asserts the goal; the
// short suite of make test runs beside the whole CI on 2 loaded cores, where a killed
// broker's fencing (3 s of missed heartbeats) and the election behind it stretch, so it
// asserts twice the goal (5.7 s of 503s after a coordinator kill in one CI run, 0.1-1.0 s
// on a quiet host). It catches an ingest that stays down, not a miss of the goal: that
// is the full suite's job.
func max503Bound(goal time.Duration, short bool) time.Duration {
	if short {
		return 2 * goal
	}
	return goal
}

func cases(short bool) []faultCase {
	const partition = 30 * time.Second
	leaderKill := faultCase{name: "leader-kill", max503: 5 * time.Second, fault: func(e env) {
		n := e.leaderOf()
		e.t.Logf("kill -9 node %d (leader of %s/0), restart after 10 s", n, faultTopic)
		e.must(e.c.Kill(e.t.Context(), n))
		e.wait(10 * time.Second)
		e.must(e.c.Start(e.t.Context(), n))
	}}
	partitionCase := faultCase{name: fmt.Sprintf("partition-%ds", int(partition.Seconds())), fault: func(e env) {
		n := e.leaderOf()
		e.t.Logf("node %d (leader of %s/0) cut off from Sluice for %s", n, faultTopic, partition)
		cut := func(stream string) Toxic {
			return Toxic{Name: "partition-" + stream, Type: "timeout", Stream: stream, Attributes: map[string]any{"timeout": 0}}
		}
		e.must(e.c.AddToxic(n, cut("upstream")))
		e.must(e.c.AddToxic(n, cut("downstream")))
		e.wait(partition)
		e.must(e.c.RemoveToxic(context.Background(), n, "partition-upstream"))
		e.must(e.c.RemoveToxic(context.Background(), n, "partition-downstream"))
		// The connections that lost bytes during the partition are dead, as TCP
		// connections that timed out would be.
		e.must(e.c.ResetConnections(n))
	}}
	latency := faultCase{name: "latency-500ms", fault: func(e env) {
		e.t.Logf("500 ms (+-100 ms) on every answer of every broker for 10 s")
		e.everyNode(10*time.Second, Toxic{Name: "latency", Type: "latency", Stream: "downstream",
			Attributes: map[string]any{"latency": 500, "jitter": 100}})
	}}
	resets := faultCase{name: "resets", fault: func(e env) {
		for i := range 3 {
			e.t.Logf("reset every connection to every broker (%d of 3)", i+1)
			e.everyNode(500*time.Millisecond, Toxic{Name: "reset", Type: "reset_peer", Stream: "upstream",
				Attributes: map[string]any{"timeout": 0}})
			e.wait(3 * time.Second)
		}
	}}
	coordinatorKill := faultCase{name: "coordinator-kill", max503: 5 * time.Second, fault: func(e env) {
		n := e.coordinatorOf()
		e.t.Logf("kill -9 node %d (ingest's transaction coordinator), restart after 10 s", n)
		e.must(e.c.Kill(e.t.Context(), n))
		e.wait(10 * time.Second)
		e.must(e.c.Start(e.t.Context(), n))
	}}
	if short {
		// The short suite of make test: a broker killed under the partition's leader and
		// under ingest's transaction coordinator, and connection resets.
		return []faultCase{leaderKill, coordinatorKill, resets}
	}
	return []faultCase{
		leaderKill,
		{name: "rolling-restart", max503: 5 * time.Second, fault: func(e env) {
			for _, n := range Nodes {
				e.t.Logf("rolling restart: stop node %d, start it, wait for every replica in sync", n)
				e.must(e.c.Stop(e.t.Context(), n))
				e.must(e.c.Start(e.t.Context(), n))
				e.waitInSync(2 * time.Minute)
			}
		}},
		coordinatorKill,
		{name: "min-isr-unmet", fault: func(e env) {
			l := e.leaderOf()
			other := Nodes[0]
			if other == l {
				other = Nodes[1]
			}
			e.t.Logf("kill -9 nodes %d and %d: min.insync.replicas=2 cannot be met for 20 s", l, other)
			e.must(e.c.Kill(e.t.Context(), l))
			e.must(e.c.Kill(e.t.Context(), other))
			e.wait(20 * time.Second)
			e.must(e.c.Start(e.t.Context(), l))
			e.must(e.c.Start(e.t.Context(), other))
		}},
		latency,
		{name: "bandwidth-25KBps", fault: func(e env) {
			e.t.Logf("25 KB/s towards every broker for 10 s")
			e.everyNode(10*time.Second, Toxic{Name: "bandwidth", Type: "bandwidth", Stream: "upstream",
				Attributes: map[string]any{"rate": 25}})
		}},
		resets,
		partitionCase,
	}
}

// result is one row of the Faults table.
type result struct {
	name                            string
	sent, accepted, lost, dup       int
	longest503, recovery, longestRq time.Duration
	recovered                       bool
	// stuck: a stage stopped until the processor was restarted; restartHelped: every
	// stage caught up after that restart. cleanUnknown: the clean stage never caught up,
	// so lost counts accepted events missing from the raw topic (durability at ingest)
	// and duplicates are not known.
	stuck, restartHelped, cleanUnknown bool
	status                             map[int]int
}

// TestFaults runs every fault case under load on the three-node cluster and prints the
// Faults table of docs/BENCHMARKS.md. -short runs the short suite of make test.
func TestFaults(t *testing.T) {
	if os.Getenv("SLUICE_TEST_FAULTS") == "" {
		t.Skip("SLUICE_TEST_FAULTS is unset: the fault suite needs the three-node cluster; run make test-faults (or make test-faults-short)")
	}
	c, err := ClusterFromEnv(".")
	if err != nil {
		t.Fatal(err)
	}
	ensureUp(t, c)
	if err := c.StartProxies(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.StopProxies)
	// The short suite of make test runs at half the rate: CI has 2 cores.
	rate := 2000
	if testing.Short() {
		rate = 1000
	}
	if s := os.Getenv("SLUICE_FAULTS_RATE"); s != "" {
		if rate, err = strconv.Atoi(s); err != nil || rate <= 0 {
			t.Fatalf("SLUICE_FAULTS_RATE=%q", s)
		}
	}
	var rows []result
	for i, fc := range cases(testing.Short()) {
		t.Run(fc.name, func(t *testing.T) {
			ensureUp(t, c)
			rows = append(rows, runCase(t, c, fc, rate, uint64(17+i)))
		})
	}
	t.Logf("Faults at %d events/s (batches of 100, 16 clients retrying 503 and 504):", rate)
	t.Logf("| case | sent | accepted | lost | duplicated | longest 503 run | e2e p95 recovered after | longest request |")
	t.Logf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rows {
		rec := fmt.Sprintf("%.1f s", r.recovery.Seconds())
		if !r.recovered {
			rec = "not within the run"
		}
		dup := strconv.Itoa(r.dup)
		switch {
		case r.cleanUnknown:
			rec, dup = "never (stage stuck, also after a restart)", "unknown (stage stuck)"
		case r.restartHelped:
			rec = "never (stage stuck; caught up after a processor restart)"
		}
		t.Logf("| %s | %d | %d | %d | %s | %.1f s | %s | %.2f s |", r.name, r.sent, r.accepted, r.lost, dup,
			r.longest503.Seconds(), rec, r.longestRq.Seconds())
	}
}

// stageGroups lists the groups of the repartition and aggregate stages, repartition first.
func stageGroups(g map[string][]string) []string {
	var out []string
	for _, prefix := range []string{"sluice.repartition.", "sluice.agg."} {
		for name := range g {
			if strings.HasPrefix(name, prefix) {
				out = append(out, name)
			}
		}
	}
	return out
}

// ensureUp starts any node that is down (a failed case may leave one).
func ensureUp(t *testing.T, c *Cluster) {
	t.Helper()
	up, err := c.Running(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range Nodes {
		if !up[n] {
			t.Logf("node %d is down: starting it", n)
			if err := c.Start(t.Context(), n); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func runCase(t *testing.T, c *Cluster, fc faultCase, rate int, seed uint64) result {
	p := harness.Start(t, harness.WithBackend(&harness.External{Brokers: c.Bootstrap()}),
		harness.WithPipeline(faultPipeline()), harness.WithoutProcessor(),
		harness.WithService(func(s *config.Service) { s.AckTimeout = ackTimeout }))
	// The groups' production session timeout (the harness' 2 s suits kfake, where a
	// coordinator never moves): a broker failover takes longer than 2 s.
	p.Deps.Kafka.SessionTimeout = config.DefaultGroupSessionTimeout
	pr := p.StartProcessor()
	w := harness.OpenWarehouse(t, harness.DuckDB)
	p.StartSink(w)
	// Cleanups run last-registered first: a processor that a failed case left stuck is
	// killed before the harness' graceful stop would wait on it.
	t.Cleanup(func() {
		if t.Failed() {
			pr.Kill()
		}
	})
	e := env{t: t, c: c, p: p}
	e.waitInSync(time.Minute)

	tail, err := StartTail(t.Context(), c.Direct(), wire.CleanTopic(faultTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Stop()
	load, err := NewLoad(LoadConfig{URL: p.IngestURL, Topic: faultTopic, Rate: rate, Batch: 100, Workers: 16,
		Seed: seed, Case: fc.name, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	loadCtx, stopLoad := context.WithCancel(t.Context())
	defer stopLoad()
	drainCtx, stopDrain := context.WithTimeout(t.Context(), 5*time.Minute)
	defer stopDrain()
	var wg sync.WaitGroup
	wg.Go(func() { load.Run(loadCtx, drainCtx) })

	e.wait(10 * time.Second) // warm-up: the pipeline at its steady state before the fault
	faultAt := time.Now()
	t.Logf("fault %s begins", fc.name)
	fc.fault(e)
	faultOver := time.Now()
	t.Logf("fault %s over after %.1f s", fc.name, faultOver.Sub(faultAt).Seconds())
	e.wait(30 * time.Second) // the load goes on: recovery is measured in it
	stopLoad()
	wg.Wait()

	// Events 4 minutes ahead in event time (ingest takes up to --max-future, 5 min) close
	// every window of the run (stream time is the
	// smallest watermark of the partitions; 200 keys reach all of them).
	if st := load.Send(drainCtx, 200, 4*time.Minute); st != 202 {
		t.Fatalf("closing batch: status %d", st)
	}
	// Every stage must catch up: one that does not is stuck (reported, not waited on).
	g := p.Groups()
	waitStages := func() (all, clean bool) {
		for i, group := range append([]string{"sluice.clean"}, stageGroups(g)...) {
			if !p.TryCaughtUp(group, 90*time.Second, g[group]...) {
				t.Errorf("group %s did not catch up within 90 s (lag %d): the stage is stuck",
					group, p.Lag(group, g[group]...))
				return false, i > 0 // the later stages read its output
			}
		}
		return true, true
	}
	caughtUp, cleanCaughtUp := waitStages()
	stuck := !caughtUp
	if stuck {
		// Where every goroutine waits, for the report: the stuck stage's among them.
		dump := filepath.Join(os.TempDir(), fmt.Sprintf("sluice-faults-%s-%d.goroutines", fc.name, time.Now().Unix()))
		if f, err := os.Create(dump); err == nil {
			_ = pprof.Lookup("goroutine").WriteTo(f, 2)
			_ = f.Close()
			t.Logf("goroutines of the stuck pipeline: %s", dump)
		}
		// A processor whose stage returned an error has stopped: say with what.
		ended := make(chan error, 1)
		go func() { ended <- pr.Wait() }()
		select {
		case err := <-ended:
			t.Logf("the processor had stopped: %v", err)
		case <-time.After(time.Second):
			t.Logf("the processor is still running")
		}
		// The remedy docs/OPERATIONS.md gives: restart the processor under its instance id
		// (its open transactions are fenced), then everything must hold as before.
		t.Logf("restarting processor instance %s", pr.InstanceID)
		pr.Kill()
		pr = p.StartProcessorID(pr.InstanceID)
		t.Cleanup(func() {
			if t.Failed() {
				pr.Kill()
			}
		})
		caughtUp, cleanCaughtUp = waitStages()
		t.Logf("after the restart: every stage caught up: %v", caughtUp)
	}
	if caughtUp {
		p.WaitSinkCaughtUp(w, 3*time.Minute)
	}
	tail.Stop()

	sum := load.Summarize()
	r := result{name: fc.name, sent: sum.Sent, accepted: sum.Accepted, longest503: sum.Longest503,
		longestRq: sum.Longest, status: sum.Status}
	secs := tail.Seconds()
	// The limit is 1 s, or the p95 before the fault if that was higher already (a loaded
	// machine): recovery is a return to where the pipeline was.
	var before []Second
	var trace strings.Builder
	for _, sc := range secs {
		if sc.At.Before(faultAt.Add(-time.Second)) && sc.At.After(faultAt.Add(-8*time.Second)) {
			before = append(before, sc)
		}
		fmt.Fprintf(&trace, " %.1f", sc.P95.Seconds())
	}
	// The median second before the fault: the first seconds of the warm-up include the
	// stages joining their groups.
	var baseline time.Duration
	if len(before) > 0 {
		ps := make([]time.Duration, len(before))
		for i, sc := range before {
			ps[i] = sc.P95
		}
		slices.Sort(ps)
		baseline = ps[len(ps)/2]
	}
	limit := max(time.Second, baseline+baseline/2)
	t.Logf("e2e p95 per second (s):%s; median before the fault %.2f s: recovery limit %.2f s", trace.String(), baseline.Seconds(), limit.Seconds())
	r.recovery, r.recovered = Recovery(secs, faultAt, faultOver, limit)
	r.stuck, r.restartHelped = stuck, stuck && caughtUp
	r.cleanUnknown = !cleanCaughtUp
	r.lost, r.dup = checkExactlyOnce(t, p, w, load, cleanCaughtUp, caughtUp)
	if caughtUp {
		checkWindows(t, p, w)
	}

	t.Logf("%s: %d requests %v; %d events sent, %d accepted, %d lost, %d duplicated; longest 503 run %.1f s, e2e p95 < 1 s again %.1f s after the fault began (recovered: %v), longest request %.2f s",
		fc.name, sum.Requests, sum.Status, r.sent, r.accepted, r.lost, r.dup, r.longest503.Seconds(),
		r.recovery.Seconds(), r.recovered, r.longestRq.Seconds())
	if bound := ackTimeout + 2*time.Second + requestSlack; sum.Longest > bound {
		t.Errorf("a request took %s, more than the ack deadline allows (%s)", sum.Longest, bound)
	}
	if !r.recovered {
		t.Errorf("e2e p95 never stayed under %.2f s for 5 s in a row after the fault", limit.Seconds())
	}
	if bound := max503Bound(fc.max503, testing.Short()); bound > 0 && sum.Longest503 > bound {
		t.Errorf("longest run of 503s %s, bound %s (goal under %s)", sum.Longest503, bound, fc.max503)
	}
	if r.accepted == 0 {
		t.Errorf("no event accepted: the case proves nothing")
	}
	return r
}

// checkExactlyOnce: every event of a 202'd batch is in the raw topic (durable: not lost at
// ingest), and, once the clean stage caught up, exactly once in .clean (and, once the sink
// caught up, once in the warehouse); an event of a batch that only ever got 503s is
// nowhere; one of a batch with a 504 and no 202 is at most once in .clean; nothing else is
// there. It returns the accepted events missing (from .clean when clean is set, else from
// the raw topic) and those more than once in .clean.
func checkExactlyOnce(t *testing.T, p *harness.Pipeline, w sink.Warehouse, load *Load, clean, warehouse bool) (lost, dup int) {
	t.Helper()
	count := func(topic string) map[string]int {
		m := map[string]int{}
		for _, r := range p.ReadAll(topic) {
			m[r.Headers[wire.HeaderEventID]]++
		}
		return m
	}
	inRaw := count(faultTopic)
	inClean := map[string]int{}
	if clean {
		inClean = count(wire.CleanTopic(faultTopic))
	}
	inWarehouse := map[string]int{}
	if warehouse {
		rows, err := w.Query(t.Context(), "SELECT EVENT_ID FROM "+sink.TableName(wire.CleanTopic(faultTopic)))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			inWarehouse[id]++
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	ids, outcome := load.Batches()
	known := map[string]bool{}
	lostRaw, phantom, whDiff := 0, 0, 0
	for b, bids := range ids {
		for _, id := range bids {
			known[id] = true
			n := inClean[id]
			switch outcome[b] {
			case Accepted:
				if inRaw[id] == 0 {
					lostRaw++
				}
				if clean && n == 0 {
					lost++
				}
				if n > 1 {
					dup++
				}
			case Pending:
				if inRaw[id] != 0 || n != 0 {
					phantom++
				}
			case Unknown:
				if n > 1 {
					dup++
				}
			}
			if warehouse && inWarehouse[id] != min(n, 1) {
				whDiff++
			}
		}
	}
	if !clean {
		lost = lostRaw
	}
	stray := 0
	for _, m := range []map[string]int{inRaw, inClean, inWarehouse} {
		for id := range m {
			if !known[id] {
				stray++
			}
		}
	}
	if lostRaw+lost+dup+phantom+whDiff+stray > 0 {
		t.Errorf("accepted events: %d not in %s, %d not in .clean, %d more than once in .clean; %d events of never-accepted (503-only) batches present; warehouse: %d events not exactly as in .clean; %d unknown ids",
			lostRaw, faultTopic, lost, dup, phantom, whDiff, stray)
	}
	return lost, dup
}

// checkWindows compares the window results with the oracle over what .clean holds, and
// the warehouse's AGGREGATES with the agg topic.
func checkWindows(t *testing.T, p *harness.Pipeline, w sink.Warehouse) {
	t.Helper()
	a := p.Deps.Pipeline.Aggregations[0]
	topic, _ := p.Deps.Pipeline.Topic(faultTopic)
	spec, _, err := process.Spec(a, topic.Partitions)
	if err != nil {
		t.Fatal(err)
	}
	recs := p.ReadAll(wire.CleanTopic(faultTopic))
	// Arrival order (ingest time); with no late event the closed windows do not depend on it.
	slices.SortStableFunc(recs, func(x, y harness.Record) int {
		return strings.Compare(fmt.Sprintf("%020s", x.Headers[wire.HeaderIngestTS]), fmt.Sprintf("%020s", y.Headers[wire.HeaderIngestTS]))
	})
	evs := make([]stream.Event, 0, len(recs))
	for _, r := range recs {
		if r.DecodeErr != nil {
			t.Fatalf(".clean record: %v", r.DecodeErr)
		}
		var ms int64
		switch v := r.Value["event_time"].(type) {
		case time.Time:
			ms = v.UnixMilli()
		case int64:
			ms = v
		default:
			t.Fatalf("event_time %T", v)
		}
		vals := []string{fmt.Sprint(r.Value["country"])}
		evs = append(evs, stream.Event{Source: process.SourceID(wire.CleanTopic(faultTopic), r.Partition),
			Time: ms, Group: stream.GroupKey(vals), GroupValues: vals, Values: map[string]any{},
			EventID: r.Headers[wire.HeaderEventID]})
	}
	want := harness.Oracle(spec, evs)
	if len(want.Late) != 0 {
		t.Errorf("the oracle finds %d late events", len(want.Late))
	}
	got := map[string]int64{}
	var topicRows []string
	for _, r := range p.ReadAll(wire.AggTopic(a.Name)) {
		if r.DecodeErr != nil {
			t.Fatal(r.DecodeErr)
		}
		g, _ := r.Value["group"].(map[string]any)
		k := stream.GroupKey([]string{fmt.Sprint(g["country"])}) + "@" + fmt.Sprint(r.Value["window_start"].(time.Time).UnixMilli())
		if _, dup := got[k]; dup {
			t.Errorf("window %s emitted twice", k)
		}
		got[k] = r.Value["count"].(int64)
		topicRows = append(topicRows, fmt.Sprintf("%d|%d", r.Value["window_start"].(time.Time).UnixMilli(), got[k]))
	}
	bad := 0
	for _, f := range want.Finals {
		k := f.Group + "@" + fmt.Sprint(f.Start)
		if n, ok := got[k]; !ok || n != f.Count {
			if bad++; bad <= 5 {
				t.Errorf("window %s: count %d (emitted %v), oracle %d", k, n, ok, f.Count)
			}
		}
		delete(got, k)
	}
	for k := range got {
		if bad++; bad <= 10 {
			t.Errorf("window %s emitted, but the oracle has it open or absent", k)
		}
	}
	if len(want.Finals) == 0 {
		t.Error("the oracle closed no window: the case proves nothing")
	}
	if late := p.ReadAll(wire.LateTopic(faultTopic)); len(late) != 0 {
		t.Errorf("%d events routed late", len(late))
	}
	// AGGREGATES: every result of the agg topic once, with its count.
	rows, err := w.Query(t.Context(), "SELECT AGGREGATION, WINDOW_START, CAST(MEASURES AS VARCHAR) FROM "+sink.AggregatesTable)
	if err != nil {
		t.Fatal(err)
	}
	var whRows []string
	for rows.Next() {
		var name, m string
		var start time.Time
		if err := rows.Scan(&name, &start, &m); err != nil {
			t.Fatal(err)
		}
		var ms struct {
			Count int64 `json:"count"`
		}
		if err := json.Unmarshal([]byte(m), &ms); err != nil {
			t.Fatal(err)
		}
		if name == a.Name {
			whRows = append(whRows, fmt.Sprintf("%d|%d", start.UnixMilli(), ms.Count))
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(topicRows)
	slices.Sort(whRows)
	if !slices.Equal(topicRows, whRows) {
		t.Errorf("AGGREGATES (%d rows) differs from %s (%d results)", len(whRows), wire.AggTopic(a.Name), len(topicRows))
	}
	t.Logf("%d windows equal the oracle's; AGGREGATES holds the %d results once each", len(want.Finals), len(whRows))
}
