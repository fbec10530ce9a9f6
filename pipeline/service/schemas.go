// Package service wires the pipeline's parts into runnable services (ingest, processor,
// the embedded dev platform). cmd/sluice and the test harness both start services through
// it, so tests run exactly the production wiring.
package service

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/rules"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// TopicSchemas are one raw topic's registered schemas.
type TopicSchemas struct {
	Topic config.Topic
	Raw   *schema.Codec
	Clean *schema.Codec
	Rules *rules.Set
}

// RegisterSchemas loads every topic's .avsc, registers it under <topic>-value and its
// clean form under <topic>.clean-value (each BACKWARD-checked against what is registered),
// and compiles the topic's rules.
func RegisterSchemas(ctx context.Context, p *config.Pipeline, reg *schema.Registry) (map[string]TopicSchemas, error) {
	out := make(map[string]TopicSchemas, len(p.Topics))
	for _, t := range p.Topics {
		avsc, err := schema.Load(t.Schema, p.Dir)
		if err != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, err)
		}
		raw, err := reg.Register(ctx, wire.Subject(t.Name), avsc)
		if err != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, err)
		}
		cleanAvsc, err := schema.Clean(avsc)
		if err != nil {
			return nil, fmt.Errorf("topic %s: clean schema: %w", t.Name, err)
		}
		clean, err := reg.Register(ctx, wire.Subject(wire.CleanTopic(t.Name)), cleanAvsc)
		if err != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, err)
		}
		rs, err := rules.Compile(t.Rules)
		if err != nil {
			return nil, fmt.Errorf("topic %s: rules: %w", t.Name, err)
		}
		out[t.Name] = TopicSchemas{Topic: t, Raw: raw, Clean: clean, Rules: rs}
	}
	return out, nil
}

// RegisterAggregates registers every aggregation's result schema under agg.<name>-value.
func RegisterAggregates(ctx context.Context, p *config.Pipeline, reg *schema.Registry) (map[string]*schema.Codec, error) {
	out := make(map[string]*schema.Codec, len(p.Aggregations))
	for _, a := range p.Aggregations {
		ms, err := a.ParsedMeasures()
		if err != nil {
			return nil, fmt.Errorf("aggregation %s: %w", a.Name, err)
		}
		var cols []schema.AggregateMeasure
		for _, m := range ms {
			if m.Func == config.MeasureCount {
				continue
			}
			cols = append(cols, schema.AggregateMeasure{Func: m.Func, Column: m.Column()})
		}
		avsc, err := schema.Aggregate(a.Name, cols)
		if err != nil {
			return nil, err
		}
		c, err := reg.Register(ctx, wire.Subject(wire.AggTopic(a.Name)), avsc)
		if err != nil {
			return nil, fmt.Errorf("aggregation %s: %w", a.Name, err)
		}
		out[a.Name] = c
	}
	return out, nil
}
