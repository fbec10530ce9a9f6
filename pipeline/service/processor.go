package service

import (
	"context"

	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/schema"
)

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
	cfg := c.StageConfig(process.StageConfig{
		InstanceID: d.Service.InstanceID,
		Kafka:      d.Kafka,
		TxnTimeout: d.Service.TxnTimeout,
		MaxRecords: d.Service.TxnMaxRecords,
		MaxTime:    d.Service.TxnMaxTime,
		Logger:     d.Logger.With("service", "process"),
		Metrics:    m,
		Now:        d.Now,
	})
	return process.NewStage(ctx, cfg)
}
