package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
)

// produceAll writes n records to each of the topic's partitions and returns how many.
func produceAll(t *testing.T, c *kfake.Cluster, topic string, partitions int32, n int) int {
	t.Helper()
	ctx := t.Context()
	cl, err := kgo.NewClient(append(kafka.Config{Brokers: c.ListenAddrs()}.Opts(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for p := range partitions {
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return int(partitions) * n
}

// TestReadCommittedEmptyFetchAnswers: a broker may answer a fetch of many partitions with
// no records for some of them although they have records at the position (a real Kafka
// broker did with 48 partitions, and ReadCommitted then ended early and silently,
// returning a third of the topic). Here every fetch response is full after one batch;
// ReadCommitted must still read everything.
func TestReadCommittedEmptyFetchAnswers(t *testing.T) {
	const topic, partitions, n = "t", 8, 50
	c := newCluster(t, kfake.SeedTopics(partitions, topic))
	want := produceAll(t, c, topic, partitions, n)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	got := 0
	// A response as small as one batch: the broker fills it from one partition and answers
	// the others with no records, as a real broker does when a response is full.
	kc := kafka.Config{Brokers: c.ListenAddrs(), Extra: []kgo.Opt{kgo.FetchMaxBytes(1)}}
	err := kafka.ReadCommitted(ctx, kc, topic, nil, func(r *kgo.Record) error {
		got++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("read %d records, want every committed one: %d", got, want)
	}
}
