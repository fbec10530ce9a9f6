package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
	"github.com/sluicehq/sluice/pipeline/wire"
)

func (d *Deps) stageBase(m *process.Metrics, st process.State) process.StageConfig {
	return process.StageConfig{
		State:      st,
		InstanceID: d.Service.InstanceID,
		Kafka:      d.Kafka,
		TxnTimeout: d.Service.TxnTimeout,
		MaxRecords: d.Service.TxnMaxRecords,
		MaxTime:    d.Service.TxnMaxTime,
		Logger:     d.Logger.With("service", "process"),
		Metrics:    m,
		Now:        d.Now,
		AfterFunc:  d.AfterFunc,

		ClientMetrics: d.ClientMetrics,
	}
}

// NewCleanStage builds the clean stage on d, its state kept as st says (OpenState). It
// checks the transaction timeout against the brokers and fails if it is too large.
func NewCleanStage(ctx context.Context, d Deps, dec *schema.Registry, m *process.Metrics, st process.State) (*process.Stage, error) {
	d.defaults()
	br := d.Pipeline.Breaker
	c := &process.Clean{
		Topics:   make(map[string]process.CleanTopic, len(d.Schemas)),
		Decoder:  dec,
		Horizon:  d.Pipeline.Dedup.Horizon.D(),
		Now:      d.Now,
		Metrics:  m,
		Breakers: dlq.NewBreakers(br.Threshold, dlq.Backoff{Base: br.ProbeBase.D(), Cap: br.ProbeCap.D(), Factor: 2, Jitter: 1}, d.Now, d.Rand),
		Sleep:    d.Sleep,
		Rand:     d.Rand,
		Logger:   d.Logger.With("service", "process"),
	}
	tiers := RetryTiers(d.Pipeline)
	for name, ts := range d.Schemas {
		t, ok := d.Pipeline.Topic(name)
		if !ok {
			return nil, fmt.Errorf("clean stage: no topic %s in the pipeline", name)
		}
		c.Topics[name] = process.CleanTopic{Name: name, Codec: ts.Clean, Rules: ts.Rules,
			Transform: d.Transforms[name], Retry: cleanRetry(t.Retry, tiers)}
	}
	for name := range d.Transforms {
		if _, ok := c.Topics[name]; !ok {
			return nil, fmt.Errorf("clean stage: transform for unknown topic %s", name)
		}
	}
	return process.NewStage(ctx, c.StageConfig(d.stageBase(m, st)))
}

// RetryTiers are the pipeline's delay-tier retry topics.
func RetryTiers(p *config.Pipeline) []dlq.Tier {
	tiers := make([]dlq.Tier, 0, len(p.RetryTiers))
	for _, d := range p.RetryTiers {
		tiers = append(tiers, dlq.Tier{Delay: d.D(), Topic: wire.RetryTopic(d.D()), Partitions: p.RetryPartitions()})
	}
	return tiers
}

func cleanRetry(r config.Retry, tiers []dlq.Tier) process.CleanRetry {
	jitter := config.DefaultRetryJitter
	if r.Jitter != nil {
		jitter = *r.Jitter
	}
	return process.CleanRetry{
		InPlace:        r.InPlaceAttempts,
		InPlaceBackoff: dlq.DefaultBackoff(),
		InPlaceBudget:  r.InPlaceBudget.D(),
		Policy: dlq.Policy{
			MaxAttempts: r.MaxAttempts,
			Backoff:     dlq.Backoff{Base: r.Base.D(), Factor: r.Factor, Cap: r.Cap.D(), Jitter: jitter},
			Tiers:       tiers,
			Ordered:     r.Ordered,
		},
	}
}

// NewRetryStage builds the retry stage, which delivers records from the retry topics back
// to their original topics when their time comes. Nil without retry tiers.
func NewRetryStage(ctx context.Context, d Deps, m *process.Metrics) (*process.Stage, error) {
	d.defaults()
	tiers := RetryTiers(d.Pipeline)
	if len(tiers) == 0 {
		return nil, nil
	}
	r := &process.Retry{Metrics: m}
	for _, t := range tiers {
		r.Topics = append(r.Topics, t.Topic)
	}
	return process.NewStage(ctx, r.StageConfig(d.stageBase(m, process.State{})))
}

// NewAggregationStages builds, for every aggregation of the pipeline, its repartition
// stage and its aggregate stage (state kept as st says).
func NewAggregationStages(ctx context.Context, d Deps, dec *schema.Registry, m *process.Metrics, st process.State) ([]*process.Stage, error) {
	d.defaults()
	var stages []*process.Stage
	fail := func(err error) ([]*process.Stage, error) {
		for _, s := range stages {
			s.Kill()
		}
		return nil, err
	}
	for _, a := range d.Pipeline.Aggregations {
		t, ok := d.Pipeline.Topic(a.From)
		if !ok {
			return fail(fmt.Errorf("aggregation %s: no topic %s", a.Name, a.From))
		}
		if err := startAggregation(ctx, d.Kafka, a); err != nil {
			return fail(err)
		}
		rp := &process.Repartition{Agg: a, Partitions: t.Partitions, Decoder: dec,
			IdleAdvance: d.Service.IdleAdvance, Now: d.Now, Metrics: m}
		base := d.stageBase(m, st)
		base.CommitInterval = d.Service.AggCommitInterval
		rs, err := process.NewStage(ctx, rp.StageConfig(base))
		if err != nil {
			return fail(err)
		}
		// Set before Run starts, the only reader.
		rp.Lag = rs.Lag
		stages = append(stages, rs)
		ag := &process.Aggregate{Agg: a, Partitions: t.Partitions, Decoder: dec,
			Codec: d.AggCodecs[a.Name], Now: d.Now, Metrics: m}
		cfg, err := ag.StageConfig(base)
		if err != nil {
			return fail(err)
		}
		as, err := process.NewStage(ctx, cfg)
		if err != nil {
			return fail(err)
		}
		stages = append(stages, as)
	}
	return stages, nil
}

// Processor is every stage of one processor instance: clean, and per aggregation
// repartition and aggregate.
type Processor struct {
	Stages []*process.Stage
	// closeState releases the state directory and cache once every stage stopped.
	closeState func()
}

// NewProcessor builds every stage of the pipeline.
func NewProcessor(ctx context.Context, d Deps, dec *schema.Registry, m *process.Metrics) (*Processor, error) {
	return newProcessor(ctx, d, dec, m, true)
}

// NewCleanProcessor builds the clean stage and the retry stage that feeds its retried
// records back, without the aggregations.
func NewCleanProcessor(ctx context.Context, d Deps, dec *schema.Registry, m *process.Metrics) (*Processor, error) {
	return newProcessor(ctx, d, dec, m, false)
}

func newProcessor(ctx context.Context, d Deps, dec *schema.Registry, m *process.Metrics, aggs bool) (*Processor, error) {
	d.defaults()
	m.InitPipeline(d.Pipeline, aggs)
	st, closeState, err := OpenState(d.Service.State, d.Pipeline, d.Logger)
	if err != nil {
		return nil, err
	}
	p := &Processor{closeState: closeState}
	fail := func(err error) (*Processor, error) {
		p.Kill()
		closeState()
		return nil, err
	}
	clean, err := NewCleanStage(ctx, d, dec, m, st)
	if err != nil {
		return fail(err)
	}
	p.Stages = append(p.Stages, clean)
	retry, err := NewRetryStage(ctx, d, m)
	if err != nil {
		return fail(err)
	}
	if retry != nil {
		p.Stages = append(p.Stages, retry)
	}
	if aggs {
		as, err := NewAggregationStages(ctx, d, dec, m, st)
		if err != nil {
			return fail(err)
		}
		p.Stages = append(p.Stages, as...)
	}
	return p, nil
}

// Run runs every stage until ctx ends (each drains its open transaction) or one fails,
// which stops the others.
func (p *Processor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(p.Stages))
	var wg sync.WaitGroup
	for i, s := range p.Stages {
		wg.Go(func() {
			errs[i] = s.Run(ctx)
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	p.release()
	return errors.Join(errs...)
}

// release frees the state directory and cache once no stage runs (at the end of Run,
// or for a processor whose Run never ran).
func (p *Processor) release() {
	if p.closeState != nil {
		p.closeState()
		p.closeState = nil
	}
}

// Kill closes every stage abruptly (tests).
func (p *Processor) Kill() {
	for _, s := range p.Stages {
		s.Kill()
	}
}

// OpenState resolves where the process stages keep their state (the --state-* flags
// over the pipeline file's state section over the defaults: pebble in ./sluice-state
// with a 64 MiB cache) and, on disk, locks the root directory for this process and
// makes the cache the stores share. A directory that cannot be written, or that another
// process holds, is an error naming it, before anything is consumed. The returned func
// releases both once every stage stopped.
func OpenState(c config.State, p *config.Pipeline, log *slog.Logger) (process.State, func(), error) {
	if err := c.Validate(); err != nil {
		return process.State{}, nil, err
	}
	var ps config.PipelineState
	if p != nil {
		ps = p.State
	}
	r := c.Resolve(ps)
	if r.Backend == config.StateBackendMemory {
		log.Info("state in memory: every assignment restores the whole changelog")
		return process.State{}, func() {}, nil
	}
	lock, err := pebblestore.LockRoot(r.Dir)
	if err != nil {
		return process.State{}, nil, fmt.Errorf("--state-dir: %w", err)
	}
	cache := pebblestore.NewCache(r.CacheBytes)
	log.Info("state on disk", "dir", r.Dir, "cache_bytes", r.CacheBytes)
	var once sync.Once
	return process.State{Dir: r.Dir, Cache: cache}, func() {
		once.Do(func() {
			cache.Close()
			if err := lock.Close(); err != nil {
				log.Warn("releasing the state directory failed", "dir", r.Dir, "err", err)
			}
		})
	}, nil
}
