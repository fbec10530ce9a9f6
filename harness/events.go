package harness

import (
	"context"
	"hash/fnv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Produced is one event written by ProduceEvents: where it went and what it was.
type Produced struct {
	Partition int32
	Offset    int64
	EventID   string
	Event     map[string]any
}

// ProduceEvents encodes events exactly as the ingest API would and writes them straight
// to the raw topic (faster than HTTP for large runs), partitioned by the hash of the key
// field like a keyed producer. It returns them in the order written per partition, with
// offsets.
func (p *Pipeline) ProduceEvents(topic string, events []map[string]any) []Produced {
	p.t.Helper()
	ts, ok := p.Deps.Schemas[topic]
	if !ok {
		p.t.Fatalf("produce events: unknown topic %s", topic)
	}
	enc := ingest.NewEncoder(ingest.Topic{Name: topic, KeyField: ts.Topic.KeyField,
		Subject: wire.Subject(topic), Codec: ts.Raw}, time.Now, 100*365*24*time.Hour)
	recs := make([]*kgo.Record, len(events))
	out := make([]Produced, len(events))
	for i, ev := range events {
		r, id, err := enc.Record(ev, "")
		if err != nil {
			p.t.Fatalf("produce events: event %d: %v", i, err)
		}
		h := fnv.New32a()
		_, _ = h.Write(r.Key)
		r.Partition = int32(h.Sum32() % uint32(ts.Topic.Partitions))
		recs[i] = r
		out[i] = Produced{Partition: r.Partition, EventID: id, Event: ev}
	}
	ctx, cancel := context.WithTimeout(p.t.Context(), 60*time.Second)
	defer cancel()
	const chunk = 2000
	for i := 0; i < len(recs); i += chunk {
		end := min(i+chunk, len(recs))
		if err := p.cl.ProduceSync(ctx, recs[i:end]...).FirstErr(); err != nil {
			p.t.Fatalf("produce events: %v", err)
		}
	}
	for i, r := range recs {
		out[i].Offset = r.Offset
	}
	return out
}

// Groups lists the consumer groups of every stage of the pipeline, for WaitCaughtUp.
func (p *Pipeline) Groups() map[string][]string {
	clean := wire.GroupID(wire.StageClean)
	g := map[string][]string{clean: nil}
	for _, t := range p.Deps.Pipeline.Topics {
		g[clean] = append(g[clean], t.Name)
	}
	if p.cleanOnly {
		return g
	}
	for _, a := range p.Deps.Pipeline.Aggregations {
		g[wire.GroupID(wire.StageRepartition(a.Name))] = []string{wire.CleanTopic(a.From)}
		g[wire.GroupID(wire.StageAggregate(a.Name))] = []string{wire.RepartitionTopic(a.Name)}
	}
	return g
}

// WaitAllCaughtUp waits until every stage has committed everything in its inputs, in
// pipeline order (clean, then repartition, then aggregate).
func (p *Pipeline) WaitAllCaughtUp(timeout time.Duration) {
	p.t.Helper()
	g := p.Groups()
	clean := wire.GroupID(wire.StageClean)
	p.WaitCaughtUp(clean, timeout, g[clean]...)
	if p.cleanOnly {
		return
	}
	for _, stage := range []func(string) string{wire.StageRepartition, wire.StageAggregate} {
		for _, a := range p.Deps.Pipeline.Aggregations {
			group := wire.GroupID(stage(a.Name))
			p.WaitCaughtUp(group, timeout, g[group]...)
		}
	}
}
