package dlq

import (
	"math"
	"time"
)

// Default backoff parameters, used for the zero fields of a Backoff (docs/DESIGN.md#decorators).
const (
	DefaultBackoffBase   = 100 * time.Millisecond
	DefaultBackoffFactor = 2.0
	DefaultBackoffCap    = 2 * time.Second
	DefaultBackoffJitter = 1.0
)

// Backoff is an exponential backoff with jitter. It is a pure value: Delay takes the
// random source, so schedules are reproducible in tests.
//
// Zero fields take defaults: Base 100ms, Factor 2, Cap 2s. A Factor below 1 is treated
// as the default too (a shrinking backoff is a configuration mistake). Jitter is used as
// given, clamped to [0, 1]: 0 is no jitter, 1 is full jitter; DefaultBackoff has Jitter 1.
type Backoff struct {
	Base, Cap time.Duration
	Factor    float64
	Jitter    float64 // 0..1, 1 = full jitter
}

// DefaultBackoff returns the default backoff: Base 100ms, Factor 2, Cap 2s, full jitter.
func DefaultBackoff() Backoff {
	return Backoff{Base: DefaultBackoffBase, Cap: DefaultBackoffCap, Factor: DefaultBackoffFactor, Jitter: DefaultBackoffJitter}
}

// Delay returns the wait after the attempt-th failure (attempt counts from 1; values
// below 1 are treated as 1). With r = rnd() clamped to [0, 1] (nil rnd means r = 0):
//
//	d     = min(Base * Factor^(attempt-1), Cap)
//	Delay = d * (1 - Jitter*r)
//
// so with full jitter the delay is uniform in [0, d] and with r = 0 it is exactly d.
// If Cap is below Base, Cap wins. The result is never negative and never exceeds Cap,
// however large attempt is (the power saturates at Cap instead of overflowing).
func (b Backoff) Delay(attempt int, rnd func() float64) time.Duration {
	b = b.withDefaults()
	if attempt < 1 {
		attempt = 1
	}
	d := float64(b.Base) * math.Pow(b.Factor, float64(attempt-1))
	if math.IsNaN(d) || d > float64(b.Cap) {
		d = float64(b.Cap)
	}
	r := 0.0
	if rnd != nil {
		r = clamp01(rnd())
	}
	d *= 1 - b.Jitter*r
	if d <= 0 {
		return 0
	}
	if d >= float64(b.Cap) {
		return b.Cap
	}
	return time.Duration(d)
}

func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = DefaultBackoffBase
	}
	if b.Cap <= 0 {
		b.Cap = DefaultBackoffCap
	}
	if !(b.Factor >= 1) || math.IsInf(b.Factor, 0) { // also catches NaN
		b.Factor = DefaultBackoffFactor
	}
	b.Jitter = clamp01(b.Jitter)
	return b
}

// clamp01 clamps x to [0, 1]; NaN becomes 0.
func clamp01(x float64) float64 {
	switch {
	case x > 1:
		return 1
	case x > 0:
		return x
	default:
		return 0
	}
}
