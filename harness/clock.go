package harness

import (
	"context"
	"sync"
	"time"
)

// Clock is a settable wall clock for tests: inject it with WithFakeClock (or only its Now
// with WithClock) and move it with Advance. Timers made by AfterFunc fire when Advance
// passes their deadline; Sleep advances the clock itself, so in-place retry backoff costs
// no real time. Safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and fires, each in its own goroutine, the timers
// that are due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			due = append(due, t.f)
		default:
			keep = append(keep, t)
		}
	}
	clear(c.timers[len(keep):])
	c.timers = keep
	c.mu.Unlock()
	for _, f := range due {
		go f()
	}
}

// AfterFunc calls f in its own goroutine once the clock has advanced by d; at once if
// d <= 0. The returned function stops the timer and reports whether it did.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	if d <= 0 {
		go f()
		return func() bool { return false }
	}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.stopped || !t.at.After(c.now) {
			return false
		}
		t.stopped = true
		return true
	}
}

// Sleep advances the clock by d (firing due timers) and returns at once, or returns
// ctx's error if it is done.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if d > 0 {
		c.Advance(d)
	}
	return nil
}
