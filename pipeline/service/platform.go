package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/sink"
)

// ProcessorKind says which processor stages a Platform runs.
type ProcessorKind int

// The processor kinds.
const (
	// NoProcessor runs no processor stage.
	NoProcessor ProcessorKind = iota
	// CleanProcessor runs the clean stage and the retry stage that feeds it
	// (NewCleanProcessor).
	CleanProcessor
	// FullProcessor runs every stage of the pipeline (NewProcessor).
	FullProcessor
)

// PlatformOptions say which parts of the platform run in this process.
type PlatformOptions struct {
	// Listener, if set, is where ingest serves the API.
	Listener net.Listener
	// Processor says which processor stages run.
	Processor ProcessorKind
	// Warehouse, if set, is where the sink writes every clean topic and the window
	// results; nil runs no sink. The caller closes it after Close.
	Warehouse sink.Warehouse
	// Metrics are the processor's metrics; the sink observes its end-to-end latency
	// (stage "sink") in them. Nil: new ones on Deps.Registry.
	Metrics *process.Metrics
	// DrainTimeout bounds Close's wait for the API's in-flight requests and for the
	// processor's open transactions; a processor still running then is killed.
	// Default 10s.
	DrainTimeout time.Duration
}

// Platform is the parts of Sluice one process runs (ingest, processor, sink), started
// together and closed together in pipeline order. `sluice dev`, `sluice ingest`,
// `sluice process`, `sluice sink` and the bench assemble theirs with StartPlatform.
type Platform struct {
	Ingest    *Ingest
	Processor *Processor
	Sink      *sink.Stage

	o    PlatformOptions
	proc *runner
	snk  *runner
	// done is closed when a part's Run returned before Close asked it to.
	done     chan struct{}
	doneOnce sync.Once
	closing  chan struct{}
}

// runner is one running part: stop asks it to end, finished is closed when its Run
// returned err.
type runner struct {
	stop     context.CancelFunc
	finished chan struct{}
	err      error
}

// StartPlatform builds the parts o names and runs them until Close. When a part
// cannot be built, what was built is released and the error returned.
func StartPlatform(ctx context.Context, d Deps, dec *schema.Registry, o PlatformOptions) (*Platform, error) {
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.Metrics == nil && (o.Processor != NoProcessor || o.Warehouse != nil) {
		o.Metrics = process.NewMetrics(d.Registry)
	}
	p := &Platform{o: o, done: make(chan struct{}), closing: make(chan struct{})}
	fail := func(err error) (*Platform, error) {
		if p.Processor != nil {
			p.Processor.Kill()
			p.Processor.release()
		}
		if p.Sink != nil {
			p.Sink.Kill()
		}
		return nil, err
	}
	switch o.Processor {
	case CleanProcessor, FullProcessor:
		proc, err := newProcessor(ctx, d, dec, o.Metrics, o.Processor == FullProcessor)
		if err != nil {
			return fail(err)
		}
		p.Processor = proc
	}
	if o.Warehouse != nil {
		snk, err := NewSink(ctx, d, dec, o.Warehouse, func(topic string, dur time.Duration) {
			o.Metrics.ObserveEndToEnd("sink", topic, dur)
		})
		if err != nil {
			return fail(fmt.Errorf("sink: %w", err))
		}
		p.Sink = snk
	}
	if o.Listener != nil {
		in, err := StartIngest(d, o.Listener)
		if err != nil {
			return fail(err)
		}
		p.Ingest = in
	}
	base := context.WithoutCancel(ctx)
	if p.Processor != nil {
		p.proc = p.run(base, p.Processor.Run)
	}
	if p.Sink != nil {
		p.snk = p.run(base, p.Sink.Run)
	}
	return p, nil
}

// run starts one part's Run in its own goroutine.
func (p *Platform) run(base context.Context, run func(context.Context) error) *runner {
	ctx, stop := context.WithCancel(base)
	r := &runner{stop: stop, finished: make(chan struct{})}
	go func() {
		r.err = run(ctx)
		close(r.finished)
		select {
		case <-p.closing:
		default:
			p.doneOnce.Do(func() { close(p.done) })
		}
	}()
	return r
}

// Done is closed when a part stopped by itself (its Run returned before Close): a
// command then shuts down, and Close returns the part's error.
func (p *Platform) Done() <-chan struct{} { return p.done }

// Close drains the platform in pipeline order: the API stops taking requests and
// finishes those in flight, the processor ends its open transactions (killed if it has
// not within DrainTimeout), and the sink flushes last, so it writes what the processor
// committed. It returns the errors of the shutdown and of each part's Run. Call it once.
func (p *Platform) Close() error {
	close(p.closing)
	ctx, cancel := context.WithTimeout(context.Background(), p.o.DrainTimeout)
	defer cancel()
	var errs []error
	if p.Ingest != nil {
		errs = append(errs, p.Ingest.Shutdown(ctx))
	}
	if p.Processor != nil {
		p.proc.stop()
		select {
		case <-p.proc.finished:
		case <-ctx.Done():
			// A stage that cannot end its transaction (its broker gone) is killed.
			p.Processor.Kill()
			<-p.proc.finished
			errs = append(errs, fmt.Errorf("the processor did not drain within %s; killed", p.o.DrainTimeout))
		}
		errs = append(errs, ignoreCanceled(p.proc.err))
	}
	if p.Sink != nil {
		p.snk.stop()
		<-p.snk.finished
		errs = append(errs, ignoreCanceled(p.snk.err))
	}
	return errors.Join(errs...)
}

// ignoreCanceled drops the context.Canceled of a part that ended because it was
// stopped, and keeps every other error (of a joined error too).
func ignoreCanceled(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var kept []error
		for _, e := range j.Unwrap() {
			if e = ignoreCanceled(e); e != nil {
				kept = append(kept, e)
			}
		}
		return errors.Join(kept...)
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
