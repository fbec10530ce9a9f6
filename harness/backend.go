// Package harness runs the real Sluice pipeline in-process against a broker backend
// (the in-memory kfake broker now; an external broker list or testcontainers later) and
// gives tests helpers to post events, read topics, inject faults and kill and restart
// services. Tests written against it run unchanged on every backend.
package harness

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/pipeline/service"
)

// Backend provides a Kafka cluster and a schema registry for one test.
type Backend interface {
	// Name is "kfake", "external", ...
	Name() string
	// Start returns the broker addresses and registry URL; cleanup is registered on t.
	Start(t testing.TB) (brokers []string, registryURL string)
	// Cluster is the kfake cluster for fault injection, or nil when the backend cannot
	// inject faults at the broker.
	Cluster() *kfake.Cluster
}

// Kfake is the in-memory broker backend (franz-go's kfake) with an in-process registry.
type Kfake struct{ emb *service.Embedded }

// Name implements Backend.
func (*Kfake) Name() string { return "kfake" }

// Start implements Backend.
func (k *Kfake) Start(t testing.TB) ([]string, string) {
	t.Helper()
	emb, err := service.StartEmbedded(service.EmbeddedOptions{MinSessionTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("kfake backend: %v", err)
	}
	t.Cleanup(func() { _ = emb.Close() })
	k.emb = emb
	return emb.Brokers(), emb.RegistryURL()
}

// Cluster implements Backend.
func (k *Kfake) Cluster() *kfake.Cluster { return k.emb.Cluster }

// External uses brokers that already run (SLUICE_TEST_BROKERS, comma-separated), with an
// in-process registry. Topics are shared across tests on one broker, so tests that use it
// must tolerate existing data (the real-broker issue makes topic names unique per test).
type External struct {
	Brokers []string
	emb     *service.Embedded
}

// Name implements Backend.
func (*External) Name() string { return "external" }

// Start implements Backend.
func (e *External) Start(t testing.TB) ([]string, string) {
	t.Helper()
	emb, err := service.StartEmbedded(service.EmbeddedOptions{})
	if err != nil {
		t.Fatalf("external backend: registry: %v", err)
	}
	t.Cleanup(func() { _ = emb.Close() })
	e.emb = emb
	return e.Brokers, emb.RegistryURL()
}

// Cluster implements Backend: faults cannot be injected into an external broker.
func (*External) Cluster() *kfake.Cluster { return nil }

// BackendFromEnv picks the backend named by SLUICE_TEST_BACKEND: "kfake" (default) or
// "external" (brokers from SLUICE_TEST_BROKERS).
func BackendFromEnv(t testing.TB) Backend {
	t.Helper()
	switch b := os.Getenv("SLUICE_TEST_BACKEND"); b {
	case "", "kfake":
		return &Kfake{}
	case "external":
		bs := os.Getenv("SLUICE_TEST_BROKERS")
		if bs == "" {
			t.Fatal("SLUICE_TEST_BACKEND=external needs SLUICE_TEST_BROKERS")
		}
		return &External{Brokers: strings.Split(bs, ",")}
	default:
		t.Fatalf("SLUICE_TEST_BACKEND=%q: want kfake or external", b)
		return nil
	}
}
