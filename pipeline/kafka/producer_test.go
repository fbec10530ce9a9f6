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
)

// Compile-time check that the producer fits the interface ingest declares.
var _ interface {
	Produce(ctx context.Context, recs ...*kgo.Record) error
} = (*kafka.Producer)(nil)

// newProducer returns a Producer on c, closed when the test ends.
func newProducer(t *testing.T, c *kfake.Cluster, o kafka.ProducerOptions) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(kafka.Config{Brokers: c.ListenAddrs(), MetadataMinAge: 50 * time.Millisecond}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func TestProduceAcknowledged(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	p := newProducer(t, c, kafka.ProducerOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()

	if err := p.Produce(ctx); err != nil {
		t.Fatalf("Produce of no records = %v, want nil", err)
	}
	recs := []*kgo.Record{
		{Topic: "events", Key: []byte("a"), Value: []byte("1")},
		{Topic: "events", Key: []byte("b"), Value: []byte("2")},
		{Topic: "events", Key: []byte("c"), Value: []byte("3")},
	}
	if err := p.Produce(ctx, recs...); err != nil {
		t.Fatalf("Produce = %v, want nil", err)
	}
	// Acknowledged: the broker assigned offsets, and the log holds the records.
	for i, r := range recs {
		if r.Offset != int64(i) {
			t.Errorf("record %d offset = %d, want %d", i, r.Offset, i)
		}
	}
	ends, err := newAdmin(t, c).ListEndOffsets(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("events", 0); o.Offset != 3 {
		t.Errorf("end offset = %d, want 3", o.Offset)
	}
}

// With the broker holding every produce request, a call that finds the buffer full
// fails at once with ErrBufferFull; the call whose record fills it succeeds when the
// broker answers.
func TestProduceBufferFull(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case held <- struct{}{}:
		default:
		}
		c.SleepControl(func() { <-release })
		return nil, nil, false // then handle it normally
	})
	var once bool
	unblock := func() {
		if !once {
			once = true
			close(release)
		}
	}
	t.Cleanup(unblock) // before the cluster closes (cleanups run last first)
	p := newProducer(t, c, kafka.ProducerOptions{MaxBufferedRecords: 1})

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	first := make(chan error, 1)
	go func() { first <- p.Produce(ctx, &kgo.Record{Topic: "events", Value: []byte("fills the buffer")}) }()
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the first record never reached the broker")
	}

	start := time.Now()
	err := p.Produce(ctx, &kgo.Record{Topic: "events", Value: []byte("finds it full")})
	if !errors.Is(err, kafka.ErrBufferFull) {
		t.Fatalf("Produce with a full buffer = %v, want ErrBufferFull", err)
	}
	if !errors.Is(err, kgo.ErrMaxBuffered) {
		t.Errorf("error %v does not wrap kgo.ErrMaxBuffered", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a full buffer took %s to fail, want it at once", d)
	}

	unblock()
	if err := <-first; err != nil {
		t.Fatalf("first Produce = %v, want nil once the broker answers", err)
	}
}

// A broker that refuses every write (NOT_ENOUGH_REPLICAS, retried by the client) never
// hangs a caller past its deadline.
func TestProduceDeadlineWhileBrokerFails(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	p := newProducer(t, c, kafka.ProducerOptions{})
	f := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})

	const deadline = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	start := time.Now()
	err := p.Produce(ctx, &kgo.Record{Topic: "events", Value: []byte("v")})
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Produce = %v, want context.DeadlineExceeded", err)
	}
	if took > deadline+500*time.Millisecond {
		t.Errorf("Produce returned after %s, want about %s", took, deadline)
	}
	if f.Hits() == 0 {
		t.Error("the fault never answered a produce: the broker was not reached")
	}

	// Once the broker recovers and the abandoned record is settled, writes succeed.
	f.Remove()
	ctx2, cancel2 := context.WithTimeout(t.Context(), 8*time.Second)
	defer cancel2()
	if err := p.Client().Flush(ctx2); err != nil {
		t.Fatal(err)
	}
	if err := p.Produce(ctx2, &kgo.Record{Topic: "events", Value: []byte("after")}); err != nil {
		t.Fatalf("Produce after the broker recovered = %v, want nil", err)
	}
}

// bufferedHook reports each record the client buffers.
type bufferedHook chan string

func (h bufferedHook) OnProduceRecordBuffered(r *kgo.Record) { h <- string(r.Value) }

var _ kgo.HookProduceRecordBuffered = bufferedHook(nil)

// One caller's deadline must not fail another caller's records: B, well within its own
// deadline, must succeed once the broker recovers even though A gave up meanwhile.
//
// This fails today: Produce hands the caller's ctx to kgo, kgo cancels a whole batch by
// its first record's ctx, and B's record sits in A's batch. At the batch's next retry,
// about 5 s later and with the broker healthy again, B gets A's "context deadline
// exceeded" with 3 s of its own deadline left. (The linger only makes deterministic the
// batching that load causes anyway.)
func TestProduceNotFailedByAnotherCallersDeadline(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	buffered := make(bufferedHook, 2)
	p, err := kafka.NewProducer(kafka.Config{
		Brokers: c.ListenAddrs(),
		Extra:   []kgo.Opt{kgo.ProducerLinger(200 * time.Millisecond), kgo.WithHooks(buffered)},
	}, kafka.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(canceled()) })
	f := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})

	ctxA, cancelA := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancelA()
	errA := make(chan error, 1)
	go func() { errA <- p.Produce(ctxA, &kgo.Record{Topic: "events", Value: []byte("A")}) }()
	if v := <-buffered; v != "A" {
		t.Fatalf("buffered %q first, want A", v)
	}
	ctxB, cancelB := context.WithTimeout(t.Context(), 8*time.Second)
	defer cancelB()
	errB := make(chan error, 1)
	go func() { errB <- p.Produce(ctxB, &kgo.Record{Topic: "events", Value: []byte("B")}) }()
	<-buffered

	if err := <-errA; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("A = %v, want its deadline exceeded", err)
	}
	f.Remove()
	if err := <-errB; err != nil {
		t.Fatalf("B (deadline in %s) = %v, want nil once the broker recovered", time.Until(deadlineOf(ctxB)).Round(time.Second), err)
	}
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// canceled is a done context: Close without waiting for a flush.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// Records carry their event time as the Kafka timestamp; an event from a day ago must be
// produced like any other (kgo's RecordDeliveryTimeout would fail it at once, since it
// measures from the record timestamp: regression).
func TestProduceOldEventTime(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "events"))
	p := newProducer(t, c, kafka.ProducerOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	old := time.Now().Add(-24 * time.Hour)
	if err := p.Produce(ctx, &kgo.Record{Topic: "events", Value: []byte("x"), Timestamp: old}); err != nil {
		t.Fatalf("Produce of a day-old event = %v, want nil", err)
	}
}
