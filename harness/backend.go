// Package harness runs the real Sluice pipeline in-process against a broker backend
// (the in-memory kfake broker, an external broker list, or Kafka in testcontainers) and
// gives tests helpers to post events, read topics, inject faults and kill and restart
// services. Tests written against it run unchanged on every backend.
package harness

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Backend provides a Kafka cluster and a schema registry for one test.
type Backend interface {
	// Name is "kfake", "external", ...
	Name() string
	// Start returns the broker addresses and registry URL; cleanup is registered on t.
	Start(t testing.TB) (brokers []string, registryURL string)
	// Cluster is the kfake cluster for fault injection, or nil when the backend cannot
	// inject faults at the broker (Features has no BrokerFaults).
	Cluster() *kfake.Cluster
	// Features is what tests may ask of the backend beyond producing and consuming.
	Features() Features
}

// Features is a set of things a backend can do; a test that needs one asks for it
// (Require) instead of comparing backend names.
type Features uint

const (
	// BrokerFaults: requests can be failed, delayed or dropped at the broker, and a
	// transactional producer killed there (the kfake cluster, Cluster).
	BrokerFaults Features = 1 << iota
	// ManyPartitions: a pipeline of about 1,000 partitions is created and deleted per
	// test quickly enough (the single broker of make test-real is too slow for it).
	ManyPartitions
)

// Has reports whether f holds every feature of x.
func (f Features) Has(x Features) bool { return f&x == x }

func (f Features) String() string {
	var names []string
	if f.Has(BrokerFaults) {
		names = append(names, "fault injection at the broker")
	}
	if f.Has(ManyPartitions) {
		names = append(names, "about 1,000 partitions per test")
	}
	if f&^(BrokerFaults|ManyPartitions) != 0 || len(names) == 0 {
		names = append(names, fmt.Sprintf("features %#x", uint(f)))
	}
	return strings.Join(names, " and ")
}

// Require skips t unless backend b has every feature of need, saying which it lacks.
func Require(t testing.TB, b Backend, need Features) {
	t.Helper()
	if missing := need &^ b.Features(); missing != 0 {
		t.Skipf("needs %s, which the %s backend does not offer", missing, b.Name())
	}
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

// Features implements Backend.
func (*Kfake) Features() Features { return BrokerFaults | ManyPartitions }

// External uses brokers that already run (SLUICE_TEST_BROKERS, comma-separated), with an
// in-process registry. Tests share the brokers one after another: before each test the
// harness deletes the pipeline's topics and the sluice.* consumer groups (Reset), so point
// it at a throwaway broker such as `make kafka-up`'s, never at one whose data matters.
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

// Features implements Backend: a real broker, nothing more.
func (*External) Features() Features { return 0 }

// Reset implements Resetter.
func (e *External) Reset(t testing.TB, p *config.Pipeline) { resetBrokers(t, e.Brokers, p) }

// Resetter is a backend whose brokers outlive a test: Reset removes what an earlier test
// left (the pipeline's topics, the stages' consumer groups) before the pipeline starts.
type Resetter interface {
	Reset(t testing.TB, p *config.Pipeline)
}

// resetBrokers deletes the consumer groups named sluice.* and every topic the pipeline
// uses, and waits until the topics are gone.
func resetBrokers(t testing.TB, brokers []string, p *config.Pipeline) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("reset brokers: %v", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("reset brokers: list groups: %v", err)
	}
	var stale []string
	for _, g := range groups.Groups() {
		if _, ok := wire.StageOfGroup(g); ok {
			stale = append(stale, g)
		}
	}
	if len(stale) > 0 {
		if _, err := adm.DeleteGroups(ctx, stale...); err != nil {
			t.Fatalf("reset brokers: delete groups %v: %v", stale, err)
		}
	}
	var names []string
	for _, s := range kafka.TopicsFor(p) {
		names = append(names, s.Name)
	}
	// A test may add aggregations to the pipeline after it starts: their result topics,
	// changelogs and repartition topics are not in p, so those of any aggregation go too.
	all, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("reset brokers: list topics: %v", err)
	}
	for _, name := range all.Names() {
		if wire.IsAggregationTopic(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	present := func() ([]string, error) {
		ds, err := adm.ListTopics(ctx, names...)
		var out []string
		for name, d := range ds {
			if d.Err == nil { // requested names that do not exist come back with an error
				out = append(out, name)
			}
		}
		return out, err
	}
	existing, err := present()
	if err != nil {
		t.Fatalf("reset brokers: list topics: %v", err)
	}
	if len(existing) == 0 {
		return
	}
	if _, err := adm.DeleteTopics(ctx, existing...); err != nil {
		t.Fatalf("reset brokers: delete topics: %v", err)
	}
	// Deletion is asynchronous: creating a topic still marked for deletion fails.
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		left, err := present()
		if err == nil && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) || i > 1200 {
			t.Fatalf("reset brokers: topics not deleted after 60s: %v (last error %v)", left, err)
		}
		tm := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			tm.Stop()
			t.Fatalf("reset brokers: %v while waiting for %v to be deleted", ctx.Err(), left)
		case <-tm.C:
		}
	}
}

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
	case "testcontainers":
		return &Testcontainers{}
	default:
		t.Fatalf("SLUICE_TEST_BACKEND=%q: want kfake, external or testcontainers", b)
		return nil
	}
}
