package process

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Retry is the retry stage: it reads the delay-tier retry topics and, once a record's
// sluice-retry-at has come, delivers it back to its original topic and partition, where
// the stage that failed on it handles it again with its own state (the clean stage's
// dedup makes a second delivery harmless). A record whose time has not come holds its
// partition: the stage pauses it until then, without polling and without holding up the
// other partitions. Records of one retry partition come out in their order.
type Retry struct {
	// Topics are the retry tier topics.
	Topics []string
	// Metrics, if set, count redeliveries.
	Metrics *Metrics
}

// StageConfig returns the stage configuration of the retry stage; base supplies Kafka,
// instance id, clock, limits, logger and metrics.
func (r *Retry) StageConfig(base StageConfig) StageConfig {
	base.Name = wire.StageRetry
	base.Inputs = append([]string(nil), r.Topics...)
	base.Changelog = func(input, store string) string { return wire.ChangelogTopic(wire.StageRetry, input, store) }
	now := base.Now
	if r.Metrics == nil {
		r.Metrics = base.Metrics
	}
	base.NewTask = func(id TaskID) (Task, error) {
		t := &retryTask{now: now, metrics: r.Metrics, tier: id.Topic}
		t.handler = dlq.Route(dlq.RouteOptions{
			Stage:  wire.StageRetry,
			DLQ:    func(string) string { return wire.RetryDLQTopic },
			Policy: func(string) dlq.Policy { return dlq.Policy{MaxAttempts: 1} },
			Now:    now,
		})(t.handle)
		return t, nil
	}
	return base
}

type retryTask struct {
	now     func() time.Time
	metrics *Metrics
	tier    string
	handler dlq.Handler
	n       int
}

func (t *retryTask) Stores() []Changelogged { return nil }

func (t *retryTask) Handle(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
	return t.handler(ctx, rec, emit)
}

func (t *retryTask) Done(committed bool) {
	if committed && t.metrics != nil && t.n > 0 {
		t.metrics.redelivered.WithLabelValues(t.tier).Add(float64(t.n))
	}
	t.n = 0
}

var errNoOrigin = errors.New("retry record: no readable sluice-original-topic/-partition")

func (t *retryTask) handle(_ context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
	at, ok := wire.RetryAt(rec)
	if ok && t.now().Before(at) {
		return &dlq.WaitError{Until: at, Reason: "not-before"}
	}
	out, ok := dlq.Redelivery(rec)
	if !ok {
		return dlq.AsPermanent(fmt.Errorf("%w (%s/%d@%d)", errNoOrigin, rec.Topic, rec.Partition, rec.Offset))
	}
	emit(out)
	t.n++
	return nil
}
