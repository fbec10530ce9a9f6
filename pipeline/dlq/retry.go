package dlq

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// AttemptsError is returned by RetryInPlace when it gives up on a record: Err is the last
// error and Attempts the number of calls of the wrapped handler in this delivery. It
// unwraps to Err, so ClassOf and errors.Is still see the class.
type AttemptsError struct {
	Attempts int
	Err      error
}

// Error reports the last error and the attempt count.
func (e *AttemptsError) Error() string {
	return fmt.Sprintf("after %d attempts: %v", e.Attempts, e.Err)
}

// Unwrap returns the last error.
func (e *AttemptsError) Unwrap() error { return e.Err }

// RetryOptions configure RetryInPlace.
type RetryOptions struct {
	// Backoff is the wait after each failed attempt.
	Backoff Backoff
	// MaxAttempts bounds the attempts in total (below 1: 1, no retry).
	MaxAttempts int
	// MaxTotal bounds the accumulated backoff (0 or less: no time bound).
	MaxTotal time.Duration
	// Sleep waits (Sleep is the real one); Rand is the jitter source (nil: no jitter).
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64
}

// RetryInPlace is the middleware that retries next with the short in-place retry budget of
// docs/DESIGN.md#decorators.
// A transient error (ClassOf == Transient) is retried after o.Backoff.Delay(n, o.Rand)
// following the n-th failed attempt, until o.MaxAttempts attempts in total were made
// (values below 1 mean 1, no retry) or until the accumulated backoff would exceed
// o.MaxTotal (0 or less means no time bound). A permanent error is not retried.
//
// Each attempt emits into a buffer; the buffered records are forwarded to emit, once and
// in order, only when the attempt succeeds, so a failed attempt leaks no output.
//
// On giving up (permanent error or budget spent) it returns an *AttemptsError wrapping
// the last error, for the caller to route to a retry tier (TierFor) or the DLQ. If o.Sleep
// fails (ctx done) it returns that error wrapped, not an *AttemptsError: the record was
// neither handled nor given up on, and must not be committed or routed. o.Sleep must not
// be nil (Sleep is the real one); o.Rand may be nil (no jitter).
func RetryInPlace(o RetryOptions) Middleware {
	maxAttempts := max(o.MaxAttempts, 1)
	return func(next Handler) Handler {
		return func(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
			var buf []*kgo.Record
			buffer := func(r *kgo.Record) { buf = append(buf, r) }
			var total time.Duration
			for attempt := 1; ; attempt++ {
				clear(buf)
				buf = buf[:0]
				err := next(ctx, rec, buffer)
				if err == nil {
					for _, r := range buf {
						emit(r)
					}
					return nil
				}
				if ClassOf(err) != Transient || attempt >= maxAttempts {
					return &AttemptsError{Attempts: attempt, Err: err}
				}
				d := o.Backoff.Delay(attempt, o.Rand)
				if o.MaxTotal > 0 && d > o.MaxTotal-total {
					return &AttemptsError{Attempts: attempt, Err: err}
				}
				total += d
				if serr := o.Sleep(ctx, d); serr != nil {
					return fmt.Errorf("dlq: retry after attempt %d (last error: %v): %w", attempt, err, serr)
				}
			}
		}
	}
}

// Sleep waits for d or until ctx is done, whichever comes first, and returns ctx's cause
// in the latter case. It is the production sleep for RetryInPlace.
func Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// TierFor chooses the retry tier after a failed delivery. attempts is the number of
// failed deliveries of the record including this one (wire.Attempts(rec)+1, the value the
// retried record carries in sluice-attempts): the i-th tier retry (attempts == i) waits
// tiers[i-1]. It returns false when the tiers are exhausted (attempts > len(tiers)) and
// the record goes to the DLQ. attempts below 1 are treated as 1.
func TierFor(tiers []time.Duration, attempts int) (time.Duration, bool) {
	if attempts < 1 {
		attempts = 1
	}
	if attempts > len(tiers) {
		return 0, false
	}
	return tiers[attempts-1], true
}
