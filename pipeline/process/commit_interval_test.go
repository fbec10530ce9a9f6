package process_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
)

// countTask forwards every record to "out" and reports, at the end of each transaction,
// how many records that transaction carried.
type countTask struct {
	handled chan<- struct{}
	txns    chan<- int
	n       int
}

func (c *countTask) Handle(_ context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
	emit(&kgo.Record{Topic: "out", Key: rec.Key, Value: rec.Value})
	c.n++
	c.handled <- struct{}{}
	return nil
}

func (c *countTask) Stores() []process.Changelogged { return nil }

func (c *countTask) Done(committed bool) {
	if committed {
		c.txns <- c.n
	}
	c.n = 0
}

// TestCommitInterval: with a CommitInterval a transaction that has records stays open,
// taking what arrives meanwhile: ten records, then (once the stage has them) ten more,
// commit as one transaction of twenty (MaxRecords ends it, not the 5 s interval).
// Without the interval the first ten commit as soon as nothing more is buffered.
// startCountStage runs a stage of countTask over a new kfake cluster and returns a
// producer to its input, and the channels countTask reports on.
func startCountStage(t *testing.T, interval, linger time.Duration) (context.Context, *kgo.Client, <-chan struct{}, <-chan int) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(1, "in", "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	handled := make(chan struct{}, 100)
	txns := make(chan int, 10)
	s, err := process.NewStage(ctx, process.StageConfig{
		Name:           "interval",
		Inputs:         []string{"in"},
		InstanceID:     "i1",
		Kafka:          kafka.Config{Brokers: cluster.ListenAddrs()},
		NewTask:        func(process.TaskID) (process.Task, error) { return &countTask{handled: handled, txns: txns}, nil },
		Changelog:      func(in, store string) string { return in + "." + store },
		TxnTimeout:     30 * time.Second,
		MaxRecords:     20,
		CommitInterval: interval,
		CommitLinger:   linger,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("stage: %v", err)
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return ctx, cl, handled, txns
}

// produceHandled produces ten records from `from` and waits until the stage handled them.
func produceHandled(ctx context.Context, t *testing.T, cl *kgo.Client, handled <-chan struct{}, from int) {
	t.Helper()
	for i := from; i < from+10; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		select {
		case <-handled:
		case <-ctx.Done():
			t.Fatal("the stage did not handle the records")
		}
	}
}

// TestCommitInterval: with a CommitInterval a transaction that has records stays open,
// taking what arrives meanwhile: ten records, then (once the stage has them) ten more,
// commit as one transaction of twenty (MaxRecords ends it, not the 5 s interval).
// Without the interval the first ten commit as soon as nothing more is buffered.
func TestCommitInterval(t *testing.T) {
	ctx, cl, handled, txns := startCountStage(t, 5*time.Second, 5*time.Second)
	produceHandled(ctx, t, cl, handled, 0)
	select {
	case n := <-txns:
		t.Fatalf("a transaction of %d records committed before the interval or MaxRecords", n)
	default:
	}
	produceHandled(ctx, t, cl, handled, 10)
	select {
	case n := <-txns:
		if n != 20 {
			t.Fatalf("the first transaction carried %d records, want 20", n)
		}
	case <-ctx.Done():
		t.Fatal("no transaction committed")
	}
}

// TestCommitLinger: when nothing more arrives within CommitLinger the transaction
// commits, long before its CommitInterval is over: a quiet stream is not held back.
func TestCommitLinger(t *testing.T) {
	ctx, cl, handled, txns := startCountStage(t, time.Minute, 20*time.Millisecond)
	produceHandled(ctx, t, cl, handled, 0)
	select {
	case n := <-txns:
		if n != 10 {
			t.Fatalf("the first transaction carried %d records, want 10", n)
		}
	case <-time.After(30 * time.Second): // bounded; the linger is 20 ms
		t.Fatal("the transaction waited out its interval instead of the linger")
	}
}
