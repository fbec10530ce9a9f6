package dlq

import (
	"sync"
	"time"
)

// Breaker states, as returned by Breaker.State.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half-open"
)

// Breaker is a circuit breaker for one dependency (docs/DESIGN.md#decorators): when the dependency
// keeps failing, the stage pauses its partitions and probes with backoff instead of
// flooding the retry topics and the DLQ, and resumes by itself.
//
// Closed: every call is allowed; threshold consecutive failures open it. Open: calls are
// refused until the probe delay has passed. Then the next Allow moves it to half-open and
// lets one probe through; further calls are refused while the probe is out. A probe
// success closes it; a probe failure re-opens it with the next, longer, probe delay
// (probe.Delay(trips, rnd), trips counting the consecutive openings). A probe that never
// reports is replaced by a new one after the same delay. Results reported while open
// come from calls allowed before it opened and are ignored.
//
// A Breaker is safe for concurrent use. Time comes only from the injected clock.
type Breaker struct {
	threshold int
	probe     Backoff
	now       func() time.Time
	rnd       func() float64

	mu       sync.Mutex
	state    string
	failures int       // consecutive failures while closed
	trips    int       // consecutive openings since last closed
	until    time.Time // open: end of the probe delay; half-open: deadline of the probe out
}

// NewBreaker returns a closed breaker that opens after threshold consecutive transient
// failures (values below 1 mean 1) and probes after probe.Delay(1, rnd), probe.Delay(2,
// rnd), ... (zero Backoff fields take the Backoff defaults). now is the clock; rnd may be
// nil (no jitter).
func NewBreaker(threshold int, probe Backoff, now func() time.Time, rnd func() float64) *Breaker {
	if threshold < 1 {
		threshold = 1
	}
	return &Breaker{threshold: threshold, probe: probe, now: now, rnd: rnd, state: BreakerClosed}
}

// Allow reports whether a call may go to the dependency now. When it may not, retryAt is
// when to ask again (the stage keeps its partitions paused until then). When closed,
// retryAt is the zero time.
func (b *Breaker) Allow() (ok bool, retryAt time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerClosed {
		return true, time.Time{}
	}
	now := b.now()
	if now.Before(b.until) {
		return false, b.until
	}
	// Probe delay over (open), or the probe out never reported (half-open): one probe.
	b.state = BreakerHalfOpen
	b.until = now.Add(b.probe.Delay(b.trips, b.rnd))
	return true, time.Time{}
}

// Success records a successful call: it closes a half-open breaker and resets the
// failure count of a closed one.
func (b *Breaker) Success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		b.failures = 0
	case BreakerHalfOpen:
		b.state = BreakerClosed
		b.failures = 0
		b.trips = 0
		b.until = time.Time{}
	}
}

// Failure records a transient failure of a call: the threshold-th consecutive one opens
// a closed breaker, and a failed probe re-opens a half-open one with a longer delay.
// Permanent errors say nothing about the dependency's health and should not be reported.
func (b *Breaker) Failure() {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		b.failures++
		if b.failures >= b.threshold {
			b.open()
		}
	case BreakerHalfOpen:
		b.open()
	}
}

// open moves to open with the next probe delay. Called with mu held.
func (b *Breaker) open() {
	b.trips++
	b.state = BreakerOpen
	b.failures = 0
	b.until = b.now().Add(b.probe.Delay(b.trips, b.rnd))
}

// State returns BreakerClosed, BreakerOpen or BreakerHalfOpen. An open breaker whose
// delay has passed stays open until the next Allow.
func (b *Breaker) State() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// OpenUntil reports whether the breaker is not closed and, if so, until when it refuses
// calls (open: the end of the probe delay; half-open: the deadline of the probe out).
func (b *Breaker) OpenUntil() (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerClosed {
		return time.Time{}, false
	}
	return b.until, true
}
