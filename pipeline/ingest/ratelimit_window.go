package ingest

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// windowCounter counts units per key in fixed windows: a key's window starts with the
// first unit counted after the previous one ended. It keeps the counts in a
// fiber.Storage (shared between instances, e.g. Redis) or, without one, in memory. An
// HTTP request is one unit; a WebSocket message is as many units as it holds events
// (see rateQuota), so both count against the same limits.
type windowCounter struct {
	window time.Duration
	store  fiber.Storage // nil: mem
	now    func() time.Time

	// mu makes a read-modify-write atomic within this process; across instances
	// sharing a store the count is approximate (see NewRedisStorage).
	mu        sync.Mutex
	mem       map[string]windowCount
	nextSweep time.Time
}

// windowCount is the count of one key and the end of its window.
type windowCount struct {
	n     int64
	reset time.Time
}

func newWindowCounter(window time.Duration, store fiber.Storage, now func() time.Time) *windowCounter {
	return &windowCounter{window: window, store: store, now: now, mem: map[string]windowCount{}}
}

// take adds n units to key's count and returns the count of the current window,
// including them, and the time left until the window resets. Units are counted even
// when they exceed a limit, as refused requests are.
func (w *windowCounter) take(key string, n int) (int64, time.Duration) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.load(key, now)
	if !now.Before(c.reset) {
		c = windowCount{reset: now.Add(w.window)}
	}
	c.n += int64(n)
	w.save(key, c, now)
	return c.n, c.reset.Sub(now)
}

// load returns key's count; zero when absent, unreadable or the store failed (the
// limit fails open, as a missing count would).
func (w *windowCounter) load(key string, now time.Time) windowCount {
	if w.store == nil {
		if !now.Before(w.nextSweep) {
			for k, c := range w.mem {
				if !now.Before(c.reset) {
					delete(w.mem, k)
				}
			}
			w.nextSweep = now.Add(w.window)
		}
		return w.mem[key]
	}
	b, err := w.store.Get(key)
	if err != nil || len(b) != 16 {
		return windowCount{}
	}
	return windowCount{n: int64(binary.BigEndian.Uint64(b)), reset: time.Unix(0, int64(binary.BigEndian.Uint64(b[8:])))}
}

// save stores key's count until its window ends. The stored form is 16 bytes: the
// count and the reset time in Unix nanoseconds, big-endian.
func (w *windowCounter) save(key string, c windowCount, now time.Time) {
	if w.store == nil {
		w.mem[key] = c
		return
	}
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(c.n))
	binary.BigEndian.PutUint64(b[8:], uint64(c.reset.UnixNano()))
	_ = w.store.Set(key, b, c.reset.Sub(now)) // a failed write fails open, like a failed read
}

// rateQuota is what the messages of one WebSocket ingest connection count against: the
// limits and keys of its handshake (the client address and the token's principal).
type rateQuota struct {
	ipKey, principalKey string
	l                   *rateLimits
}

// quota returns the keys the handshake c was counted under, for its messages.
func (l *rateLimits) quota(c *fiber.Ctx) rateQuota {
	q := rateQuota{l: l}
	if l.ip != nil {
		q.ipKey = l.ip.key(c)
	}
	if l.principal != nil {
		q.principalKey = l.principal.key(c)
	}
	return q
}

// messageCost is the number of units a WebSocket message holding events events counts:
// one per event, as if each were posted alone, and at least one (a message that is not
// JSON still counts).
func messageCost(events int) int { return max(1, events) }

// take counts units against the per-IP limit, then (when it passed) the per-principal
// limit. Over a limit it returns a 429 problem and the seconds until the window resets;
// units that could never fit one window (more than a limit's max) are refused with a
// 413 problem, counted as one unit, so that a client does not retry them in vain.
func (q rateQuota) take(units int) (*requestError, int) {
	for _, m := range []struct {
		lim *limit
		key string
	}{{q.l.ip, q.ipKey}, {q.l.principal, q.principalKey}} {
		if m.lim == nil {
			continue
		}
		if units > m.lim.max {
			m.lim.counter.take(m.key, 1)
			return newRequestError(fiber.StatusRequestEntityTooLarge, ProblemTooLarge, reasonTooLarge,
				fmt.Sprintf("the message holds %d events, more than the %d events per %s the rate limit allows %s; "+
					"send fewer events per message", units, m.lim.max, m.lim.window, m.lim.who)), 0
		}
		count, reset := m.lim.counter.take(m.key, units)
		if count > int64(m.lim.max) {
			retry := seconds(reset)
			return &requestError{problem: Problem{
				Type: ProblemRateLimited, Title: http.StatusText(fiber.StatusTooManyRequests),
				Status: fiber.StatusTooManyRequests,
				Detail: fmt.Sprintf("more than %d events in %s from %s (each HTTP request counts one, each WebSocket "+
					"event one); nothing of this message was accepted, retry after %d seconds",
					m.lim.max, m.lim.window, m.lim.who, retry),
			}}, retry
		}
	}
	return nil, 0
}
