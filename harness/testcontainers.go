package harness

import (
	"context"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/service"
)

// TestcontainersImage is the broker image of the testcontainers backend: the Kafka
// module supports only confluentinc/confluent-local.
const TestcontainersImage = "confluentinc/confluent-local:7.5.0"

// Testcontainers runs a Kafka broker in a container (SLUICE_TEST_BACKEND=testcontainers)
// with an in-process registry. It needs a Docker engine; without one the test is skipped
// with the reason (the testcontainers client would otherwise panic). One container per
// test: slow, but nothing is shared.
type Testcontainers struct {
	brokers []string
	emb     *service.Embedded
}

// Name implements Backend.
func (*Testcontainers) Name() string { return "testcontainers" }

// Start implements Backend.
func (b *Testcontainers) Start(t testing.TB) ([]string, string) {
	t.Helper()
	tt, ok := t.(*testing.T)
	if !ok {
		t.Skip("testcontainers backend: runs in tests only (SkipIfProviderIsNotHealthy takes *testing.T)")
	}
	testcontainers.SkipIfProviderIsNotHealthy(tt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := tckafka.Run(ctx, TestcontainersImage, tckafka.WithClusterID("sluice-test"))
	if err != nil {
		t.Fatalf("testcontainers backend: start %s: %v", TestcontainersImage, err)
	}
	t.Cleanup(func() { _ = testcontainers.TerminateContainer(c) })
	brokers, err := c.Brokers(ctx)
	if err != nil {
		t.Fatalf("testcontainers backend: brokers: %v", err)
	}
	emb, err := service.StartEmbedded(service.EmbeddedOptions{})
	if err != nil {
		t.Fatalf("testcontainers backend: registry: %v", err)
	}
	t.Cleanup(func() { _ = emb.Close() })
	b.brokers, b.emb = brokers, emb
	return brokers, emb.RegistryURL()
}

// Cluster implements Backend: faults cannot be injected into a container broker.
func (*Testcontainers) Cluster() *kfake.Cluster { return nil }

// Features implements Backend: a real broker, nothing more.
func (*Testcontainers) Features() Features { return 0 }

// Reset implements Resetter; a fresh container has nothing to reset, but a test may
// start two pipelines on one.
func (b *Testcontainers) Reset(t testing.TB, p *config.Pipeline) { resetBrokers(t, b.brokers, p) }
