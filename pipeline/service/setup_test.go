package service

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
)

// Setup sets each subject's compatibility mode on the registry: the topic's mode from
// the pipeline file on its raw and clean subjects, --registry-compatibility elsewhere.
func TestSetupSetsPipelineCompatibility(t *testing.T) {
	emb, err := StartEmbedded(EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emb.Close() })
	p := config.Default()
	for i := range p.Topics {
		if p.Topics[i].Name == "purchases" {
			p.Topics[i].Compatibility = config.CompatFullTransitive
		}
	}
	svc := config.DefaultService()
	svc.Brokers = emb.Brokers()
	svc.RegistryURL = emb.RegistryURL()
	svc.Registry.Compatibility = config.CompatForward
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err = Setup(ctx, svc, p, kafka.Config{Brokers: svc.Brokers}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := sr.NewClient(sr.URLs(emb.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	for subject, want := range map[string]sr.CompatibilityLevel{
		"purchases-value":        sr.CompatFullTransitive,
		"purchases.clean-value":  sr.CompatFullTransitive,
		"clicks-value":           sr.CompatForward,
		"page_views.clean-value": sr.CompatForward,
	} {
		res := cl.Compatibility(ctx, subject)
		if len(res) != 1 || res[0].Err != nil {
			t.Fatalf("%s: %+v", subject, res)
		}
		if got := res[0].Level; got != want {
			t.Errorf("%s: mode %s on the registry, want %s", subject, got, want)
		}
	}
}
