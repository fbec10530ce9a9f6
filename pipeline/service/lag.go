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
	// inputs are the input topics of each group: a group that has not joined or
	// committed yet lags by all of its inputs' retained records.
	inputs map[string][]string
	lag    *prometheus.GaugeVec
}

// groupInputs are the input topics of every stage's consumer group.
func groupInputs(p *config.Pipeline) map[string][]string {
	clean, snk := wire.GroupID(wire.StageClean), wire.GroupID(wire.StageSink)
	in := map[string][]string{}
	for _, t := range p.Topics {
		in[clean] = append(in[clean], t.Name)
		in[snk] = append(in[snk], wire.CleanTopic(t.Name))
	}
	for _, tier := range RetryTiers(p) {
		in[wire.GroupID(wire.StageRetry)] = append(in[wire.GroupID(wire.StageRetry)], tier.Topic)
	}
	for _, a := range p.Aggregations {
		in[wire.GroupID(wire.StageRepartition(a.Name))] = []string{wire.CleanTopic(a.From)}
		in[wire.GroupID(wire.StageAggregate(a.Name))] = []string{wire.RepartitionTopic(a.Name)}
		in[snk] = append(in[snk], wire.AggTopic(a.Name))
	}
	return in
}

func newLagMonitor(d Deps) (*lagMonitor, error) {
	cl, err := kgo.NewClient(d.Kafka.Opts()...)
	if err != nil {
		return nil, err
	}
	m := &lagMonitor{adm: kadm.NewClient(cl), groups: Groups(d.Pipeline), inputs: groupInputs(d.Pipeline),
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
	type groupTopic struct{ group, topic string }
	seen := map[groupTopic]bool{}
	lags.Each(func(g kadm.DescribedGroupLag) {
		for topic, ps := range g.Lag {
			for p, l := range ps {
				if l.Err != nil || l.Lag < 0 {
					continue
				}
				seen[groupTopic{g.Group, topic}] = true
				m.lag.WithLabelValues(g.Group, topic, strconv.Itoa(int(p))).Set(float64(l.Lag))
			}
		}
	})
	// A group that has not joined or committed on an input yet (a stage starting, or
	// stopped before its first commit) reads it from the start: it lags by every
	// retained record, not by nothing.
	var missing []string
	for g, ts := range m.inputs {
		for _, t := range ts {
			if !seen[groupTopic{g, t}] {
				missing = append(missing, t)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	starts, err := m.adm.ListStartOffsets(ctx, missing...)
	if err != nil {
		return err
	}
	ends, err := m.adm.ListEndOffsets(ctx, missing...)
	if err != nil {
		return err
	}
	for g, ts := range m.inputs {
		for _, t := range ts {
			if seen[groupTopic{g, t}] {
				continue
			}
			ends.Each(func(e kadm.ListedOffset) {
				s, ok := starts.Lookup(e.Topic, e.Partition)
				if e.Topic != t || e.Err != nil || !ok || s.Err != nil || e.Offset < s.Offset {
					return
				}
				m.lag.WithLabelValues(g, t, strconv.Itoa(int(e.Partition))).Set(float64(e.Offset - s.Offset))
			})
		}
	}
	return nil
}

// run refreshes every interval until ctx ends (StartMonitor did the first refresh).
func (m *lagMonitor) run(ctx context.Context, every time.Duration) {
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
