package service

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/schema"
)

func (d *Deps) stageBase(m *process.Metrics) process.StageConfig {
	return process.StageConfig{
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

// NewCleanStage builds the clean stage on d. It checks the transaction timeout against
// the brokers and fails if it is too large.
func NewCleanStage(ctx context.Context, d Deps, dec *schema.Registry, m *process.Metrics) (*process.Stage, error) {
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
	return process.NewStage(ctx, c.StageConfig(d.stageBase(m)))
}

// RetryTiers are the pipeline's delay-tier retry topics.
func RetryTiers(p *config.Pipeline) []dlq.Tier {
	tiers := make([]dlq.Tier, 0, len(p.RetryTiers))
	for _, d := range p.RetryTiers {
		tiers = append(tiers, dlq.Tier{Delay: d.D(), Topic: config.RetryTopic(d.D()), Partitions: p.RetryPartitions()})
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
	return process.NewStage(ctx, r.StageConfig(d.stageBase(m)))
}

// NewAggregationStages builds, for every aggregation of the pipeline, its repartition
// stage and its aggregate stage.
func NewAggregationStages(ctx context.Context, d Deps, dec *schema.Registry, m *process.Metrics) ([]*process.Stage, error) {
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
		rp := &process.Repartition{Agg: a, Partitions: t.Partitions, Decoder: dec,
			IdleAdvance: d.Service.IdleAdvance, Now: d.Now, Metrics: m}
		base := d.stageBase(m)
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
}

// NewProcessor builds every stage of the pipeline.
func NewProcessor(ctx context.Context, d Deps, dec *schema.Registry, m *process.Metrics) (*Processor, error) {
	p, err := NewCleanProcessor(ctx, d, dec, m)
	if err != nil {
		return nil, err
	}
	aggs, err := NewAggregationStages(ctx, d, dec, m)
	if err != nil {
		p.Kill()
		return nil, err
	}
	p.Stages = append(p.Stages, aggs...)
	return p, nil
}

// NewCleanProcessor builds the clean stage and the retry stage that feeds its retried
// records back, without the aggregations.
func NewCleanProcessor(ctx context.Context, d Deps, dec *schema.Registry, m *process.Metrics) (*Processor, error) {
	clean, err := NewCleanStage(ctx, d, dec, m)
	if err != nil {
		return nil, err
	}
	p := &Processor{Stages: []*process.Stage{clean}}
	retry, err := NewRetryStage(ctx, d, m)
	if err != nil {
		clean.Kill()
		return nil, err
	}
	if retry != nil {
		p.Stages = append(p.Stages, retry)
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
	return errors.Join(errs...)
}

// Kill closes every stage abruptly (tests).
func (p *Processor) Kill() {
	for _, s := range p.Stages {
		s.Kill()
	}
}
