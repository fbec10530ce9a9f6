package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// feed is the consumer of one topic and its subscribers.
type feed struct {
	hub    *Hub
	topic  string
	cancel context.CancelFunc
	ready  chan struct{} // closed once started, or failed to (err)
	err    error         // why the start failed; read after ready is closed
	done   chan struct{} // closed when the consumer has stopped

	mu   sync.Mutex // guards subs and every send on a subscriber channel
	subs map[*subscriber]struct{}
}

// newFeed creates the feed of topic and starts its consumer. The caller holds h.mu.
func (h *Hub) newFeed(topic string) *feed {
	ctx, cancel := context.WithCancel(context.Background())
	f := &feed{hub: h, topic: topic, cancel: cancel, ready: make(chan struct{}), done: make(chan struct{}),
		subs: map[*subscriber]struct{}{}}
	h.running.Add(1)
	go f.run(ctx)
	return f
}

// run starts the consumer, then delivers records until ctx is cancelled or no
// subscriber is left.
func (f *feed) run(ctx context.Context) {
	defer close(f.done)
	defer f.hub.running.Add(-1)
	cl, err := f.start(ctx)
	if err != nil {
		f.err = err
		close(f.ready)
		f.hub.mu.Lock()
		if f.hub.feeds[f.topic] == f {
			delete(f.hub.feeds, f.topic) // the next Subscribe tries again
		}
		f.hub.mu.Unlock()
		return
	}
	close(f.ready)
	defer cl.Close()
	f.hub.log.Debug("fanout: consumer started", "topic", f.topic)
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				f.hub.log.Warn("fanout: fetch failed", "topic", t, "partition", p, "err", err)
			}
		})
		empty := false
		fs.EachRecord(func(r *kgo.Record) {
			if !empty && f.deliver(f.message(ctx, r)) {
				empty = f.hub.retire(f)
			}
		})
		if empty {
			f.hub.log.Debug("fanout: consumer stopped: every subscriber was dropped", "topic", f.topic)
			return
		}
	}
}

// start fixes the start offsets (each partition's last stable offset, where a
// read_committed consumer's "now" is) and creates the consumer.
func (f *feed) start(ctx context.Context) (*kgo.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	admin, err := f.hub.adminClient()
	if err != nil {
		return nil, err
	}
	offs, err := kadm.NewClient(admin).ListCommittedOffsets(ctx, f.topic)
	if err == nil {
		err = offs.Error()
	}
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, f.topic)
	case err != nil:
		return nil, fmt.Errorf("fanout: %s: list end offsets: %w", f.topic, err)
	}
	parts := map[int32]kgo.Offset{}
	offs.Each(func(o kadm.ListedOffset) {
		if o.Topic == f.topic && o.Partition >= 0 {
			parts[o.Partition] = kgo.NewOffset().At(o.Offset)
		}
	})
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, f.topic)
	}
	cl, err := kgo.NewClient(append(f.hub.cfg.Opts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{f.topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Records deleted by retention before we read them: carry on from the end.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("fanout: %s: consumer: %w", f.topic, err)
	}
	return cl, nil
}

// message converts and decodes one record.
func (f *feed) message(ctx context.Context, r *kgo.Record) Message {
	m := Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Timestamp: r.Timestamp,
		Headers: make(map[string]string, len(r.Headers)), size: int64(recordOverhead + len(r.Key) + len(r.Value))}
	for _, h := range r.Headers {
		m.Headers[h.Key] = string(h.Value)
		m.size += int64(len(h.Key) + len(h.Value))
	}
	if f.hub.decode == nil {
		m.Value = r.Value
		return m
	}
	v, err := f.hub.decode(ctx, r)
	if err != nil {
		m.DecodeErr, m.Raw = err, r.Value
		return m
	}
	m.Value = v
	return m
}

// deliver hands m to every subscriber, dropping those that fell behind their Limits.
// It reports whether it dropped the last one.
func (f *feed) deliver(m Message) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) == 0 {
		return false // unsubscribing; the canceller stops the feed
	}
	now := f.hub.now()
	for s := range f.subs {
		if why := s.push(m, now); why != "" {
			s.end(ErrSlowSubscriber)
			delete(f.subs, s)
			f.hub.log.Debug("fanout: subscriber dropped", "topic", f.topic, "exceeded", why,
				"max_lag", s.lim.Lag, "max_bytes", s.lim.Bytes)
		}
	}
	return len(f.subs) == 0
}
