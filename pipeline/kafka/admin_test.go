package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
)

// TopicsFor lists, for every raw topic, its derived topics with its partition count, the
// dedup changelog compacted (the aggregations' topics are checked with the aggregate stage).
func TestTopicsFor(t *testing.T) {
	specs := kafka.TopicsFor(config.Default())
	got := map[string]kafka.TopicSpec{}
	for _, s := range specs {
		if _, dup := got[s.Name]; dup {
			t.Errorf("topic %s listed twice", s.Name)
		}
		got[s.Name] = s
	}
	for _, raw := range []string{"page_views", "clicks", "purchases"} {
		for _, c := range []struct {
			name      string
			compacted bool
		}{
			{raw, false},
			{raw + ".clean", false},
			{raw + ".dlq", false},
			{raw + ".late", false},
			{"_sluice.clean." + raw + ".dedup-changelog", true},
		} {
			s, ok := got[c.name]
			if !ok {
				t.Errorf("topic %s missing from %v", c.name, specs)
				continue
			}
			if s.Partitions != 3 || s.Compacted != c.compacted {
				t.Errorf("%s = %+v, want 3 partitions, compacted %v", c.name, s, c.compacted)
			}
		}
	}
}

// describe returns each topic's partition count and cleanup.policy, read through a new
// client: kgo answers a metadata request from its cache for a while, so a client that
// listed a topic before it existed may still report it unknown.
func describe(t *testing.T, c *kfake.Cluster, topics ...string) (map[string]int, map[string]string) {
	t.Helper()
	adm := newAdmin(t, c)
	td, err := adm.ListTopics(t.Context(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]int{}
	for _, d := range td {
		if d.Err == nil {
			parts[d.Topic] = len(d.Partitions)
		}
	}
	rcs, err := adm.DescribeTopicConfigs(t.Context(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	policy := map[string]string{}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil {
				policy[rc.Name] = *c.Value
			}
		}
	}
	return parts, policy
}

func TestEnsureTopicsCreates(t *testing.T) {
	c := newCluster(t)
	adm := newAdmin(t, c)
	specs := []kafka.TopicSpec{
		{Name: "orders", Partitions: 3},
		{Name: "orders.clean", Partitions: 3},
		{Name: "_sluice.clean.orders.dedup-changelog", Partitions: 3, Compacted: true},
		{Name: "single", Partitions: 1},
	}
	if err := kafka.EnsureTopics(t.Context(), adm, specs); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	parts, policy := describe(t, c, names...)
	for _, s := range specs {
		if parts[s.Name] != int(s.Partitions) {
			t.Errorf("%s has %d partitions, want %d", s.Name, parts[s.Name], s.Partitions)
		}
		if got := policy[s.Name] == "compact"; got != s.Compacted {
			t.Errorf("%s cleanup.policy = %q, want compacted %v", s.Name, policy[s.Name], s.Compacted)
		}
	}

	// Again: nothing to do, nothing changes.
	if err := kafka.EnsureTopics(t.Context(), adm, specs); err != nil {
		t.Fatalf("EnsureTopics again: %v", err)
	}
	again, policy2 := describe(t, c, names...)
	for _, s := range specs {
		if again[s.Name] != parts[s.Name] || policy2[s.Name] != policy[s.Name] {
			t.Errorf("%s changed: %d/%q -> %d/%q", s.Name, parts[s.Name], policy[s.Name], again[s.Name], policy2[s.Name])
		}
	}
}

// An existing topic with the wrong partition count is reported (and left alone); the
// other topics are still created.
func TestEnsureTopicsPartitionMismatch(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "orders"))
	adm := newAdmin(t, c)
	err := kafka.EnsureTopics(t.Context(), adm, []kafka.TopicSpec{
		{Name: "orders", Partitions: 3},
		{Name: "orders.clean", Partitions: 3},
	})
	if err == nil {
		t.Fatal("EnsureTopics accepted a topic with 1 partition where 3 are wanted")
	}
	for _, want := range []string{"orders", "1 partitions", "wants 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	parts, _ := describe(t, c, "orders", "orders.clean")
	if parts["orders"] != 1 {
		t.Errorf("orders now has %d partitions, want it left at 1", parts["orders"])
	}
	if parts["orders.clean"] != 3 {
		t.Errorf("orders.clean has %d partitions, want 3 (created despite the other error)", parts["orders.clean"])
	}
}

// kfake reports transaction.max.timeout.ms through DescribeConfigs (the cluster-level
// describe CheckTxnTimeout issues); the CheckTxnTimeout tests rely on it.
func TestKfakeDescribesTxnMaxTimeout(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []kfake.Opt
		want string
	}{
		{"default", nil, "900000"},
		{"configured", []kfake.Opt{kfake.BrokerConfigs(map[string]string{"transaction.max.timeout.ms": "5000"})}, "5000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			adm := newAdmin(t, newCluster(t, c.opts...))
			rcs, err := adm.DescribeBrokerConfigs(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, rc := range rcs {
				for _, cfg := range rc.Configs {
					if cfg.Key == "transaction.max.timeout.ms" && cfg.Value != nil {
						got = append(got, *cfg.Value)
					}
				}
			}
			if len(got) != 1 || got[0] != c.want {
				t.Fatalf("transaction.max.timeout.ms reported as %v, want [%s]", got, c.want)
			}
		})
	}
}

func TestCheckTxnTimeout(t *testing.T) {
	limited := kfake.BrokerConfigs(map[string]string{"transaction.max.timeout.ms": "5000"})
	cases := []struct {
		name    string
		opts    []kfake.Opt
		timeout time.Duration
		wantErr bool
	}{
		{"default limit, 1m", nil, time.Minute, false},
		{"default limit, exactly 15m", nil, 15 * time.Minute, false},
		{"default limit, 16m", nil, 16 * time.Minute, true},
		{"5s limit, 1s", []kfake.Opt{limited}, time.Second, false},
		{"5s limit, exactly 5s", []kfake.Opt{limited}, 5 * time.Second, false},
		{"5s limit, 10s", []kfake.Opt{limited}, 10 * time.Second, true},
		{"5s limit, 1m", []kfake.Opt{limited}, time.Minute, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			adm := newAdmin(t, newCluster(t, c.opts...))
			err := kafka.CheckTxnTimeout(t.Context(), adm, c.timeout)
			if !c.wantErr {
				if err != nil {
					t.Fatalf("CheckTxnTimeout(%s) = %v, want nil", c.timeout, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckTxnTimeout(%s) = nil, want an error", c.timeout)
			}
			if !strings.Contains(err.Error(), "transaction.max.timeout.ms") || !strings.Contains(err.Error(), c.timeout.String()) {
				t.Errorf("error %q does not name transaction.max.timeout.ms and the timeout %s", err, c.timeout)
			}
		})
	}
}

// MaxMessageBytes reads a topic's own max.message.bytes, and the default for a topic
// that does not set one.
func TestMaxMessageBytes(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "plain"))
	adm := newAdmin(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("4096")}, "small"); err != nil {
		t.Fatal(err)
	}
	got, err := kafka.MaxMessageBytes(ctx, adm, "plain", "small")
	if err != nil {
		t.Fatal(err)
	}
	if got["small"] != 4096 || got["plain"] != kafka.DefaultMaxMessageBytes {
		t.Errorf("MaxMessageBytes = %v, want small=4096 plain=%d", got, kafka.DefaultMaxMessageBytes)
	}
}

// TestRetryBackoff: 100 ms for the first retry, doubling, never over 1 s (±20% jitter).
func TestRetryBackoff(t *testing.T) {
	for fails := range 30 {
		lo, hi := 80*time.Millisecond, 1200*time.Millisecond
		switch {
		case fails <= 1:
			hi = 120 * time.Millisecond
		case fails == 2:
			lo, hi = 160*time.Millisecond, 240*time.Millisecond
		case fails >= 5:
			lo = 800 * time.Millisecond
		}
		for range 100 {
			if d := kafka.RetryBackoff(fails); d < lo || d > hi {
				t.Fatalf("RetryBackoff(%d) = %s, want within [%s, %s]", fails, d, lo, hi)
			}
		}
	}
}
