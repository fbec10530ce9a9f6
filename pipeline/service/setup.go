package service

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/schema"
)

// Setup connects to the registry, registers the pipeline's schemas and creates its
// topics. Every service calls it at start-up; it is idempotent.
func Setup(ctx context.Context, svc config.Service, p *config.Pipeline, kc kafka.Config, log *slog.Logger, reg *prometheus.Registry) (Deps, *schema.Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if kc.Logger == nil {
		kc.Logger = log
	}
	if len(kc.Brokers) == 0 {
		kc.Brokers = svc.Brokers
	}
	if kc.Security == (kafka.Security{}) {
		kc.Security = kafka.SecurityFrom(svc.Security)
	}
	if kc.SessionTimeout == 0 {
		kc.SessionTimeout = svc.GroupSessionTimeout
	}
	if kc.GroupProtocol == "" {
		kc.GroupProtocol = svc.GroupProtocol
	}
	if err := kc.Security.Validate(); err != nil {
		return Deps{}, nil, err
	}
	// A wrong password or an unreachable broker is a clear error now, not a hang later.
	if err := kafka.Ping(ctx, kc); err != nil {
		return Deps{}, nil, err
	}
	src, err := schema.NewClient(svc.RegistryURL, svc.Registry)
	if err != nil {
		return Deps{}, nil, err
	}
	sreg := schema.NewRegistry(src, schema.RegistryOptions(svc.Registry.ForPipeline(p))...)
	schemas, err := RegisterSchemas(ctx, p, sreg)
	if err != nil {
		return Deps{}, nil, err
	}
	aggs, err := RegisterAggregates(ctx, p, sreg)
	if err != nil {
		return Deps{}, nil, err
	}
	cl, err := kgo.NewClient(kc.Opts()...)
	if err != nil {
		return Deps{}, nil, err
	}
	adm := kadm.NewClient(cl)
	defer adm.Close()
	if err := kafka.EnsureTopics(ctx, adm, kafka.TopicsFor(p)); err != nil {
		return Deps{}, nil, fmt.Errorf("topics: %w", err)
	}
	return Deps{
		Service:        svc,
		Pipeline:       p,
		Kafka:          kc,
		Schemas:        schemas,
		AggCodecs:      aggs,
		RegistryClient: src,
		Registry:       reg,
		Logger:         log,
	}, sreg, nil
}
