package e2e

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/harness"
)

// The broker refuses the writes to the dead-letter topic: the transaction carrying the
// dead letter aborts, so the input offset is not committed; once the broker accepts
// them again the record is dead-lettered exactly once, and every other record of the
// batch is in .clean exactly once.
func TestDeadLetterProduceFailureNotCommitted(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly())
	c := p.FaultCluster()
	details, err := p.Admin().ListTopics(t.Context(), "purchases.dlq")
	if err != nil {
		t.Fatal(err)
	}
	dlqID := details["purchases.dlq"].ID
	var failing atomic.Bool
	var refused atomic.Int32
	failing.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		hit := false
		for _, tp := range r.Topics {
			hit = hit || tp.Topic == "purchases.dlq" || tp.TopicID == dlqID
		}
		if !failing.Load() || !hit {
			return nil, nil, false
		}
		refused.Add(1)
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, tp := range r.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = tp.Topic, tp.TopicID
			for _, pp := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = pp.Partition
				rp.ErrorCode = kerr.InvalidRecord.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})

	evs := events(t, "purchases", 71, 6)
	evs[2]["amount"] = -1.0 // breaks the rule: dead letter
	p.Produce(rawRecords(t, p, "purchases", 2, evs)...)
	waitFor(t, "three refused dead-letter writes", func() bool { return refused.Load() >= 3 })
	if lag := p.Lag("sluice.clean", "purchases"); lag == 0 {
		t.Fatal("the input offsets were committed while the dead letter could not be written")
	}
	if n := len(p.ReadAll("purchases.dlq")); n != 0 {
		t.Fatalf("%d dead letters visible while their writes were refused", n)
	}
	failing.Store(false)
	p.WaitCaughtUp("sluice.clean", 30*time.Second, "purchases")

	dl := p.ReadAll("purchases.dlq")
	if len(dl) != 1 || dl[0].Value["event_id"] != evs[2]["event_id"] {
		t.Fatalf("dlq has %d records, want the one rule breaker", len(dl))
	}
	want := idList(evs)
	want = append(want[:2], want[3:]...)
	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), want)
	if p.Metric("sluice_stage_transactions_total", "stage", "clean", "result", "abort") == 0 {
		t.Error("no aborted transaction counted")
	}
}
