package service

import (
	"context"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/sink"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// NewSink builds the warehouse sink stage on d: every clean topic into its table and
// every aggregation's results into AGGREGATES, exactly once (pipeline/sink), flushing by
// d.Service.Sink's rows, bytes and interval. latency, if set, receives the time from
// ingest to the warehouse commit of every row (process.Metrics.ObserveEndToEnd with stage
// "sink").
func NewSink(ctx context.Context, d Deps, dec *schema.Registry, w sink.Warehouse, latency func(topic string, d time.Duration)) (*sink.Stage, error) {
	d.defaults()
	tables := map[string]avro.Schema{}
	aggs := map[string]bool{}
	var topics []string
	for raw, ts := range d.Schemas {
		t := wire.CleanTopic(raw)
		topics = append(topics, t)
		tables[t] = ts.Clean.Schema
	}
	for _, a := range d.Pipeline.Aggregations {
		t := wire.AggTopic(a.Name)
		topics = append(topics, t)
		aggs[t] = true
	}
	return sink.NewStage(ctx, sink.StageConfig{
		Kafka:     d.Kafka,
		Warehouse: w,
		Decoder:   dec,
		Schemas: func(topic string) (string, avro.Schema, bool, bool) {
			if s, ok := tables[topic]; ok {
				return sink.TableName(topic), s, false, true
			}
			if aggs[topic] {
				return sink.AggregatesTable, nil, true, true
			}
			return "", nil, false, false
		},
		Topics:        topics,
		FlushRows:     d.Service.Sink.FlushRows,
		FlushBytes:    int(d.Service.Sink.FlushBytes),
		FlushInterval: d.Service.Sink.FlushInterval,
		Latency:       latency,
		Now:           d.Now,
		AfterFunc:     d.AfterFunc,
		Sleep:         d.Sleep,
		Rand:          d.Rand,
		Logger:        d.Logger.With("service", "sink"),
		Registerer:    d.Registry,
		ClientMetrics: d.ClientMetrics,
		InstanceID:    d.Service.InstanceID,
	})
}
