package e2e

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// flaky is a user transform standing for an enrichment service: per event id it fails
// transiently a given number of times (or forever), fails permanently for poison ids,
// and fails everything while down. It records the clock at every call.
type flaky struct {
	now func() time.Time
	// plan returns how many calls of id fail transiently (-1: all) and whether id is poison.
	plan func(id string) (fails int, poison bool)
	down atomic.Bool

	mu    sync.Mutex
	calls map[string][]time.Time
	total int
}

func newFlaky(now func() time.Time, plan func(string) (int, bool)) *flaky {
	return &flaky{now: now, plan: plan, calls: map[string][]time.Time{}}
}

func (f *flaky) Dependency() string { return "enrich" }

func (f *flaky) Apply(_ context.Context, _ string, ev map[string]any) error {
	id, _ := ev["event_id"].(string)
	f.mu.Lock()
	f.calls[id] = append(f.calls[id], f.now())
	f.total++
	n := len(f.calls[id])
	f.mu.Unlock()
	if f.down.Load() {
		return errors.New("enrich: connection refused")
	}
	fails, poison := f.plan(id)
	if poison {
		return dlq.AsPermanent(errors.New("enrich: unknown customer"))
	}
	if fails < 0 || n <= fails {
		return errors.New("enrich: timeout")
	}
	return nil
}

func (f *flaky) callsOf(id string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls[id]...)
}

func (f *flaky) totalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

// only fails the listed ids; everything else passes.
func only(fails map[string]int, poison map[string]bool) func(string) (int, bool) {
	return func(id string) (int, bool) { return fails[id], poison[id] }
}

func retryTopics(p *harness.Pipeline) []string {
	var out []string
	for _, d := range p.Deps.Pipeline.RetryTiers {
		out = append(out, wire.RetryTopic(d.D()))
	}
	return out
}

// drain moves the fake clock by step until the clean stage has handled everything in the
// raw topics and the retry stage has delivered everything waiting in the retry topics; at
// most rounds times.
func drain(t *testing.T, p *harness.Pipeline, c *harness.Clock, step time.Duration, rounds int) {
	t.Helper()
	raw, rt := gen.Topics(), retryTopics(p)
	for range rounds {
		if p.TryCaughtUp("sluice.clean", 2*time.Second, raw...) && p.Lag("sluice.retry", rt...) == 0 &&
			p.Lag("sluice.clean", raw...) == 0 {
			return
		}
		c.Advance(step)
		p.TryCaughtUp("sluice.retry", 2*time.Second, rt...)
	}
	t.Fatalf("not drained after %d rounds of %s: clean lag %d, retry lag %d", rounds, step,
		p.Lag("sluice.clean", raw...), p.Lag("sluice.retry", rt...))
}

// readRetries returns every record written to the retry topics.
func readRetries(p *harness.Pipeline) []harness.Record {
	var out []harness.Record
	for _, topic := range retryTopics(p) {
		out = append(out, p.ReadAll(topic)...)
	}
	return out
}

func startRetry(t *testing.T, tr *flaky, c *harness.Clock, opts ...harness.Option) *harness.Pipeline {
	t.Helper()
	return harness.Start(t, append([]harness.Option{harness.WithCleanOnly(), harness.WithFakeClock(c),
		harness.WithTransform("purchases", tr)}, opts...)...)
}

// A transient failure that heals on the fourth call: three in-place attempts fail, the
// record waits 5s in _sluice.retry.5s, is delivered back, and succeeds. It is processed
// exactly once and nothing is dead-lettered.
func TestTransientFailureHealsExactlyOnce(t *testing.T) {
	c := harness.NewClock(time.Now().Truncate(time.Millisecond))
	evs := events(t, "purchases", 51, 5)
	id := evs[2]["event_id"].(string)
	tr := newFlaky(c.Now, only(map[string]int{id: 3}, nil))
	p := startRetry(t, tr, c)
	p.Produce(rawRecords(t, p, "purchases", 0, evs)...)
	drain(t, p, c, 5*time.Second, 10)
	if at := tr.callsOf(id); at[3].Sub(at[2]) != 5*time.Second {
		t.Errorf("redelivered %s after the last in-place attempt, want 5s", at[3].Sub(at[2]))
	}

	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), idList(evs))
	if dl := p.ReadAll("purchases.dlq"); len(dl) != 0 {
		t.Errorf("dlq has %d records, want 0", len(dl))
	}
	if got := len(tr.callsOf(id)); got != 4 {
		t.Errorf("transform called %d times for the flaky event, want 4 (3 in place + 1 redelivery)", got)
	}
	rs := readRetries(p)
	if len(rs) != 1 || rs[0].Topic != "_sluice.retry.5s" {
		t.Fatalf("retry records %d (want 1 in _sluice.retry.5s): %v", len(rs), rs)
	}
	if h := rs[0].Headers; h[wire.HeaderAttempts] != "1" || h[wire.HeaderClass] != "transient" || h[wire.HeaderOriginalTopic] != "purchases" {
		t.Errorf("retry record headers: %v", h)
	}
	if got := p.Metric("sluice_retries_total", "topic", "purchases"); got != 1 {
		t.Errorf("sluice_retries_total = %v, want 1", got)
	}
}

// A transient failure that never heals is dead-lettered after exactly max_attempts
// deliveries (each of in_place_attempts calls), carrying the attempt count; between
// deliveries it waits base*factor^(n-1) in the smallest tier that holds that wait.
func TestTransientFailureNeverHealsDeadLettered(t *testing.T) {
	c := harness.NewClock(time.Now().Truncate(time.Millisecond))
	evs := events(t, "purchases", 52, 3)
	id := evs[1]["event_id"].(string)
	tr := newFlaky(c.Now, only(map[string]int{id: -1}, nil))
	p := startRetry(t, tr, c)
	p.Produce(rawRecords(t, p, "purchases", 2, evs)...)
	drain(t, p, c, 30*time.Second, 20)

	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), []string{evs[0]["event_id"].(string), evs[2]["event_id"].(string)})
	dl := p.ReadAll("purchases.dlq")
	if len(dl) != 1 {
		t.Fatalf("dlq has %d records, want 1", len(dl))
	}
	h := dl[0].Headers
	if h[wire.HeaderAttempts] != "4" || h[wire.HeaderClass] != "transient" || h[wire.HeaderStage] != "clean" ||
		h[wire.HeaderError] != "transform: enrich: timeout" || dl[0].Value["event_id"] != id {
		t.Errorf("dead letter headers %v", h)
	}
	calls := tr.callsOf(id)
	if len(calls) != 12 {
		t.Fatalf("transform called %d times, want 4 deliveries x 3 in place = 12", len(calls))
	}
	// The schedule: retry n waits 5s * 2^(n-1) (no jitter under the fake clock), in
	// the smallest tier at least that long, measured from the delivery's last call.
	rs := readRetries(p)
	if len(rs) != 3 {
		t.Fatalf("retry records %d, want 3", len(rs))
	}
	byRound := map[string]harness.Record{}
	for _, r := range rs {
		byRound[r.Headers[wire.HeaderAttempts]] = r
	}
	for n, want := range []struct {
		wait time.Duration
		tier string
	}{{5 * time.Second, "_sluice.retry.5s"}, {10 * time.Second, "_sluice.retry.1m"}, {20 * time.Second, "_sluice.retry.1m"}} {
		r, ok := byRound[strconv.Itoa(n+1)]
		if !ok {
			t.Fatalf("no retry record with attempts %d", n+1)
		}
		at, _ := wire.RetryAt(r.Raw)
		lastCall := calls[3*n+2]
		if r.Topic != want.tier || at.Sub(lastCall) != want.wait {
			t.Errorf("retry %d: in %s waiting %s, want %s waiting %s", n+1, r.Topic, at.Sub(lastCall), want.tier, want.wait)
		}
		if next := calls[3*(n+1)]; next.Before(at) {
			t.Errorf("retry %d delivered at %s, before its time %s", n+1, next, at)
		}
	}
	// In place: 100ms then 200ms between the calls of one delivery.
	if d1, d2 := calls[1].Sub(calls[0]), calls[2].Sub(calls[1]); d1 != 100*time.Millisecond || d2 != 200*time.Millisecond {
		t.Errorf("in-place backoff %s, %s; want 100ms, 200ms", d1, d2)
	}
	if got := p.Metric("sluice_dead_letters_total", "topic", "purchases", "class", "transient"); got != 1 {
		t.Errorf("sluice_dead_letters_total{class=transient} = %v, want 1", got)
	}
}

// A poison record (the transform says permanent) goes to the DLQ at once, with every
// header, and the records after it on its partition keep flowing.
func TestPoisonFromTransformDeadLetteredAtOnce(t *testing.T) {
	c := harness.NewClock(time.Now().Truncate(time.Millisecond))
	evs := events(t, "purchases", 53, 10)
	id := evs[0]["event_id"].(string)
	tr := newFlaky(c.Now, only(nil, map[string]bool{id: true}))
	p := startRetry(t, tr, c)
	p.Produce(rawRecords(t, p, "purchases", 1, evs)...)
	settle(t, p)

	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), idList(evs[1:]))
	dl := p.ReadAll("purchases.dlq")
	if len(dl) != 1 {
		t.Fatalf("dlq has %d records, want 1", len(dl))
	}
	for _, k := range []string{wire.HeaderClass, wire.HeaderError, wire.HeaderStage, wire.HeaderOriginalTopic,
		wire.HeaderOriginalPartition, wire.HeaderOriginalOffset, wire.HeaderAttempts, wire.HeaderFirstFailureTS} {
		if dl[0].Headers[k] == "" {
			t.Errorf("header %s missing: %v", k, dl[0].Headers)
		}
	}
	if h := dl[0].Headers; h[wire.HeaderClass] != "permanent" || h[wire.HeaderAttempts] != "1" || h[wire.HeaderOriginalPartition] != "1" {
		t.Errorf("dead letter headers %v", h)
	}
	if got := len(tr.callsOf(id)); got != 1 {
		t.Errorf("poison record tried %d times, want 1", got)
	}
	if rs := readRetries(p); len(rs) != 0 {
		t.Errorf("%d retry records for a permanent failure", len(rs))
	}
}

// The processor dies while a record waits in a retry topic; after the restart the record
// is delivered once when its time comes and processed exactly once.
func TestKilledWhileWaitingInRetryTopic(t *testing.T) {
	c := harness.NewClock(time.Now().Truncate(time.Millisecond))
	evs := events(t, "purchases", 54, 4)
	id := evs[3]["event_id"].(string)
	tr := newFlaky(c.Now, only(map[string]int{id: 3}, nil))
	p := startRetry(t, tr, c, harness.WithoutProcessor())
	proc := p.StartProcessorID("a")
	p.Produce(rawRecords(t, p, "purchases", 0, evs)...)
	settle(t, p)
	if rs := readRetries(p); len(rs) != 1 {
		t.Fatalf("retry records %d, want 1", len(rs))
	}
	proc.Kill()
	p.StartProcessorID("a")
	drain(t, p, c, 5*time.Second, 10)

	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), idList(evs))
	if got := len(tr.callsOf(id)); got != 4 {
		t.Errorf("transform called %d times, want 4 (3 in place, 1 after the restart)", got)
	}
	copies := 0
	for _, r := range p.ReadAll("purchases") {
		if r.Value["event_id"] == id {
			copies++
		}
	}
	if copies != 2 {
		t.Errorf("purchases holds %d copies of the retried record, want 2 (original + one redelivery)", copies)
	}
}

// The dependency is down for a minute: its breaker opens after the threshold, the clean
// stage holds its partitions and probes with backoff, no more than the in-flight records
// reach the retry topics, nothing reaches the DLQ, and once it is back the stage resumes
// by itself and every event comes out exactly once.
func TestCircuitBreakerDependencyDown(t *testing.T) {
	c := harness.NewClock(time.Now().Truncate(time.Millisecond))
	tr := newFlaky(c.Now, only(nil, nil))
	tr.down.Store(true)
	p := startRetry(t, tr, c)
	var want []string
	for part := range int32(3) {
		evs := events(t, "purchases", 60+uint64(part), 50)
		want = append(want, idList(evs)...)
		p.Produce(rawRecords(t, p, "purchases", part, evs)...)
	}
	waitFor(t, "the breaker to open", func() bool {
		return p.Metric("sluice_circuit_breaker_state", "dependency", "enrich") == 2
	})
	for range 12 { // a minute in probe steps
		c.Advance(5 * time.Second)
		p.TryCaughtUp("sluice.retry", 200*time.Millisecond, retryTopics(p)...)
	}
	threshold := p.Deps.Pipeline.Breaker.Threshold
	if n := len(readRetries(p)); n >= threshold {
		t.Errorf("%d records reached the retry topics while the breaker was open, want < %d", n, threshold)
	}
	if n := len(p.ReadAll("purchases.dlq")); n != 0 {
		t.Errorf("%d dead letters while the dependency was down", n)
	}
	if n := len(p.ReadAll("purchases.clean")); n != 0 {
		t.Errorf("%d clean records while the dependency was down", n)
	}
	calls := tr.totalCalls()
	t.Logf("while down: %d calls, %d retry records, %v holds", calls, len(readRetries(p)),
		p.Metric("sluice_stage_partition_holds_total", "stage", "clean", "reason", "circuit-open"))
	// Without a breaker every record would cost in_place_attempts calls per delivery.
	if calls >= 150 {
		t.Errorf("%d calls to the dependency while down: the breaker did not stop the flood", calls)
	}

	tr.down.Store(false)
	drain(t, p, c, 30*time.Second, 20)
	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), want)
	if n := len(p.ReadAll("purchases.dlq")); n != 0 {
		t.Errorf("%d dead letters after recovery", n)
	}
	if got := p.Metric("sluice_circuit_breaker_state", "dependency", "enrich"); got != 0 {
		t.Errorf("breaker state %v after recovery, want 0 (closed)", got)
	}
	if p.Metric("sluice_stage_partition_holds_total", "stage", "clean", "reason", "circuit-open") == 0 {
		t.Error("the clean stage never held a partition for the open circuit")
	}
}

// In ordered mode a retried head record holds its partition: records of its key come out
// in input order, nothing goes through the retry topics.
func TestOrderedModeKeepsKeyOrder(t *testing.T) {
	c := harness.NewClock(time.Now().Truncate(time.Millisecond))
	pl := config.Default()
	pt, _ := pl.Topic("purchases")
	pt.Retry.Ordered = true
	pt.Retry.InPlaceAttempts = 1
	evs := events(t, "purchases", 55, 8)
	for _, e := range evs {
		e["user_id"] = "u-ordered"
	}
	head := evs[1]["event_id"].(string)
	tr := newFlaky(c.Now, only(map[string]int{head: 2}, nil))
	p := startRetry(t, tr, c, harness.WithPipeline(pl))
	p.Produce(rawRecords(t, p, "purchases", 1, evs)...)
	for i := 0; !p.TryCaughtUp("sluice.clean", time.Second, gen.Topics()...); i++ {
		if i == 20 {
			t.Fatal("clean stage never caught up")
		}
		c.Advance(10 * time.Second)
	}
	clean := p.ReadAll("purchases.clean")
	if len(clean) != len(evs) {
		t.Fatalf("clean has %d records, want %d", len(clean), len(evs))
	}
	for i, r := range clean {
		if r.Value["event_id"] != evs[i]["event_id"] {
			t.Fatalf("clean record %d is %v, want %v: order broken", i, r.Value["event_id"], evs[i]["event_id"])
		}
	}
	if rs := readRetries(p); len(rs) != 0 {
		t.Errorf("ordered mode wrote %d retry records", len(rs))
	}
	if got := len(tr.callsOf(head)); got != 3 {
		t.Errorf("head tried %d times, want 3", got)
	}
	if p.Metric("sluice_stage_partition_holds_total", "reason", "ordered-retry") != 2 {
		t.Errorf("holds for ordered retry = %v, want 2", p.Metric("sluice_stage_partition_holds_total", "reason", "ordered-retry"))
	}
}

// A record dead-lettered, replayed and dead-lettered again five times keeps the same
// headers: replaced, not appended.
func TestDeadLetterReplayedFiveTimesBoundedHeaders(t *testing.T) {
	c := harness.NewClock(time.Now().Truncate(time.Millisecond))
	evs := events(t, "purchases", 56, 1)
	id := evs[0]["event_id"].(string)
	tr := newFlaky(c.Now, only(nil, map[string]bool{id: true}))
	p := startRetry(t, tr, c)
	p.Produce(rawRecords(t, p, "purchases", 0, evs)...)
	settle(t, p)
	var sizes []int
	for round := range 6 {
		dl := p.ReadAll("purchases.dlq")
		if len(dl) != round+1 {
			t.Fatalf("round %d: dlq has %d records", round, len(dl))
		}
		last := dl[0]
		for _, r := range dl {
			if wire.Attempts(r.Raw) > wire.Attempts(last.Raw) {
				last = r
			}
		}
		size := 0
		for _, h := range last.Raw.Headers {
			size += len(h.Key) + len(h.Value)
		}
		headerCount(t, last)
		sizes = append(sizes, size)
		if round < 5 {
			if n := replayAll(t, p, []harness.Record{last}, dlq.Filter{}); n != 1 {
				t.Fatalf("replayed %d", n)
			}
			settle(t, p)
		}
	}
	// The first letter has no sluice-replayed header; later ones differ only in the
	// digits of the attempt count and timestamps.
	for i := 2; i < len(sizes); i++ {
		if sizes[i] > sizes[1]+2 {
			t.Errorf("header bytes grow: %v", sizes)
		}
	}
}

// 50k records, 1% poison and 1% transient (healing on the second delivery): clean plus
// dead letters equals the input, and every event id appears exactly once across them.
func TestPoisonAndTransientAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("50k records")
	}
	c := harness.NewClock(time.Now().Truncate(time.Millisecond))
	plan := func(id string) (int, bool) {
		switch fnv(id) % 100 {
		case 0:
			return 0, true
		case 1:
			return 3, false // the whole first delivery fails
		}
		return 0, false
	}
	tr := newFlaky(c.Now, plan)
	p := startRetry(t, tr, c)
	var want []string
	var poison, transient int
	for part := range int32(3) {
		for batch := range 4 {
			evs := events(t, "purchases", uint64(1000+int(part)*10+batch), 50_000/12+1)
			for _, e := range evs {
				id := e["event_id"].(string)
				want = append(want, id)
				switch n, bad := plan(id); {
				case bad:
					poison++
				case n > 0:
					transient++
				}
			}
			p.Produce(rawRecords(t, p, "purchases", part, evs)...)
		}
	}
	drain(t, p, c, 10*time.Second, 30)

	all := idsOf(t, p.ReadAll("purchases.clean"))
	dl := p.ReadAll("purchases.dlq")
	for id, n := range idsOf(t, dl) {
		all[id] += n
	}
	exactlyOnce(t, all, want)
	if len(dl) != poison {
		t.Errorf("dlq has %d records, want the %d poison ones", len(dl), poison)
	}
	if rs := readRetries(p); len(rs) != transient {
		t.Errorf("%d retry records, want %d (one per transient record)", len(rs), transient)
	}
	t.Logf("%d records: %d poison, %d transient", len(want), poison, transient)
}

func fnv(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func idList(evs []map[string]any) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e["event_id"].(string)
	}
	return out
}

// waitFor polls cond (an effect the test cannot be told about) for up to 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		select {
		case <-t.Context().Done():
			t.Fatal("test ended")
		case <-time.After(20 * time.Millisecond):
		}
	}
}
