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

// Aggregate is the stage that aggregates an aggregation's repartition topic in event-time
// windows and writes results to agg.<name> and late records to <from>.late. Window state
// and per-source watermarks live in two changelogged stores.
type Aggregate struct {
	Agg        config.Aggregation
	Partitions int32
	Decoder    Decoder
	// Codec encodes agg.<name> results.
	Codec   *schema.Codec
	Now     func() time.Time
	Metrics *Metrics

	state    State // from the StageConfig
	spec     stream.Spec
	measures []config.Measure
	proj     *schema.Projection // the fields handle reads
}

// aggregateTick is the aggregate stage's tick interval (StageConfig.TickInterval) when
// none is set: how often an idle stage emits windows left closed by the per-transaction
// bound.
const aggregateTick = time.Second

// Spec converts an aggregation of the pipeline file to the engine's spec; sources are
// the partitions of <from>.clean.
func Spec(a config.Aggregation, partitions int32) (stream.Spec, []config.Measure, error) {
	ms, err := a.ParsedMeasures()
	if err != nil {
		return stream.Spec{}, nil, err
	}
	s := stream.Spec{
		Name:    a.Name,
		Type:    stream.WindowType(a.Window.Type),
		Size:    a.Window.Size.D().Milliseconds(),
		Advance: a.Window.Advance.D().Milliseconds(),
		Gap:     a.Window.Gap.D().Milliseconds(),
		Grace:   a.Window.Grace.D().Milliseconds(),
		Emit:    stream.EmitMode(a.Emit),
	}
	if s.Type == stream.Tumbling {
		s.Advance = s.Size
	}
	if s.Emit == "" {
		s.Emit = stream.EmitFinal
	}
	var kept []config.Measure
	for _, m := range ms {
		if m.Func == config.MeasureCount {
			continue
		}
		kept = append(kept, m)
		s.Measures = append(s.Measures, stream.Measure{Func: stream.MeasureFunc(m.Func), Field: m.Field})
	}
	for p := range partitions {
		s.Sources = append(s.Sources, SourceID(wire.CleanTopic(a.From), p))
	}
	return s, kept, nil
}

// StageConfig fills base with the aggregate stage.
func (a *Aggregate) StageConfig(base StageConfig) (StageConfig, error) {
	spec, ms, err := Spec(a.Agg, a.Partitions)
	if err != nil {
		return base, err
	}
	a.spec, a.measures = spec, ms
	fields := make([]string, 0, len(ms))
	for _, m := range ms {
		fields = append(fields, m.Field)
	}
	a.proj = projection(a.Agg.GroupBy, fields...)
	base.Name = wire.StageAggregate(a.Agg.Name)
	base.Inputs = []string{wire.RepartitionTopic(a.Agg.Name)}
	base.Changelog = func(_, store string) string { return wire.AggChangelogTopic(a.Agg.Name, store) }
	base.NewTask = a.newTask
	if base.TickInterval == 0 {
		// Windows a watermark jump closed beyond one transaction's bound
		// (stream.DefaultExpiryLimit) are emitted by the next transactions: ticks run
		// them when no records arrive.
		base.TickInterval = aggregateTick
	}
	a.state = base.State
	return base, nil
}

func (a *Aggregate) newTask(id TaskID) (Task, error) {
	stage := wire.StageAggregate(a.Agg.Name)
	windows, err := openStore[*stream.WindowState](a.state, stage, id, "windows", stream.WindowStateCodec{})
	if err != nil {
		return nil, err
	}
	marks, err := openStore[int64](a.state, stage, id, "marks", stream.Int64Codec{})
	if err != nil {
		_ = windows.Close()
		return nil, err
	}
	eng, err := stream.NewAggregator(a.spec, windows, marks)
	if err != nil {
		_ = windows.Close()
		_ = marks.Close()
		return nil, err
	}
	t := &aggregateTask{a: a, id: id, eng: eng, windows: windows, marks: marks,
		out: wire.AggTopic(a.Agg.Name), late: wire.LateTopic(a.Agg.From)}
	t.handler = dlq.DeadLetter(dlq.DeadLetterOptions{Stage: wire.StageAggregate(a.Agg.Name),
		DLQ: func(string) string { return wire.DLQTopic(a.Agg.From) }, Now: a.Now})(t.handle)
	return t, nil
}

type aggregateTask struct {
	a       *Aggregate
	id      TaskID
	eng     *stream.Aggregator
	windows *stream.Store[*stream.WindowState]
	marks   *stream.Store[int64]
	out     string
	late    string
	handler dlq.Handler
	// late events and results (their ingest times) of the open transaction, counted when
	// it commits: an aborted batch runs again.
	lates   int
	results []int64
	// groupVals is the reused buffer of the current record's group values.
	groupVals []string
	// statsAt is when the stores' disk and cache use was last published.
	statsAt time.Time
}

func (t *aggregateTask) Stores() []Changelogged { return []Changelogged{t.windows, t.marks} }
func (t *aggregateTask) Restored()              { t.eng.Restored() }

func (t *aggregateTask) Done(committed bool) {
	if committed {
		now := t.a.Now()
		t.a.Metrics.aggregateState(t.a.Agg.Name, t.id.Partition, t.eng, t.a.spec.Sources, now)
		if now.Sub(t.statsAt) >= time.Second {
			// Disk and cache use once a second: reading them walks the stores' metrics.
			t.statsAt = now
			t.a.Metrics.storeState(wire.StageAggregate(t.a.Agg.Name), t.id, t.windows)
			t.a.Metrics.storeState(wire.StageAggregate(t.a.Agg.Name), t.id, t.marks)
		} else {
			t.a.Metrics.stateKeys(wire.StageAggregate(t.a.Agg.Name), "windows", t.id.Topic, t.id.Partition, t.windows.Len())
		}
		for range t.lates {
			t.a.Metrics.lateEvent(t.a.Agg.Name)
		}
		t.a.Metrics.largestBatch(wire.StageAggregate(t.a.Agg.Name), t.id, "windows", t.eng.LargestCloseBatch())
		for _, its := range t.results {
			t.a.Metrics.result(t.a.Agg.Name, its, now)
		}
	}
	t.lates, t.results = 0, t.results[:0]
}

func (t *aggregateTask) Handle(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
	return t.handler(ctx, rec, emit)
}

func (t *aggregateTask) handle(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
	source := wire.Header(rec, wire.HeaderSource)
	if wm := wire.Header(rec, wire.HeaderWatermark); wm != "" {
		ms, err := strconv.ParseInt(wm, 10, 64)
		if err != nil || source == "" {
			return dlq.AsPermanent(fmt.Errorf("bad watermark marker %q from %q", wm, source))
		}
		return t.emit(t.eng.Advance(source, ms), emit)
	}
	v, err := decodeProjected(ctx, t.a.Decoder, t.a.proj, rec.Value)
	if err != nil {
		return err
	}
	return t.handleDecoded(rec, source, v, emit)
}

// handleDecoded aggregates rec, whose value decoded (projected) to v, from source.
func (t *aggregateTask) handleDecoded(rec *kgo.Record, source string, v map[string]any, emit func(*kgo.Record)) error {
	// The decoded (projected) record is the event's Values: the engine reads only the
	// measured fields from it and keeps none of it.
	ev := stream.Event{
		Source:  source,
		Time:    rec.Timestamp.UnixMilli(),
		Group:   string(rec.Key),
		EventID: wire.Header(rec, wire.HeaderEventID),
		Values:  v,
	}
	if et, ok := v["event_time"].(time.Time); ok {
		ev.Time = et.UnixMilli()
	}
	if its, ok := wire.Int(rec, wire.HeaderIngestTS); ok {
		ev.IngestTS = its
	}
	// The engine copies the group values it keeps, so one buffer serves every record.
	t.groupVals = t.groupVals[:0]
	for _, f := range t.a.Agg.GroupBy {
		t.groupVals = append(t.groupVals, groupValue(v[f]))
	}
	ev.GroupValues = t.groupVals
	results, late := t.eng.Add(ev)
	if late != nil {
		t.lates++ // counted when the transaction commits (Done)
		hs := make([]kgo.RecordHeader, 0, len(rec.Headers)+3)
		for _, h := range rec.Headers {
			if h.Key != wire.HeaderLateReason && h.Key != wire.HeaderAggregation && h.Key != wire.HeaderClass {
				hs = append(hs, h)
			}
		}
		hs = append(hs,
			kgo.RecordHeader{Key: wire.HeaderClass, Value: []byte(dlq.Late)},
			kgo.RecordHeader{Key: wire.HeaderLateReason, Value: []byte(late.Reason)},
			kgo.RecordHeader{Key: wire.HeaderAggregation, Value: []byte(t.a.Agg.Name)},
		)
		emit(&kgo.Record{Topic: t.late, Partition: t.id.Partition, Key: rec.Key, Value: rec.Value, Headers: hs, Timestamp: rec.Timestamp})
	}
	return t.emit(results, emit)
}

// Tick emits windows that closed beyond the previous transactions' bound (a watermark
// jump): without it they would wait for the next record.
func (t *aggregateTask) Tick(_ context.Context, _ time.Time, emit func(*kgo.Record)) error {
	if !t.eng.CloseBacklog() {
		return nil
	}
	return t.emit(t.eng.CloseDue(), emit)
}

// emit encodes results to agg.<name>: key = group key + "@" + window start.
func (t *aggregateTask) emit(rs []stream.Result, emit func(*kgo.Record)) error {
	if len(rs) == 0 {
		return nil
	}
	now := t.a.Now().UTC().Truncate(time.Millisecond)
	for _, r := range rs {
		group := make(map[string]any, len(r.GroupValues))
		for i, f := range t.a.Agg.GroupBy {
			if i < len(r.GroupValues) {
				group[f] = r.GroupValues[i]
			}
		}
		val := map[string]any{
			"aggregation":  t.a.Agg.Name,
			"group":        group,
			"window_start": time.UnixMilli(r.Start).UTC(),
			"window_end":   time.UnixMilli(r.End).UTC(),
			"count":        r.Count,
			"emitted_at":   now,
			"final":        r.Final,
		}
		for i, m := range r.Measures {
			switch {
			case m.Null:
				val[m.Column] = nil
			case i < len(t.a.measures) && t.a.measures[i].Func == config.MeasureCountDistinct:
				val[m.Column] = int64(m.Value)
			default:
				val[m.Column] = m.Value
			}
		}
		b, err := t.a.Codec.AppendEncode(nil, val)
		if err != nil {
			return dlq.AsTransient(fmt.Errorf("encode %s result: %w", t.a.Agg.Name, err))
		}
		emit(&kgo.Record{
			Topic:     t.out,
			Partition: t.id.Partition,
			Key:       []byte(r.Group + "@" + strconv.FormatInt(r.Start, 10)),
			Value:     b,
			Timestamp: time.UnixMilli(r.End),
			Headers: []kgo.RecordHeader{
				{Key: wire.HeaderEventID, Value: []byte(r.EventID)},
				{Key: wire.HeaderIngestTS, Value: strconv.AppendInt(nil, r.IngestTS, 10)},
			},
		})
		t.results = append(t.results, r.IngestTS)
	}
	return nil
}
