package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/wire"
)

var _ interface {
	Produce(ctx context.Context, recs ...*kgo.Record) error
} = (*kafka.TxnProducer)(nil)

// newTxnProducer returns a TxnProducer with one client on c that places records by
// their Partition field, closed when the test ends.
func newTxnProducer(t *testing.T, c *kfake.Cluster, o kafka.TxnProducerOptions) *kafka.TxnProducer {
	t.Helper()
	if o.TransactionalID == "" {
		o.TransactionalID = wire.TransactionalID("ingest", "test")
	}
	if o.Clients == 0 {
		o.Clients = 1
	}
	p, err := kafka.NewTxnProducer(kafka.Config{
		Brokers: c.ListenAddrs(), MetadataMinAge: 50 * time.Millisecond,
		Extra: []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())},
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// readValues returns the values of topic's records up to and including the first whose
// value is last, read with the given isolation level.
func readValues(t *testing.T, c *kfake.Cluster, topic string, committed bool, last string) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(append(kafka.Config{Brokers: c.ListenAddrs()}.Opts(),
		kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(iso), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var out []string
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: %q not seen (got %q): %v", topic, last, out, err)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, string(r.Value))
			done = done || string(r.Value) == last
		})
		if done {
			return out
		}
	}
}

func rec(partition int32, v string) *kgo.Record {
	return &kgo.Record{Topic: "events", Partition: partition, Value: []byte(v)}
}

func produce(t *testing.T, p *kafka.TxnProducer, recs ...*kgo.Record) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	return p.Produce(ctx, recs...)
}

func TestTxnProduceCommitted(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(2, "events"))
	p := newTxnProducer(t, c, kafka.TxnProducerOptions{})
	if err := produce(t, p, rec(0, "a"), rec(1, "b")); err != nil {
		t.Fatalf("Produce = %v, want nil", err)
	}
	if err := produce(t, p, rec(0, "c")); err != nil {
		t.Fatalf("Produce = %v, want nil", err)
	}
	got := readValues(t, c, "events", true, "c")
	if len(got) != 3 {
		t.Fatalf("read_committed read %q, want a, b, c", got)
	}
}

// A call whose records were partly written (partition 0 took its record, partition 1
// refused the other) fails, and nothing of it is visible to a read_committed reader,
// though the log holds the written half.
func TestTxnProduceAbortedInvisible(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(2, "events"))
	p := newTxnProducer(t, c, kafka.TxnProducerOptions{})
	f := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "events", Partitions: []int32{1},
		Err: kerr.InvalidRecord, Count: -1})

	err := produce(t, p, rec(0, "half"), rec(1, "refused"))
	if err == nil {
		t.Fatal("Produce with a refused record = nil, want an error")
	}
	if !kafka.Permanent(err) || !errors.Is(err, kerr.InvalidRecord) {
		t.Errorf("Produce = %v, want the permanent INVALID_RECORD", err)
	}
	f.Remove()
	if err := produce(t, p, rec(0, "after"), rec(1, "after1")); err != nil {
		t.Fatalf("Produce after the fault = %v, want nil", err)
	}
	if got := readValues(t, c, "events", false, "after"); !contains(got, "half") {
		t.Fatalf("read_uncommitted read %q: the half write never reached the log, the test proves nothing", got)
	}
	for _, v := range readValues(t, c, "events", true, "after") {
		if v == "half" || v == "refused" {
			t.Errorf("read_committed sees %q of the failed call", v)
		}
	}
}

// Calls that share a transaction share its fate: when one call's record is refused, the
// other call gets ErrAborted (retryable) and neither is visible.
func TestTxnProduceGroupAborted(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(2, "events"))
	p := newTxnProducer(t, c, kafka.TxnProducerOptions{})
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	c.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case held <- struct{}{}:
			c.SleepControl(func() { <-release })
		default:
		}
		return nil, nil, false
	})
	first := make(chan error, 1)
	go func() { first <- produce(t, p, rec(0, "first")) }()
	<-held // the first transaction is committing: the next calls wait together
	f := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "events", Partitions: []int32{1},
		Err: kerr.InvalidRecord, Count: -1})
	errA, errB := make(chan error, 1), make(chan error, 1)
	go func() { errA <- produce(t, p, rec(1, "bad")) }()
	go func() { errB <- produce(t, p, rec(0, "innocent")) }()
	for deadline := time.Now().Add(2 * time.Second); p.Pending() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the two calls never queued")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first = %v, want nil", err)
	}
	if err := <-errA; !kafka.Permanent(err) {
		t.Errorf("the call with the refused record = %v, want a permanent error", err)
	}
	if err := <-errB; !errors.Is(err, kafka.ErrAborted) || kafka.Permanent(err) {
		t.Errorf("the other call of the transaction = %v, want ErrAborted", err)
	}
	f.Remove()
	if err := produce(t, p, rec(0, "after")); err != nil {
		t.Fatalf("Produce after the fault = %v, want nil", err)
	}
	got := readValues(t, c, "events", true, "after")
	for _, v := range got {
		if v == "bad" || v == "innocent" {
			t.Errorf("read_committed sees %q of the aborted transaction (read %q)", v, got)
		}
	}
}

// A commit the broker refuses (INVALID_TXN_STATE) is known not to have happened: the
// call gets ErrAborted and its record is never visible; the producer recovers.
func TestTxnProduceCommitRefused(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	p := newTxnProducer(t, c, kafka.TxnProducerOptions{})
	f := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.InvalidTxnState})
	if err := produce(t, p, rec(0, "refused")); !errors.Is(err, kafka.ErrAborted) {
		t.Fatalf("Produce with the commit refused = %v, want ErrAborted", err)
	}
	if f.Hits() == 0 {
		t.Fatal("the commit never reached the broker")
	}
	if err := produce(t, p, rec(0, "after")); err != nil {
		t.Fatalf("Produce after = %v, want nil", err)
	}
	if got := readValues(t, c, "events", true, "after"); contains(got, "refused") {
		t.Errorf("read_committed sees the refused transaction's record (read %q)", got)
	}
}

// A commit sent but not answered within CommitGrace past the deadline has an unknown
// outcome, and says so (ErrOutcomeUnknown), in bounded time.
func TestTxnProduceCommitUnanswered(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	const grace = 300 * time.Millisecond
	p := newTxnProducer(t, c, kafka.TxnProducerOptions{CommitGrace: grace})
	release := make(chan struct{})
	var once bool
	unblock := func() {
		if !once {
			once = true
			close(release)
		}
	}
	t.Cleanup(unblock)
	// The producer id is initialised, so the short deadline below only has to cover
	// one produce.
	if err := produce(t, p, rec(0, "warm")); err != nil {
		t.Fatal(err)
	}
	c.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Produce(ctx, rec(0, "unknown"))
	if !errors.Is(err, kafka.ErrOutcomeUnknown) {
		t.Fatalf("Produce with the commit unanswered = %v, want ErrOutcomeUnknown", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond+grace+time.Second {
		t.Errorf("the unknown outcome took %s to report", d)
	}
	unblock()
	if err := produce(t, p, rec(0, "after")); err != nil {
		t.Fatalf("Produce after = %v, want nil", err)
	}
}

// A call larger than the whole buffer fails with ErrTooLarge, one that does not fit
// beside the calls in flight with ErrBufferFull; neither writes anything.
func TestTxnProduceBufferBounds(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	p := newTxnProducer(t, c, kafka.TxnProducerOptions{MaxBufferedBytes: 100})
	if err := produce(t, p, rec(0, string(make([]byte, 101)))); !errors.Is(err, kafka.ErrTooLarge) {
		t.Fatalf("Produce of 101 bytes into a 100-byte buffer = %v, want ErrTooLarge", err)
	}
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	c.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case held <- struct{}{}:
		default:
		}
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	first := make(chan error, 1)
	go func() { first <- produce(t, p, rec(0, string(make([]byte, 60)))) }()
	<-held
	if err := produce(t, p, rec(0, string(make([]byte, 60)))); !errors.Is(err, kafka.ErrBufferFull) {
		t.Errorf("Produce beside a 60-byte call in a 100-byte buffer = %v, want ErrBufferFull", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first = %v", err)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Close returns once the committers have finished, without waiting for its deadline.
func TestTxnProducerCloseReturns(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	p, err := kafka.NewTxnProducer(kafka.Config{Brokers: c.ListenAddrs()},
		kafka.TxnProducerOptions{TransactionalID: wire.TransactionalID("ingest", "close")})
	if err != nil {
		t.Fatal(err)
	}
	if err := produce(t, p, rec(0, "a")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close = %v, want nil well before its deadline", err)
	}
	if err := produce(t, p, rec(0, "b")); !errors.Is(err, kafka.ErrClosed) {
		t.Errorf("Produce after Close = %v, want ErrClosed", err)
	}
}
