package e2e

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/harness"
)

// The failpoint between the Kafka commit and the local apply, on the whole clean stage
// with its state on pebble: the broker commits the fourth transaction of the clean stage,
// but the processor is cut off as the commit arrives, so it never learns of it and its
// dedup store on disk never gets that transaction's writes (its checkpoint stays at the
// third). Restarted under its id on its directory, the stage restores the changelog
// after that checkpoint (a tail restore); then every event posted before the crash is
// posted again and each must be dropped as a duplicate: .clean holds every event exactly
// once. Fails if the tail restore missed the committed-but-unapplied transaction.
func TestCommittedButNotAppliedLocally(t *testing.T) {
	p := harness.Start(t, harness.WithoutProcessor(), harness.WithCleanOnly())
	c := p.FaultCluster()
	const txnID = "sluice.clean.failpoint"
	var (
		commits atomic.Int32
		once    sync.Once
		cut     = make(chan struct{})
		proc    *harness.Processor
		procMu  sync.Mutex
	)
	c.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.EndTxnRequest)
		if r.TransactionalID != txnID || !r.Commit || commits.Add(1) != 4 {
			return nil, nil, false
		}
		once.Do(func() {
			procMu.Lock()
			proc.Sever() // the answer to this commit never reaches the processor
			procMu.Unlock()
			close(cut)
		})
		return nil, nil, false // the broker commits all the same
	})

	procMu.Lock()
	proc = p.StartProcessorID("failpoint")
	procMu.Unlock()
	var want []string
	var bodies [][]byte
	for i := range 40 {
		body := mustJSON(t, events(t, "purchases", uint64(900+i), 25))
		bodies = append(bodies, body)
		want = append(want, post202(t, p, "purchases", "application/json", body).EventIDs...)
		if i == 0 {
			settle(t, p) // the processor has its partitions: the posts spread over transactions
		}
		select {
		case <-cut:
		default:
			continue
		}
		break
	}
	select {
	case <-cut:
	case <-time.After(30 * time.Second):
		t.Fatalf("the clean stage never reached a fourth commit (%d)", commits.Load())
	}
	_ = proc.Wait()

	p.StartProcessorID("failpoint")
	for _, b := range bodies {
		post202(t, p, "purchases", "application/json", b) // every one a duplicate now
	}
	settle(t, p)
	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), want)
	if got := p.Metric("sluice_state_restores_total", "stage", "clean", "mode", "tail"); got < 1 {
		t.Errorf("the restarted stage made %v tail restores, want its stores restored from their checkpoints", got)
	}
}
