package service

import (
	"context"
	"errors"
	"fmt"
	"sync"

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
	}
}

// NewCleanStage builds the clean stage on d. It checks the transaction timeout against
// the brokers and fails if it is too large.
func NewCleanStage(ctx context.Context, d Deps, dec *schema.Registry, m *process.Metrics) (*process.Stage, error) {
	d.defaults()
	c := &process.Clean{
		Topics:  make(map[string]process.CleanTopic, len(d.Schemas)),
		Decoder: dec,
		Horizon: d.Pipeline.Dedup.Horizon.D(),
		Now:     d.Now,
		Metrics: m,
	}
	for name, ts := range d.Schemas {
		c.Topics[name] = process.CleanTopic{Name: name, Codec: ts.Clean, Rules: ts.Rules}
	}
	return process.NewStage(ctx, c.StageConfig(d.stageBase(m)))
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
		rs, err := process.NewStage(ctx, rp.StageConfig(d.stageBase(m)))
		if err != nil {
			return fail(err)
		}
		// Set before Run starts, the only reader.
		rp.Lag = rs.Lag
		stages = append(stages, rs)
		ag := &process.Aggregate{Agg: a, Partitions: t.Partitions, Decoder: dec,
			Codec: d.AggCodecs[a.Name], Now: d.Now, Metrics: m}
		cfg, err := ag.StageConfig(d.stageBase(m))
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
	clean, err := NewCleanStage(ctx, d, dec, m)
	if err != nil {
		return nil, err
	}
	aggs, err := NewAggregationStages(ctx, d, dec, m)
	if err != nil {
		clean.Kill()
		return nil, err
	}
	return &Processor{Stages: append([]*process.Stage{clean}, aggs...)}, nil
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
