package dlq

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DependencyError names the dependency a transient error came from, so the circuit
// breaker of that dependency counts it.
type DependencyError struct {
	Dependency string
	Err        error
}

// Error returns the wrapped error's message: the dependency is a label for the breaker
// and metrics, not part of the message.
func (e *DependencyError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *DependencyError) Unwrap() error { return e.Err }

// FromDependency marks err as coming from dependency dep. Nil stays nil.
func FromDependency(dep string, err error) error {
	if err == nil {
		return nil
	}
	return &DependencyError{Dependency: dep, Err: err}
}

// DefaultDependency is the breaker of transient errors that name no dependency.
const DefaultDependency = "default"

// DependencyOf returns the dependency err names, DefaultDependency if none.
func DependencyOf(err error) string {
	var d *DependencyError
	if errors.As(err, &d) && d.Dependency != "" {
		return d.Dependency
	}
	return DefaultDependency
}

// Breakers are the circuit breakers of one stage, one per dependency, made on the first
// failure a dependency causes. Safe for concurrent use.
type Breakers struct {
	threshold int
	probe     Backoff
	now       func() time.Time
	rnd       func() float64

	mu sync.Mutex
	m  map[string]*Breaker
}

// NewBreakers returns breakers that each open after threshold consecutive transient
// failures and probe with probe's backoff (see NewBreaker).
func NewBreakers(threshold int, probe Backoff, now func() time.Time, rnd func() float64) *Breakers {
	return &Breakers{threshold: threshold, probe: probe, now: now, rnd: rnd, m: make(map[string]*Breaker)}
}

// For returns dependency dep's breaker, making it if needed.
func (b *Breakers) For(dep string) *Breaker {
	b.mu.Lock()
	defer b.mu.Unlock()
	br, ok := b.m[dep]
	if !ok {
		br = NewBreaker(b.threshold, b.probe, b.now, b.rnd)
		b.m[dep] = br
	}
	return br
}

// States returns every breaker's state by dependency.
func (b *Breakers) States() map[string]string {
	b.mu.Lock()
	m := maps.Clone(b.m)
	b.mu.Unlock()
	out := make(map[string]string, len(m))
	for dep, br := range m {
		out[dep] = br.State()
	}
	return out
}

func (b *Breakers) all() []*Breaker {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*Breaker, 0, len(b.m))
	for _, br := range b.m {
		out = append(out, br)
	}
	return out
}

// Guard is the middleware of the circuit breakers bs (docs/DESIGN.md#decorators). While a breaker is
// open it refuses records with a WaitError until its probe time, so the stage pauses the
// partition on the refused record instead of sending it to a retry topic; after that one
// record probes (half-open). A transient failure counts against its dependency's breaker;
// the failure that opens it, and a failed probe, also return a WaitError: the record is
// kept, not retried or dead-lettered, so an outage costs no attempts. Success closes
// half-open breakers and resets the failure count.
func Guard(bs *Breakers) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
			brs := bs.all()
			// Look before taking a probe: letting breaker A go half-open and then being
			// refused by breaker B would spend A's probe on a record that never reaches A.
			now := bs.now()
			var wait time.Time
			for _, br := range brs {
				if until, open := br.OpenUntil(); open && now.Before(until) && until.After(wait) {
					wait = until
				}
			}
			if !wait.IsZero() {
				return &WaitError{Until: wait, Reason: "circuit-open"}
			}
			for _, br := range brs {
				if ok, at := br.Allow(); !ok {
					return &WaitError{Until: at, Reason: "circuit-open"}
				}
			}
			err := next(ctx, rec, emit)
			if err == nil {
				for _, br := range bs.all() {
					br.Success()
				}
				return nil
			}
			if _, ok := AsWait(err); ok || ClassOf(err) != Transient || ctx.Err() != nil {
				return err
			}
			br := bs.For(DependencyOf(err))
			br.Failure()
			if until, open := br.OpenUntil(); open {
				return &WaitError{Until: until, Reason: "circuit-open", Err: err}
			}
			return err
		}
	}
}
