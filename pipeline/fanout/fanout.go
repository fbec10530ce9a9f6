// Package fanout shares one Kafka consumer per topic among any number of subscribers:
// the live records of a topic, read once, decoded once, and handed to every subscriber
// without letting a slow one hold up the others. The ingest API's WebSocket stream
// (GET /api/v1/stream/{topic}) is built on it.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
)

// Errors a subscription can end with (Message.Err) or Subscribe can return.
var (
	// ErrSlowSubscriber ends a subscription that fell behind: when a record arrived, its
	// oldest unread record had waited longer than Limits.Lag, or its unread records
	// would have exceeded Limits.Bytes. The hub drops it rather than wait for it and hold
	// up the other subscribers, or hold their records in memory without bound.
	ErrSlowSubscriber = errors.New("fanout: subscriber too slow: it fell behind the live records")
	// ErrClosed ends every subscription when the hub closes; Subscribe returns it after.
	ErrClosed = errors.New("fanout: hub closed")
	// ErrUnknownTopic: the topic does not exist in Kafka.
	ErrUnknownTopic = errors.New("fanout: unknown topic")
)

// Defaults of Limits.
const (
	// DefaultBufferBytes is the default Limits.Bytes: room for a few maximum-size ingest
	// batches (10,000 events, 10 MiB) between the hub and a subscriber reading at full
	// speed.
	DefaultBufferBytes = 32 << 20
	// DefaultMaxLag is the default Limits.Lag.
	DefaultMaxLag = 30 * time.Second
)

// recordOverhead is added to every record's size in Limits.Bytes: the Message, its
// headers map and its queue slot. It also bounds the number of tiny records queued.
const recordOverhead = 256

// Limits bound what a subscriber may leave unread, in bytes and in time rather than in
// records: one ingest request may carry 10,000 records, which a healthy reader takes in
// a fraction of a second, while a reader that stalls must not pin memory for long.
type Limits struct {
	// Bytes bounds the size of the records delivered to the subscription but not yet
	// received from its channel: key, value and headers, plus 256 bytes per record. A
	// record that does not fit ends the subscription with ErrSlowSubscriber, unless
	// nothing is waiting (a single record larger than Bytes is still delivered). The
	// records are shared by every subscriber of the topic, so the memory a topic's
	// subscribers pin is about the largest of their unread sizes, not the sum.
	// Default 32 MiB.
	Bytes int64
	// Lag is how long a record may wait for the subscriber to receive it. When a record
	// arrives and the oldest unread one has waited longer, the subscription ends with
	// ErrSlowSubscriber: a reader is dropped only after it has fallen behind for this
	// long, never for a burst it reads in time. Default 30s.
	Lag time.Duration
}

func (l Limits) withDefaults() (Limits, error) {
	switch {
	case l.Bytes < 0:
		return l, fmt.Errorf("bytes must be >= 0 (got %d)", l.Bytes)
	case l.Lag < 0:
		return l, fmt.Errorf("lag must be >= 0 (got %s)", l.Lag)
	}
	if l.Bytes == 0 {
		l.Bytes = DefaultBufferBytes
	}
	if l.Lag == 0 {
		l.Lag = DefaultMaxLag
	}
	return l, nil
}

// StartTimeout bounds how long starting a topic's consumer (listing its end offsets)
// may take before Subscribe fails.
const StartTimeout = 10 * time.Second

// Decoder turns a record value into what subscribers receive as Message.Value. It is
// called once per record, however many subscribers there are.
type Decoder func(ctx context.Context, r *kgo.Record) (any, error)

// Message is one record delivered to a subscriber, or the end of its subscription.
// Its fields are shared by every subscriber of the topic and must not be modified.
type Message struct {
	// Topic, Partition, Offset, Key and Timestamp are the record's.
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Timestamp time.Time
	// Headers are the record headers; for a repeated key the last value wins.
	Headers map[string]string
	// Value is what the Decoder returned (the raw value bytes without a Decoder).
	Value any
	// DecodeErr is why the Decoder failed; Value is nil and Raw holds the value bytes.
	DecodeErr error
	// Raw is the undecodable record value when DecodeErr is set, else nil.
	Raw []byte
	// Err, when set, marks the last message of the subscription and says why the hub
	// ended it (ErrSlowSubscriber, ErrClosed); no record field is set. The channel is
	// closed right after it.
	Err error

	size int64 // what the record counts in Limits.Bytes
}

// Hub runs one shared consumer per topic and fans its records out to the topic's
// subscribers. The consumer reads read_committed, by direct partition assignment (no
// consumer group, nothing committed), starting at each partition's last stable offset
// when the first subscriber arrives: subscribers see live records only. It stops when
// the last subscriber leaves. Partitions added to a topic while its consumer runs are not
// read until the consumer restarts.
//
// Each subscriber has Limits of its own; a subscriber that falls behind them is dropped
// (ErrSlowSubscriber), so memory is bounded by the largest Limits.Bytes, and nobody
// waits for the slowest reader. Records reach a subscriber in offset order per
// partition. A Hub is safe for concurrent use; its zero value is not usable.
type Hub struct {
	cfg     kafka.Config
	decode  Decoder
	log     *slog.Logger
	now     func() time.Time
	running atomic.Int64

	mu     sync.Mutex
	closed bool
	feeds  map[string]*feed
	admin  *kgo.Client // lists end offsets; created on first use
}

// Option configures a Hub.
type Option func(*Hub)

// WithClock sets the clock that times Limits.Lag (default time.Now); for tests.
func WithClock(now func() time.Time) Option { return func(h *Hub) { h.now = now } }

// New returns a Hub reading through clients configured by cfg and decoding record
// values with decode (nil: Value is the raw value bytes). Close it when done.
func New(cfg kafka.Config, decode func(ctx context.Context, r *kgo.Record) (any, error), opts ...Option) *Hub {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{cfg: cfg, decode: decode, log: log.With("component", "fanout"), now: time.Now, feeds: map[string]*feed{}}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Subscribe starts receiving the live records of topic. Records wait for the reader
// within lim (zero fields take the defaults); a subscriber that falls behind them is
// dropped with ErrSlowSubscriber. The subscription ends, and the channel is closed,
// when stop is called (stop is idempotent), when ctx is done, or when the hub ends it
// (a last Message with Err, sent as soon as the reader takes it: the records it had not
// received yet are discarded). Each subscription runs a goroutine until it ends and its
// closing message is received, or stop is called; always call stop (or end ctx).
// Subscribe returns once the topic's consumer has fixed its start offsets: every record
// committed after that is delivered. It fails with ErrUnknownTopic, ErrClosed, ctx's
// error, or the error that kept the consumer from starting.
func (h *Hub) Subscribe(ctx context.Context, topic string, lim Limits) (<-chan Message, func(), error) {
	lim, err := lim.withDefaults()
	if err != nil {
		return nil, nil, fmt.Errorf("fanout: subscribe %s: %w", topic, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("fanout: subscribe %s: %w", topic, err)
	}
	s := newSubscriber(lim)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, nil, ErrClosed
	}
	f := h.feeds[topic]
	if f == nil {
		f = h.newFeed(topic)
		h.feeds[topic] = f
	}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	h.mu.Unlock()

	select {
	case <-f.ready:
	case <-ctx.Done():
		h.unsubscribe(f, s)
		return nil, nil, fmt.Errorf("fanout: subscribe %s: %w", topic, ctx.Err())
	}
	if f.err != nil {
		h.unsubscribe(f, s)
		return nil, nil, f.err
	}
	var once sync.Once
	var stopAfter func() bool
	stop := func() {
		once.Do(func() {
			if stopAfter != nil {
				stopAfter()
			}
			h.unsubscribe(f, s)
		})
	}
	stopAfter = context.AfterFunc(ctx, stop)
	return s.ch, stop, nil
}

// Consumers is the number of topic consumers currently running (for tests and metrics).
func (h *Hub) Consumers() int { return int(h.running.Load()) }

// Close ends every subscription with ErrClosed, stops every consumer and waits for them.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	feeds := make([]*feed, 0, len(h.feeds))
	for _, f := range h.feeds {
		f.mu.Lock()
		for s := range f.subs {
			s.end(ErrClosed)
			delete(f.subs, s)
		}
		f.mu.Unlock()
		feeds = append(feeds, f)
	}
	clear(h.feeds)
	admin := h.admin
	h.admin = nil
	h.mu.Unlock()
	for _, f := range feeds {
		f.cancel()
		<-f.done
	}
	if admin != nil {
		admin.Close()
	}
}

// unsubscribe removes s from f (closing its channel if still open) and stops f if s
// was its last subscriber.
func (h *Hub) unsubscribe(f *feed, s *subscriber) {
	h.mu.Lock()
	f.mu.Lock()
	delete(f.subs, s)
	s.quit()
	last := len(f.subs) == 0 && h.feeds[f.topic] == f
	if last {
		delete(h.feeds, f.topic)
	}
	f.mu.Unlock()
	h.mu.Unlock()
	if last {
		f.cancel()
		<-f.done
	}
}

// retire removes f from the hub if it has no subscribers left (they were all
// dropped); it reports whether f must stop.
func (h *Hub) retire(f *feed) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) > 0 {
		return false
	}
	if h.feeds[f.topic] == f {
		delete(h.feeds, f.topic)
	}
	return true
}

// adminClient returns the client that lists offsets, creating it on first use.
func (h *Hub) adminClient() (*kgo.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if h.admin == nil {
		cl, err := kgo.NewClient(h.cfg.Opts()...)
		if err != nil {
			return nil, fmt.Errorf("fanout: admin client: %w", err)
		}
		h.admin = cl
	}
	return h.admin, nil
}
