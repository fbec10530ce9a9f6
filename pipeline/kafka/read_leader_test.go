package kafka_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/pipeline/kafka"
)

// TestReadWhileLeaderElected: while a partition has no leader (its broker killed, the
// election not over) ListOffsets answers NOT_LEADER_OR_FOLLOWER / LEADER_NOT_AVAILABLE.
// PartitionBounds and ReadCommittedFrom (a stage's state restore) retry until the new
// leader answers instead of failing: the failure stopped the processor's clean stage for
// good in the fault suite's leader kill. Here the broker answers the first three
// ListOffsets requests with those errors.
func TestReadWhileLeaderElected(t *testing.T) {
	const topic = "cl"
	c := newCluster(t, kfake.SeedTopics(1, topic))
	want := produceAll(t, c, topic, 1, 20)

	var failures atomic.Int32
	c.ControlKey(kmsg.ListOffsets.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		n := failures.Add(1)
		if n > 3 {
			return nil, nil, false
		}
		code := kerr.NotLeaderForPartition.Code
		if n == 2 {
			code = kerr.LeaderNotAvailable.Code
		}
		r := req.(*kmsg.ListOffsetsRequest)
		resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	kc := kafka.Config{Brokers: c.ListenAddrs()}
	start, end, err := kafka.PartitionBounds(ctx, kc, topic, 0)
	if err != nil {
		t.Fatalf("PartitionBounds while the leader was elected: %v", err)
	}
	if start != 0 || end != int64(want) {
		t.Fatalf("bounds [%d, %d), want [0, %d)", start, end, want)
	}
	failures.Store(0) // the same for the read's own end offsets
	got := 0
	if err := kafka.ReadCommittedFrom(ctx, kc, topic, 0, 0, func(*kgo.Record) error { got++; return nil }); err != nil {
		t.Fatalf("ReadCommittedFrom while the leader was elected: %v", err)
	}
	if got != want {
		t.Fatalf("read %d records, want %d", got, want)
	}
}
