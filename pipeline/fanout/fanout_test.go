package fanout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/fanout"
	"github.com/sluicehq/sluice/pipeline/kafka"
)

// wait bounds every wait on the broker.
const wait = 5 * time.Second

// env is a kfake cluster with topic "t" (one partition), a producer and a hub that
// decodes JSON values.
type env struct {
	cluster *kfake.Cluster
	cfg     kafka.Config
	prod    *kgo.Client
	hub     *fanout.Hub
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(1, "t", "u"))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	cfg := kafka.Config{Brokers: c.ListenAddrs(), MetadataMinAge: 50 * time.Millisecond}
	prod, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	hub := fanout.New(cfg, decodeJSON)
	t.Cleanup(hub.Close)
	return &env{cluster: c, cfg: cfg, prod: prod, hub: hub}
}

func decodeJSON(_ context.Context, r *kgo.Record) (any, error) {
	var v map[string]any
	if err := json.Unmarshal(r.Value, &v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	return v, nil
}

// produce writes records to topic with values {"n": i} for i in [from, to).
func (e *env) produce(t *testing.T, topic string, from, to int) {
	t.Helper()
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i)),
			Value:   []byte(fmt.Sprintf(`{"n":%d}`, i)),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}})
	}
	if err := e.prod.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func (e *env) subscribe(t *testing.T, topic string, lim fanout.Limits) (<-chan fanout.Message, func()) {
	t.Helper()
	ch, stop, err := e.hub.Subscribe(t.Context(), topic, lim)
	if err != nil {
		t.Fatalf("Subscribe(%s): %v", topic, err)
	}
	t.Cleanup(stop)
	return ch, stop
}

// next receives one message, failing the test after wait.
func next(t *testing.T, ch <-chan fanout.Message) (fanout.Message, bool) {
	t.Helper()
	select {
	case m, ok := <-ch:
		return m, ok
	case <-time.After(wait):
		t.Fatal("no message within", wait)
		return fanout.Message{}, false
	}
}

// expectN receives records numbered from..to-1, in order.
func expectN(t *testing.T, ch <-chan fanout.Message, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		m, ok := next(t, ch)
		if !ok || m.Err != nil {
			t.Fatalf("record %d: channel closed or ended: %v", i, m.Err)
		}
		if got := number(t, m); got != i {
			t.Fatalf("record %d: got n=%d", i, got)
		}
	}
}

func number(t *testing.T, m fanout.Message) int {
	t.Helper()
	v, ok := m.Value.(map[string]any)
	if !ok {
		t.Fatalf("value %T %v (decode error %v)", m.Value, m.Value, m.DecodeErr)
	}
	return int(v["n"].(float64))
}

func TestFanoutHubFanout(t *testing.T) {
	e := newEnv(t)
	e.produce(t, "t", 0, 3) // before anyone subscribed: not live, never delivered
	a, _ := e.subscribe(t, "t", fanout.Limits{})
	b, _ := e.subscribe(t, "t", fanout.Limits{})
	if n := e.hub.Consumers(); n != 1 {
		t.Fatalf("Consumers() = %d with two subscribers of one topic, want 1", n)
	}
	e.produce(t, "t", 3, 8)
	for name, ch := range map[string]<-chan fanout.Message{"a": a, "b": b} {
		t.Run(name, func(t *testing.T) { expectN(t, ch, 3, 8) })
	}

	e.produce(t, "t", 8, 9)
	m, _ := next(t, a)
	if m.Topic != "t" || m.Partition != 0 || m.Offset != 8 || string(m.Key) != "k8" || m.Headers["h"] != "v" ||
		m.Timestamp.IsZero() {
		t.Errorf("message = %+v", m)
	}
}

// recordSize is what one record of env.produce counts in Limits.Bytes (keys and values
// of up to three digits): 256 overhead, key, value and header.
const recordSize = 256 + 4 + 9 + 2

func TestFanoutHubDropsSlowSubscriber(t *testing.T) {
	e := newEnv(t)
	slow, _ := e.subscribe(t, "t", fanout.Limits{Bytes: 4 * recordSize})
	fast, _ := e.subscribe(t, "t", fanout.Limits{})
	e.produce(t, "t", 0, 10)
	expectN(t, fast, 0, 10)

	// The slow subscriber's unread records outgrew its bytes: it learns at once why it
	// was dropped, the records it had not received are discarded.
	m, ok := next(t, slow)
	if !ok || !errors.Is(m.Err, fanout.ErrSlowSubscriber) {
		t.Fatalf("after the buffer: %+v (open %v), want Err = ErrSlowSubscriber", m, ok)
	}
	if _, ok := next(t, slow); ok {
		t.Fatal("slow channel still open after its closing message")
	}

	e.produce(t, "t", 10, 15)
	expectN(t, fast, 10, 15)
}

// TestFanoutHubHealthyReaderSurvivesBurst is issue 15 defect 8: one ingest request of
// 10,000 events reached the hub at once and dropped a reader that was keeping up,
// because its buffer counted 256 records. Within the default limits (bytes and lag) a
// reader that reads at full speed receives every record.
func TestFanoutHubHealthyReaderSurvivesBurst(t *testing.T) {
	e := newEnv(t)
	ch, _ := e.subscribe(t, "t", fanout.Limits{})
	const burst = 10_000
	e.produce(t, "t", 0, burst)
	for i := range burst {
		m, ok := next(t, ch)
		if !ok || m.Err != nil {
			t.Fatalf("record %d of a %d burst: subscription ended: %v", i, burst, m.Err)
		}
		if got := number(t, m); got != i {
			t.Fatalf("record %d: got n=%d", i, got)
		}
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// TestFanoutHubDropsLaggingSubscriber is issue 15 defect 8's other half: a reader is
// dropped only once a record has waited for it longer than Limits.Lag, timed by the
// hub's clock, here a fake one.
func TestFanoutHubDropsLaggingSubscriber(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	hub := fanout.New(e.cfg, decodeJSON, fanout.WithClock(clock.Now))
	t.Cleanup(hub.Close)
	subscribe := func(lim fanout.Limits) <-chan fanout.Message {
		ch, stop, err := hub.Subscribe(t.Context(), "t", lim)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		return ch
	}
	const lag = 10 * time.Second
	stalled := subscribe(fanout.Limits{Lag: lag})
	reader := subscribe(fanout.Limits{}) // tells when the hub has delivered a record

	e.produce(t, "t", 0, 1) // waits for stalled from t0
	expectN(t, reader, 0, 1)
	clock.Set(t0.Add(lag)) // record 0 has waited exactly lag: still fine
	e.produce(t, "t", 1, 2)
	expectN(t, reader, 1, 2)
	expectN(t, stalled, 0, 1) // not dropped; record 1 now waits, since t0+lag

	clock.Set(t0.Add(2*lag + time.Millisecond)) // record 1 has waited lag+1ms
	e.produce(t, "t", 2, 3)
	expectN(t, reader, 2, 3)
	m, ok := next(t, stalled)
	if !ok || !errors.Is(m.Err, fanout.ErrSlowSubscriber) {
		t.Fatalf("after waiting longer than %s: %+v (open %v), want Err = ErrSlowSubscriber", lag, m, ok)
	}
	if _, ok := next(t, stalled); ok {
		t.Fatal("stalled channel still open after its closing message")
	}
}

func TestFanoutHubBoundedMemory(t *testing.T) {
	e := newEnv(t)
	ch, _ := e.subscribe(t, "t", fanout.Limits{Bytes: 8 * recordSize})
	e.produce(t, "t", 0, 1000)
	// Read only once the hub gave up on the subscriber: its consumer stops when the
	// only subscriber is dropped.
	if n := waitConsumers(t, e.hub, 0); n != 0 {
		t.Fatalf("Consumers() = %d: the subscriber that never read was not dropped", n)
	}
	m, ok := next(t, ch)
	if !ok || !errors.Is(m.Err, fanout.ErrSlowSubscriber) {
		t.Fatalf("first message %+v (open %v), want Err = ErrSlowSubscriber: the unread records are released", m, ok)
	}
}

// waitConsumers polls Consumers until it is want or wait passed (the consumer of a
// topic whose subscribers were all dropped stops by itself, asynchronously).
func waitConsumers(t *testing.T, h *fanout.Hub, want int) int {
	t.Helper()
	deadline := time.Now().Add(wait)
	for h.Consumers() != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return h.Consumers()
}

func TestFanoutHubStopsWithLastSubscriber(t *testing.T) {
	e := newEnv(t)
	a, stopA := e.subscribe(t, "t", fanout.Limits{})
	_, stopB := e.subscribe(t, "t", fanout.Limits{})
	_, stopU := e.subscribe(t, "u", fanout.Limits{})
	steps := []struct {
		name string
		stop func()
		want int
	}{
		{"one of two subscribers leaves", stopA, 2},
		{"the same one again (idempotent)", stopA, 2},
		{"the last subscriber of t leaves", stopB, 1},
		{"the last subscriber of u leaves", stopU, 0},
	}
	for _, s := range steps {
		s.stop()
		if got := e.hub.Consumers(); got != s.want {
			t.Fatalf("%s: Consumers() = %d, want %d", s.name, got, s.want)
		}
	}
	if _, ok := <-a; ok {
		t.Fatal("channel of a stopped subscription is still open")
	}

	// A new subscriber starts a new consumer, at the new end.
	e.produce(t, "t", 0, 2)
	c, _ := e.subscribe(t, "t", fanout.Limits{})
	e.produce(t, "t", 2, 4)
	expectN(t, c, 2, 4)
}

func TestFanoutHubSubscriptionEndsWithContext(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	ch, _, err := e.hub.Subscribe(ctx, "t", fanout.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, ok := next(t, ch); ok {
		t.Fatal("channel open after its context was cancelled")
	}
	if n := waitConsumers(t, e.hub, 0); n != 0 {
		t.Fatalf("Consumers() = %d, want 0", n)
	}
}

func TestFanoutHubSubscribeErrors(t *testing.T) {
	e := newEnv(t)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		topic string
		lim   fanout.Limits
		want  error
	}{
		{"unknown topic", t.Context(), "nope", fanout.Limits{}, fanout.ErrUnknownTopic},
		{"negative bytes", t.Context(), "t", fanout.Limits{Bytes: -1}, nil},
		{"negative lag", t.Context(), "t", fanout.Limits{Lag: -time.Second}, nil},
		{"cancelled context", cancelled, "t", fanout.Limits{}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := e.hub.Subscribe(tt.ctx, tt.topic, tt.lim)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if n := waitConsumers(t, e.hub, 0); n != 0 {
		t.Fatalf("Consumers() = %d after failed subscriptions, want 0", n)
	}
}

func TestFanoutHubClose(t *testing.T) {
	e := newEnv(t)
	ch, _ := e.subscribe(t, "t", fanout.Limits{})
	e.hub.Close()
	m, ok := next(t, ch)
	if !ok || !errors.Is(m.Err, fanout.ErrClosed) {
		t.Fatalf("after Close: %+v (open %v), want Err = ErrClosed", m, ok)
	}
	if _, _, err := e.hub.Subscribe(t.Context(), "t", fanout.Limits{}); !errors.Is(err, fanout.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v, want ErrClosed", err)
	}
	if n := e.hub.Consumers(); n != 0 {
		t.Fatalf("Consumers() = %d after Close, want 0", n)
	}
}

func TestFanoutHubDecodeError(t *testing.T) {
	e := newEnv(t)
	ch, _ := e.subscribe(t, "t", fanout.Limits{})
	if err := e.prod.ProduceSync(t.Context(), &kgo.Record{Topic: "t", Value: []byte("not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	m, _ := next(t, ch)
	if m.DecodeErr == nil || m.Value != nil || string(m.Raw) != "not json" {
		t.Fatalf("message = %+v, want DecodeErr with Raw", m)
	}
}

func TestFanoutHubReadCommitted(t *testing.T) {
	e := newEnv(t)
	ch, _ := e.subscribe(t, "t", fanout.Limits{})
	tx, err := kgo.NewClient(append(e.cfg.Opts(), kgo.TransactionalID("fanout-test"))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tx.Close)
	ctx := t.Context()
	for i, commit := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort, kgo.TryCommit} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		r := &kgo.Record{Topic: "t", Value: []byte(fmt.Sprintf(`{"n":%d}`, i))}
		if err := tx.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := tx.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int{0, 2} { // 1 was aborted
		m, _ := next(t, ch)
		if got := number(t, m); got != want {
			t.Fatalf("got n=%d, want %d: an aborted record was delivered or a committed one lost", got, want)
		}
	}
}
