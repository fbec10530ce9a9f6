package process

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// SourceID names partition p of topic as a watermark source.
func SourceID(topic string, p int32) string { return topic + "/" + strconv.Itoa(int(p)) }

// Repartition is the stage that re-keys <from>.clean by an aggregation's group and
// writes it to the aggregation's repartition topic. With every transaction each task also
// writes a watermark marker (its source partition's largest event time) to every
// repartition partition, so downstream tasks know every source's progress.
type Repartition struct {
	Agg        config.Aggregation
	Partitions int32
	Decoder    Decoder
	// IdleAdvance, if > 0, advances a caught-up source's watermark to now-IdleAdvance once
	// it has seen no records for IdleAdvance (wall clock).
	IdleAdvance time.Duration
	// Lag returns how many records of topic/partition consumer group has not committed
	// (for group "" : how far offset next is behind the high watermark). Idle advance asks
	// it whether a quiet source partition is really caught up or has a backlog, here and
	// upstream: partition p of <from>.clean is fed by partition p of <from> through the
	// clean stage.
	Lag     func(ctx context.Context, group, topic string, partition int32, next int64) (int64, error)
	Now     func() time.Time
	Metrics *Metrics

	proj *schema.Projection // the fields handle reads (set by StageConfig)
}

// StageConfig fills base with the repartition stage.
func (r *Repartition) StageConfig(base StageConfig) StageConfig {
	base.Name = wire.StageRepartition(r.Agg.Name)
	r.proj = projection(r.Agg.GroupBy)
	base.Inputs = []string{wire.CleanTopic(r.Agg.From)}
	base.Changelog = func(string, string) string { return "" } // stateless
	base.NewTask = func(id TaskID) (Task, error) {
		rt := &repartitionTask{r: r, id: id, source: SourceID(id.Topic, id.Partition),
			out: wire.RepartitionTopic(r.Agg.Name), wm: stream.NoWatermark, sent: stream.NoWatermark, next: -1}
		rt.handler = dlq.DeadLetter(dlq.DeadLetterOptions{Stage: base.Name,
			DLQ: func(string) string { return wire.DLQTopic(r.Agg.From) }, Now: r.Now})(rt.handle)
		return rt, nil
	}
	if r.IdleAdvance > 0 && base.TickInterval == 0 {
		base.TickInterval = min(r.IdleAdvance/4, time.Second)
	}
	return base
}

type repartitionTask struct {
	r       *Repartition
	id      TaskID
	source  string
	out     string
	handler dlq.Handler
	// wm is the largest event time seen; sent the last watermark written downstream.
	wm, sent int64
	// next is the offset after the last record handled (-1: none yet).
	next       int64
	lastRecord time.Time
	// vals is the reused buffer of the current record's group values.
	vals []string
}

func (t *repartitionTask) Stores() []Changelogged { return nil }
func (t *repartitionTask) Done(bool)              {}

func (t *repartitionTask) Handle(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
	return t.handler(ctx, rec, emit)
}

func (t *repartitionTask) handle(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
	ev, err := decodeProjected(ctx, t.r.Decoder, t.r.proj, rec.Value)
	if err != nil {
		return err
	}
	t.vals = t.vals[:0]
	for _, f := range t.r.Agg.GroupBy {
		t.vals = append(t.vals, groupValue(ev[f]))
	}
	key := stream.GroupKey(t.vals)
	ts := rec.Timestamp.UnixMilli()
	if et, ok := ev["event_time"].(time.Time); ok {
		ts = et.UnixMilli()
	}
	if ts > t.wm {
		t.wm = ts
	}
	t.lastRecord = t.r.Now()
	t.next = rec.Offset + 1
	hs := make([]kgo.RecordHeader, 0, len(rec.Headers)+1)
	for _, h := range rec.Headers {
		if h.Key != wire.HeaderSource {
			hs = append(hs, h)
		}
	}
	hs = append(hs, kgo.RecordHeader{Key: wire.HeaderSource, Value: []byte(t.source)})
	emit(&kgo.Record{
		Topic:     t.out,
		Partition: partitionFor(key, t.r.Partitions),
		Key:       []byte(key),
		Value:     rec.Value,
		Headers:   hs,
		Timestamp: rec.Timestamp,
	})
	return nil
}

// Tick writes a watermark marker to every repartition partition when the watermark moved
// (in the same transaction as the data it covers), and applies idle advance.
func (t *repartitionTask) Tick(ctx context.Context, now time.Time, emit func(*kgo.Record)) error {
	if t.r.IdleAdvance > 0 && t.next >= 0 && now.Sub(t.lastRecord) >= t.r.IdleAdvance {
		if idle := now.Add(-t.r.IdleAdvance).UnixMilli(); idle > t.wm && t.caughtUp(ctx) {
			t.wm = idle
		}
	}
	if t.wm <= t.sent {
		return nil
	}
	v := []byte(strconv.FormatInt(t.wm, 10))
	for p := range t.r.Partitions {
		emit(&kgo.Record{
			Topic:     t.out,
			Partition: p,
			Headers: []kgo.RecordHeader{
				{Key: wire.HeaderSource, Value: []byte(t.source)},
				{Key: wire.HeaderWatermark, Value: v},
			},
			Timestamp: time.UnixMilli(t.wm),
		})
	}
	t.sent = t.wm
	return nil
}

// caughtUp reports whether nothing is left to fetch from the source partition and the
// clean stage has nothing left of the raw partition that feeds it. The clean topic is
// written transactionally, so a marker may follow the last record: a position one short
// of the high watermark is caught up. Anything unknown is not caught up.
func (t *repartitionTask) caughtUp(ctx context.Context) bool {
	if t.r.Lag == nil {
		return false
	}
	own, err := t.r.Lag(ctx, "", t.id.Topic, t.id.Partition, t.next)
	if err != nil || own > 1 {
		return false
	}
	up, err := t.r.Lag(ctx, wire.GroupID(wire.StageClean), t.r.Agg.From, t.id.Partition, 0)
	return err == nil && up == 0
}

// partitionFor spreads group keys over n partitions (FNV-1a).
func partitionFor(key string, n int32) int32 {
	// hash/fnv's New32a, inlined: no hasher or []byte(key) allocated per record.
	h := uint32(fnvOffset32)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= fnvPrime32
	}
	return int32(h % uint32(n))
}

// FNV-1a 32-bit parameters (hash/fnv).
const (
	fnvOffset32 = 2166136261
	fnvPrime32  = 16777619
)

// groupValue renders a group_by field value as a string.
func groupValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	default:
		return fmt.Sprint(x)
	}
}
