package service

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/schema"
)

// setupEmbedded runs Setup for the built-in pipeline on an embedded kfake broker and
// registry, with the default service settings changed by edit (if set).
func setupEmbedded(t *testing.T, edit func(*config.Service)) (Deps, *schema.Registry) {
	t.Helper()
	emb, err := StartEmbedded(EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emb.Close() })
	svc := config.DefaultService()
	svc.Brokers = emb.Brokers()
	svc.RegistryURL = emb.RegistryURL()
	if edit != nil {
		edit(&svc)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	d, sreg, err := Setup(ctx, svc, config.Default(), kafka.Config{Brokers: svc.Brokers}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return d, sreg
}
