package e2e

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/config"
)

// The processor dies with a transaction open — outputs and offsets written, commit never
// reaching the broker — and a new instance with the same id takes over: nothing is lost
// and nothing is duplicated in .clean, and the dedup state survives the crash (a duplicate
// posted after the restart of an event processed before it is still dropped).
//
// It runs with the state on disk (pebble, the default) and in memory.
func TestProcessorCrashMidTransaction(t *testing.T) {
	for _, backend := range []string{config.StateBackendPebble, config.StateBackendMemory} {
		t.Run(backend, func(t *testing.T) { processorCrashMidTransaction(t, backend) })
	}
}

func processorCrashMidTransaction(t *testing.T, backend string) {
	p := harness.Start(t, harness.WithoutProcessor(), harness.WithCleanOnly(),
		harness.WithService(func(s *config.Service) { s.State.Backend = backend }))
	c := p.FaultCluster()
	const txnID = "sluice.clean.crashy"
	var (
		commits  atomic.Int32
		disabled atomic.Bool
		once     sync.Once
		crashed  = make(chan struct{})
	)
	// Let a few transactions commit, then swallow the commit of the next one: the broker
	// never hears it, the connection drops, and every retry is swallowed too, until the
	// instance is dead.
	c.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.EndTxnRequest)
		if disabled.Load() || r.TransactionalID != txnID {
			return nil, nil, false
		}
		select {
		case <-crashed: // swallow the aborts that follow too: the process is "dead"
		default:
			if !r.Commit || commits.Add(1) <= 3 {
				return nil, nil, false
			}
			once.Do(func() { close(crashed) })
		}
		return nil, errors.New("crash before commit"), true
	})

	proc := p.StartProcessorID("crashy")
	var want []string
	var early map[string]any
	for i := range 40 {
		evs := events(t, "purchases", uint64(100+i), 25)
		if i == 0 {
			early = evs[0]
		}
		a := post202(t, p, "purchases", "application/json", mustJSON(t, evs))
		want = append(want, a.EventIDs...)
		if i == 0 {
			// Once the processor has its partitions (restored, on disk or in memory),
			// the posts that follow spread over several transactions.
			settle(t, p)
		}
		select {
		case <-crashed:
		default:
			continue
		}
		break
	}
	select {
	case <-crashed:
	case <-time.After(30 * time.Second):
		t.Fatal("the processor never reached a fourth commit")
	}
	proc.Kill()
	disabled.Store(true)

	// More traffic while no processor runs, including a duplicate of an early event.
	for i := range 5 {
		a := post202(t, p, "purchases", "application/json", mustJSON(t, events(t, "purchases", uint64(500+i), 20)))
		want = append(want, a.EventIDs...)
	}
	post202(t, p, "purchases", "application/json", mustJSON(t, early))

	p.StartProcessorID("crashy")
	settle(t, p)
	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), want)
	if got := p.Metric("sluice_clean_duplicates_total", "topic", "purchases"); got < 1 {
		t.Errorf("the duplicate posted after the crash was not dropped (duplicates %v)", got)
	}
}

// A second instance joins mid-stream (a rebalance moves partitions and their dedup state)
// and the first leaves gracefully: still exactly once.
//
// It runs with the state on disk (pebble, the default backend): the dedup state moves
// with its partitions through each directory's checkpoint and the changelog. In about
// one run in six on kfake (either backend) the second instance's Stop waits about 70 s:
// its retry-stage group member leaves during a cooperative rebalance and a group request
// times out ("group manage loop errored ... i/o timeout", then "leaving group as a static
// member"); the results are exact all the same. TestProcessorCrashMidTransaction keeps
// a memory-backend run.
func TestScaleOutAndInExactlyOnce(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly())
	var want []string
	post := func(seed uint64) {
		a := post202(t, p, "clicks", "application/json", mustJSON(t, events(t, "clicks", seed, 30)))
		want = append(want, a.EventIDs...)
	}
	for i := range 5 {
		post(uint64(i))
	}
	second := p.StartProcessor()
	for i := range 5 {
		post(uint64(10 + i))
	}
	settle(t, p)
	if err := second.Stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	for i := range 5 {
		post(uint64(20 + i))
	}
	// Re-post an early batch: every id is a duplicate now, wherever its state lives.
	post202(t, p, "clicks", "application/json", mustJSON(t, events(t, "clicks", 0, 30)))
	settle(t, p)
	exactlyOnce(t, idsOf(t, p.ReadAll("clicks.clean")), want)
}
