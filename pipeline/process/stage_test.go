package process_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
)

// NewStage refuses, with a message that says what to change, a transaction timeout the
// brokers would reject at the first transaction (docs/ARCHITECTURE.md, transaction hygiene).
func TestNewStageTxnTimeout(t *testing.T) {
	cases := []struct {
		name     string
		instance string
		timeout  time.Duration
		// wantErr are substrings of the error; none: NewStage succeeds.
		wantErr []string
	}{
		{"within the limit", "i1", 5 * time.Second, nil},
		{"above the limit", "i1", 10 * time.Second, []string{"stage clean", "transaction.max.timeout.ms", "10s", "5s"}},
		{"default 60s above the limit", "i1", 0, []string{"stage clean", "transaction.max.timeout.ms", "1m0s"}},
		{"no instance id", "", 5 * time.Second, []string{"stage clean", "instance id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0),
				kfake.BrokerConfigs(map[string]string{"transaction.max.timeout.ms": "5000"}),
				kfake.SeedTopics(1, "in"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cluster.Close)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			s, err := process.NewStage(ctx, process.StageConfig{
				Name:       "clean",
				Inputs:     []string{"in"},
				InstanceID: c.instance,
				Kafka:      kafka.Config{Brokers: cluster.ListenAddrs()},
				NewTask:    func(process.TaskID) (process.Task, error) { return nil, errors.New("no tasks here") },
				Changelog:  func(in, store string) string { return in + "." + store },
				TxnTimeout: c.timeout,
			})
			if len(c.wantErr) == 0 {
				if err != nil {
					t.Fatalf("NewStage = %v, want a stage", err)
				}
				s.Kill()
				return
			}
			if err == nil {
				s.Kill()
				t.Fatalf("NewStage accepted transaction timeout %s with a 5s broker limit", c.timeout)
			}
			for _, w := range c.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
