package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// TopicSpec is a topic the pipeline needs.
type TopicSpec struct {
	Name       string
	Partitions int32
	// Compacted topics keep the newest record per key (state changelogs).
	Compacted bool
}

// TopicsFor lists every topic the pipeline file needs: raw, clean, dead-letter and late
// topics per event topic, the clean stage's dedup changelogs, and per aggregation its
// repartition topic, output topic and state changelogs. Derived topics have the
// raw topic's partition count, so a task's input, output and changelog partition agree.
func TopicsFor(p *config.Pipeline) []TopicSpec {
	var specs []TopicSpec
	for _, t := range p.Topics {
		n := t.Partitions
		specs = append(specs,
			TopicSpec{Name: t.Name, Partitions: n},
			TopicSpec{Name: wire.CleanTopic(t.Name), Partitions: n},
			TopicSpec{Name: wire.DLQTopic(t.Name), Partitions: n},
			TopicSpec{Name: wire.LateTopic(t.Name), Partitions: n},
			TopicSpec{Name: wire.ChangelogTopic("clean", t.Name, "dedup"), Partitions: n, Compacted: true},
		)
	}
	for _, a := range p.Aggregations {
		t, ok := p.Topic(a.From)
		if !ok {
			continue // Validate reports it
		}
		n := t.Partitions
		specs = append(specs,
			TopicSpec{Name: wire.RepartitionTopic(a.Name), Partitions: n},
			TopicSpec{Name: wire.AggTopic(a.Name), Partitions: n},
			TopicSpec{Name: wire.AggChangelogTopic(a.Name, "windows"), Partitions: n, Compacted: true},
			TopicSpec{Name: wire.AggChangelogTopic(a.Name, "marks"), Partitions: n, Compacted: true},
		)
	}
	rp := p.RetryPartitions()
	for _, d := range p.RetryTiers {
		specs = append(specs, TopicSpec{Name: wire.RetryTopic(d.D()), Partitions: rp})
	}
	if len(p.RetryTiers) > 0 {
		specs = append(specs, TopicSpec{Name: wire.RetryDLQTopic, Partitions: rp})
	}
	if len(p.Aggregations) > 0 {
		specs = append(specs, TopicSpec{Name: wire.SinkDLQTopic, Partitions: rp})
	}
	return specs
}

// EnsureTopics creates the topics that do not exist yet, with the broker's default
// replication factor. Existing topics are left alone (their partition count is not
// changed; a mismatch is reported).
func EnsureTopics(ctx context.Context, adm *kadm.Client, specs []TopicSpec) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	existing, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var errs []error
	var compacted []string
	for _, s := range specs {
		if d, ok := existing[s.Name]; ok && d.Err == nil {
			if got := int32(len(d.Partitions)); got != s.Partitions {
				errs = append(errs, fmt.Errorf("topic %s: has %d partitions, pipeline wants %d", s.Name, got, s.Partitions))
			}
			if s.Compacted {
				compacted = append(compacted, s.Name)
			}
			continue
		}
		var cfgs map[string]*string
		if s.Compacted {
			cfgs = map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
		}
		resp, err := adm.CreateTopic(ctx, s.Partitions, -1, cfgs, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", s.Name, err))
		}
	}
	if len(compacted) > 0 {
		// A changelog that is not compacted grows without bound and restores slowly; one
		// with delete retention loses state. Refuse both.
		rcs, err := adm.DescribeTopicConfigs(ctx, compacted...)
		if err != nil {
			errs = append(errs, fmt.Errorf("describe topic configs: %w", err))
		}
		for _, rc := range rcs {
			policy := ""
			for _, c := range rc.Configs {
				if c.Key == "cleanup.policy" && c.Value != nil {
					policy = *c.Value
				}
			}
			if rc.Err == nil && !strings.Contains(policy, "compact") {
				errs = append(errs, fmt.Errorf("topic %s: cleanup.policy is %q, a state changelog needs compact", rc.Name, policy))
			}
		}
	}
	return errors.Join(errs...)
}

// DefaultMaxTxnTimeout is Kafka's default transaction.max.timeout.ms (15 minutes, also
// MSK's ceiling).
const DefaultMaxTxnTimeout = 15 * time.Minute

// CheckTxnTimeout refuses a transaction timeout larger than the brokers'
// transaction.max.timeout.ms: such a producer fails at its first transaction, which is a
// worse place to find out.
func CheckTxnTimeout(ctx context.Context, adm *kadm.Client, timeout time.Duration) error {
	limit := DefaultMaxTxnTimeout
	// Describe every broker: without ids a real broker answers only the cluster-wide
	// dynamic defaults, missing a limit set in its static configuration (as on MSK).
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("broker metadata: %w", err)
	}
	rcs, err := adm.DescribeBrokerConfigs(ctx, md.Brokers.NodeIDs()...)
	if err != nil {
		return fmt.Errorf("describe broker configs: %w", err)
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key != "transaction.max.timeout.ms" || c.Value == nil {
				continue
			}
			ms, err := strconv.ParseInt(*c.Value, 10, 64)
			if err != nil {
				return fmt.Errorf("broker transaction.max.timeout.ms %q: %w", *c.Value, err)
			}
			if d := time.Duration(ms) * time.Millisecond; d < limit {
				limit = d
			}
		}
	}
	if timeout > limit {
		return fmt.Errorf("--txn-timeout %s exceeds the brokers' transaction.max.timeout.ms (%s): lower it", timeout, limit)
	}
	return nil
}
