package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// One source partition stalls (its raw partition cannot be fetched) while the others run
// on, long enough in wall-clock time for idle advance to fire on the quiet, caught-up
// ones. Idle advance must never fire on the stalled partition: it has a backlog. When the
// stall ends, its backlog flows through on time: zero records late, results exact, and
// idle advance then closes the last windows.
func TestBacklogNeverLateIdleAdvanceOnlyWhenCaughtUp(t *testing.T) {
	clock := harness.NewClock(windowBase.Add(2 * time.Hour))
	p := harness.Start(t, harness.WithClock(clock.Now),
		harness.WithService(func(s *config.Service) { s.IdleAdvance = time.Minute }))
	c := p.FaultCluster()
	a, _ := p.Deps.Pipeline.Aggregation("revenue_by_country_1m")
	stall := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: gen.Purchases, Partitions: []int32{0},
		Err: kerr.NotLeaderForPartition, Count: -1})

	evs := windowEvents(t, gen.Purchases, 21, 3000, windowBase, 200*time.Millisecond, 2*time.Second) // 10 minutes
	produced := p.ProduceEvents(gen.Purchases, evs)
	p.WaitCaughtUp("sluice.repartition."+a.Name, time.Minute, wire.CleanTopic(gen.Purchases))

	// Quiet for longer than idle advance, in wall-clock time.
	src := func(part int) string { return process.SourceID(wire.CleanTopic(gen.Purchases), int32(part)) }
	// advanced: every aggregate task has seen source part's watermark move to idle time.
	advanced := func(part int) bool {
		for task := range 3 {
			if p.Metric("sluice_watermark_seconds", "aggregation", a.Name, "partition", fmt.Sprint(task), "source", src(part)) <
				float64(clock.Now().Add(-2*time.Minute).Unix()) {
				return false
			}
		}
		return true
	}
	clock.Advance(5 * time.Minute)
	deadline := time.Now().Add(30 * time.Second)
	for !(advanced(1) && advanced(2)) {
		if time.Now().After(deadline) {
			t.Fatalf("idle advance never fired on the caught-up partitions 1 and 2")
		}
		clock.Advance(time.Second) // each tick sees time pass
		waitBriefly(t, p)
	}
	if advanced(0) {
		t.Fatal("idle advance fired on partition 0, which has a backlog")
	}
	if got := p.Metric("sluice_window_results_total", "aggregation", a.Name); got != 0 {
		t.Fatalf("%v results emitted while partition 0 holds stream time back", got)
	}

	stall.Remove()
	p.WaitAllCaughtUp(time.Minute)
	if late := p.ReadAll(wire.LateTopic(gen.Purchases)); len(late) != 0 {
		t.Fatalf("%d records of the backlog routed late", len(late))
	}

	// Now partition 0 is caught up too: idle advance closes every window.
	clock.Advance(5 * time.Minute)
	deadline = time.Now().Add(30 * time.Second)
	for !advanced(0) {
		if time.Now().After(deadline) {
			t.Fatal("idle advance never fired on partition 0 after it caught up")
		}
		clock.Advance(time.Second)
		waitBriefly(t, p)
	}
	p.WaitAllCaughtUp(time.Minute)
	spec, _, _ := process.Spec(*a, 3)
	end := clock.Now().UnixMilli()
	want := harness.Oracle(spec, oracleEvents(t, *a, produced),
		harness.OracleAdvance{AfterIndex: len(produced) - 1, Source: src(0), Watermark: end},
		harness.OracleAdvance{AfterIndex: len(produced) - 1, Source: src(1), Watermark: end},
		harness.OracleAdvance{AfterIndex: len(produced) - 1, Source: src(2), Watermark: end})
	if len(want.Open) != 0 {
		t.Fatalf("oracle leaves %d windows open", len(want.Open))
	}
	compareWithOracle(t, *a, readResults(t, p, *a), want)
}

// waitBriefly gives the stages one tick interval of real time: they poll with that
// timeout, then tick against the injected clock. The only real-time wait in these tests,
// bounded, used where the effect is a clock tick rather than an observable record.
func waitBriefly(t *testing.T, p *harness.Pipeline) {
	t.Helper()
	tm := time.NewTimer(300 * time.Millisecond)
	defer tm.Stop()
	select {
	case <-t.Context().Done():
	case <-tm.C:
	}
}
