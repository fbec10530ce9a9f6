package fanout

import (
	"sync"
	"time"
)

// subscriber is one subscription: a queue of the records delivered to it but not yet
// received, bounded by its Limits, and a goroutine (pump) that hands them to the reader
// through ch. Only the feed pushes, under the feed's lock; only the pump pops.
type subscriber struct {
	ch    chan Message // unbuffered; the pump is its only sender and closes it
	lim   Limits
	wake  chan struct{} // capacity 1: the queue or the end changed
	stop  chan struct{} // closed by quit: the subscriber left
	once  sync.Once
	mu    sync.Mutex
	queue []queued // oldest first; queue[0] is the record the pump is offering
	bytes int64    // sum of the sizes in queue
	err   error    // why the hub ended the subscription; the pump sends it last
}

// queued is a record waiting for its reader since at.
type queued struct {
	m  Message
	at time.Time
}

// newSubscriber returns a subscriber with its pump running.
func newSubscriber(lim Limits) *subscriber {
	s := &subscriber{ch: make(chan Message), lim: lim, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	go s.pump()
	return s
}

// push queues m, received at now. It reports why the subscriber must be dropped
// instead ("lag" or "bytes"), or "" when m was queued.
func (s *subscriber) push(m Message, now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		if now.Sub(s.queue[0].at) > s.lim.Lag {
			return "lag"
		}
		if s.bytes+m.size > s.lim.Bytes {
			return "bytes"
		}
	}
	s.queue = append(s.queue, queued{m: m, at: now})
	s.bytes += m.size
	s.signal()
	return ""
}

// end discards the unread records and makes err the subscription's last message; the
// caller holds the feed lock and removes s from the feed.
func (s *subscriber) end(err error) {
	s.mu.Lock()
	clear(s.queue)
	s.queue, s.bytes, s.err = nil, 0, err
	s.mu.Unlock()
	s.signal()
}

// quit stops the pump, which closes ch; idempotent.
func (s *subscriber) quit() { s.once.Do(func() { close(s.stop) }) }

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pump offers the oldest queued record to the reader until it takes it, then the next;
// after the end it sends the closing message and closes ch.
func (s *subscriber) pump() {
	defer close(s.ch)
	for {
		s.mu.Lock()
		var (
			m          Message
			have, last bool
		)
		switch {
		case len(s.queue) > 0:
			m, have = s.queue[0].m, true
		case s.err != nil:
			m, have, last = Message{Err: s.err}, true, true
		}
		s.mu.Unlock()
		if !have {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		select {
		case <-s.wake: // an end just signalled wins over the offer
			continue
		default:
		}
		select {
		case s.ch <- m:
			if last {
				return
			}
			s.pop()
		case <-s.wake: // maybe ended: look again
		case <-s.stop:
			return
		}
	}
}

// pop removes the record the reader just took. Pushes only append and end empties the
// queue, so a non-empty queue still starts with it.
func (s *subscriber) pop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return
	}
	s.bytes -= s.queue[0].m.size
	s.queue[0] = queued{} // let the record go
	s.queue = s.queue[1:]
}
