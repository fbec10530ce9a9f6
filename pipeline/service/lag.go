package service

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Groups are the consumer groups of every stage of the pipeline.
func Groups(p *config.Pipeline) []string {
	gs := []string{wire.GroupID(wire.StageClean), wire.GroupID(wire.StageRetry), wire.GroupID(wire.StageSink)}
	for _, a := range p.Aggregations {
		gs = append(gs, wire.GroupID(wire.StageRepartition(a.Name)), wire.GroupID(wire.StageAggregate(a.Name)))
	}
	return gs
}

// lagMonitor publishes sluice_consumer_lag{group,topic,partition}: how many records of
// each input partition a stage's group has not committed yet (offsets, so transaction
// markers count: a caught-up transactional input shows 0 or 1).
type lagMonitor struct {
	adm    *kadm.Client
	groups []string
	lag    *prometheus.GaugeVec
}

func newLagMonitor(d Deps) (*lagMonitor, error) {
	cl, err := kgo.NewClient(d.Kafka.Opts()...)
	if err != nil {
		return nil, err
	}
	m := &lagMonitor{adm: kadm.NewClient(cl), groups: Groups(d.Pipeline),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_consumer_lag",
			Help: "Records of an input partition a stage's consumer group has not committed yet (end offset minus committed offset).",
		}, []string{"group", "topic", "partition"})}
	if err := d.Registry.Register(m.lag); err != nil {
		cl.Close()
		return nil, err
	}
	return m, nil
}

// refresh reads every group's lag once.
func (m *lagMonitor) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lags, err := m.adm.Lag(ctx, m.groups...)
	if err != nil {
		return err
	}
	lags.Each(func(g kadm.DescribedGroupLag) {
		for topic, ps := range g.Lag {
			for p, l := range ps {
				if l.Err != nil || l.Lag < 0 {
					continue
				}
				m.lag.WithLabelValues(g.Group, topic, strconv.Itoa(int(p))).Set(float64(l.Lag))
			}
		}
	})
	return nil
}

func (m *lagMonitor) run(ctx context.Context, every time.Duration) {
	_ = m.refresh(ctx)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = m.refresh(ctx)
		}
	}
}

func (m *lagMonitor) close() { m.adm.Close() }
