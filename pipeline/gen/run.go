package gen

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Target receives batches of events of one topic, for example the ingest REST API
// (HTTPTarget) or a test's recorder. A nil error means the batch was accepted.
type Target interface {
	Send(ctx context.Context, topic string, events []map[string]any) error
}

// DefaultWeights is the topic mix Run uses without WithWeights: six page views and three
// clicks per purchase. Topics not listed get weight 1.
func DefaultWeights() map[string]float64 {
	return map[string]float64{PageViews: 6, Clicks: 3, Purchases: 1}
}

// RunOption configures Run.
type RunOption interface{ apply(*runConfig) }

type runOptionFunc func(*runConfig)

func (f runOptionFunc) apply(c *runConfig) { f(c) }

type runConfig struct {
	sleep   func(ctx context.Context, d time.Duration) error
	weights map[string]float64
}

// WithSleep replaces how Run waits between batches. sleep must return early with a
// non-nil error when ctx is done. Tests pass a sleep that advances a fake clock, so
// pacing is checked without waiting. Default: a timer that also watches ctx.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) RunOption {
	return runOptionFunc(func(c *runConfig) { c.sleep = sleep })
}

// WithWeights sets the relative share of each topic's batches. A topic of gens that is
// missing from w, or has a weight <= 0, is not sent. Default DefaultWeights().
func WithWeights(w map[string]float64) RunOption {
	return runOptionFunc(func(c *runConfig) { c.weights = w })
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// Run sends events from gens (keyed by topic) to t in batches of batch events of one
// topic, at rate events per second in total, until maxEvents events were accepted
// (0: unbounded) or ctx is done. Topics take turns in proportion to their weights (see
// WithWeights), deterministically. It returns how many events t accepted.
//
// Pacing is by schedule, not by interval: batch k is due at start + (events sent)/rate on
// clock (time.Now if nil), so a slow Send is caught up afterwards rather than lowering the
// rate. rate <= 0 or +Inf sends as fast as t accepts; batch <= 0 means 1. Batches are sent
// one at a time. When ctx is done Run returns ctx.Err(); a failed Send stops Run with that
// error, wrapped.
func Run(ctx context.Context, t Target, gens map[string]*Generator, rate float64, batch int,
	maxEvents int, clock func() time.Time, opts ...RunOption) (sent int, err error) {
	cfg := runConfig{sleep: sleepCtx}
	for _, o := range opts {
		o.apply(&cfg)
	}
	switch {
	case t == nil:
		return 0, errors.New("gen: run: nil target")
	case math.IsNaN(rate):
		return 0, errors.New("gen: run: rate: must be a number (got NaN)")
	case maxEvents < 0:
		return 0, fmt.Errorf("gen: run: max: must be >= 0 (got %d)", maxEvents)
	}
	turns, err := newTurns(gens, cfg.weights)
	if err != nil {
		return 0, err
	}
	if clock == nil {
		clock = time.Now
	}
	batch = max(batch, 1)
	paced := rate > 0 && !math.IsInf(rate, 1)
	start := clock()
	for maxEvents == 0 || sent < maxEvents {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		if paced {
			due := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
			if d := due.Sub(clock()); d > 0 {
				if err := cfg.sleep(ctx, d); err != nil {
					return sent, err
				}
			}
		}
		topic := turns.next()
		n := batch
		if maxEvents > 0 {
			n = min(n, maxEvents-sent)
		}
		g := gens[topic]
		events := make([]map[string]any, n)
		for i := range events {
			events[i] = g.Next()
		}
		if err := t.Send(ctx, topic, events); err != nil {
			if ctx.Err() != nil {
				return sent, ctx.Err()
			}
			return sent, fmt.Errorf("gen: run: send %d %s events: %w", n, topic, err)
		}
		sent += n
	}
	return sent, nil
}

// turns is a smooth weighted round robin over topics (as in nginx): each topic gets its
// share of turns, evenly spread, with no randomness.
type turns struct {
	topics  []string
	weights []float64
	current []float64
	total   float64
}

func newTurns(gens map[string]*Generator, w map[string]float64) (*turns, error) {
	if len(gens) == 0 {
		return nil, errors.New("gen: run: no generators")
	}
	tr := &turns{}
	for _, topic := range slices.Sorted(maps.Keys(gens)) {
		if gens[topic] == nil {
			return nil, fmt.Errorf("gen: run: generator for %q is nil", topic)
		}
		weight := 1.0
		if w != nil {
			weight = w[topic]
		} else if d, ok := DefaultWeights()[topic]; ok {
			weight = d
		}
		if !(weight > 0) || math.IsInf(weight, 1) { // also drops NaN
			continue
		}
		tr.topics = append(tr.topics, topic)
		tr.weights = append(tr.weights, weight)
		tr.total += weight
	}
	if len(tr.topics) == 0 {
		return nil, errors.New("gen: run: every topic has weight <= 0")
	}
	tr.current = make([]float64, len(tr.topics))
	return tr, nil
}

// next returns the topic whose turn it is.
func (tr *turns) next() string {
	best := 0
	for i, w := range tr.weights {
		tr.current[i] += w
		if tr.current[i] > tr.current[best] {
			best = i
		}
	}
	tr.current[best] -= tr.total
	return tr.topics[best]
}
