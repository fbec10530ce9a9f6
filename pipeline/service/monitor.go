package service

import (
	"context"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// DefaultMonitorInterval is how often StartMonitor refreshes the dead-letter and retry
// gauges.
const DefaultMonitorInterval = 15 * time.Second

// StartMonitor publishes, on d.Registry, the depth and oldest age of every dead-letter
// topic of the pipeline, the depth of its retry topics and the consumer lag of every
// stage's group (sluice_consumer_lag), refreshed every interval
// (DefaultMonitorInterval if <= 0) until stop is called. One per process: the gauges
// are registered once.
func StartMonitor(ctx context.Context, d Deps, interval time.Duration) (stop func(), err error) {
	d.defaults()
	if interval <= 0 {
		interval = DefaultMonitorInterval
	}
	cfg := dlq.MonitorConfig{Opts: d.Kafka.Opts(), RetryGroup: wire.GroupID(wire.StageRetry), Now: d.Now}
	for _, t := range d.Pipeline.Topics {
		cfg.DLQTopics = append(cfg.DLQTopics, wire.DLQTopic(t.Name))
	}
	for _, tier := range RetryTiers(d.Pipeline) {
		cfg.RetryTopics = append(cfg.RetryTopics, tier.Topic)
	}
	if len(cfg.RetryTopics) > 0 {
		cfg.DLQTopics = append(cfg.DLQTopics, wire.RetryDLQTopic)
	}
	if len(d.Pipeline.Aggregations) > 0 {
		cfg.DLQTopics = append(cfg.DLQTopics, wire.SinkDLQTopic)
	}
	m, err := dlq.NewMonitor(cfg, d.Registry)
	if err != nil {
		return nil, err
	}
	lm, err := newLagMonitor(d)
	if err != nil {
		m.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	// The first lag refresh is done before the process says it is up, so the lag of
	// every stage is on /metrics from then on (bounded by refresh's timeout).
	_ = lm.refresh(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { m.Run(ctx, interval) })
	wg.Go(func() { lm.run(ctx, interval) })
	return func() {
		cancel()
		wg.Wait()
		m.Close()
		lm.close()
	}, nil
}
