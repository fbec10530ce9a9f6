package sink

import "time"

// Protocol steps passed to the failpoint hook, in order. A hook error at a step inside
// the transaction (StepCAS, StepMerged, StepDeleted) rolls it back; at StepStaged the
// staged rows stay behind; at StepCommitted the batch is already durable.
const (
	StepStaged    = "staged"    // rows staged, transaction not begun
	StepCAS       = "cas"       // offset row compare-and-set inside the transaction
	StepMerged    = "merged"    // staged rows inserted into the target
	StepDeleted   = "deleted"   // staged rows deleted
	StepCommitted = "committed" // transaction committed
)

// Option configures a SQLWarehouse.
type Option interface{ apply(*options) }

type options struct {
	failpoint func(step string) error
	now       func() time.Time
	chunkArgs int
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithFailpoint installs a hook that Write calls after each protocol step (StepStaged ...
// StepCommitted). A non-nil error aborts Write at that point and is returned wrapped, as
// if the process had crashed there. For tests; the default is no hook.
func WithFailpoint(hook func(step string) error) Option {
	return optionFunc(func(o *options) { o.failpoint = hook })
}

// WithClock sets the clock used for SLUICE_MIGRATIONS.APPLIED_AT. Default time.Now.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(o *options) { o.now = now })
}

// WithStageChunk sets how many bind arguments one staging INSERT carries at most
// (rows per statement = max(1, n / columns)). Default 4000.
func WithStageChunk(n int) Option {
	return optionFunc(func(o *options) {
		if n > 0 {
			o.chunkArgs = n
		}
	})
}

func newOptions(opts []Option) options {
	o := options{now: time.Now, chunkArgs: 4000}
	for _, opt := range opts {
		opt.apply(&o)
	}
	return o
}

func (o *options) fail(step string) error {
	if o.failpoint == nil {
		return nil
	}
	return o.failpoint(step)
}
