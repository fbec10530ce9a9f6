package process

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Recompute recomputes the windows of one aggregation from its <from>.clean records
// with the live aggregate stage's own code (the task of Aggregate, its engine and its
// result encoding), but with in-memory state and no watermark: records are routed to
// the partition the repartition stage would give them, nothing closes and nothing is
// late until Finish closes every window. Events the live job dead-lettered as late are
// excluded by id (Exclude), so the recomputed windows hold the events the live windows
// accepted. See docs/OPERATIONS.md#fix-a-wrong-aggregation.
type Recompute struct {
	agg   *Aggregate
	tasks []*aggregateTask
	// From and To bound the window starts kept (Unix ms, [From, To)).
	from, to int64
	exclude  map[string]struct{}
	runID    string
	out      []*kgo.Record
	// Read counts the records given to Add; Excluded those left out as late in the live
	// job, Early those in no window of the range (event time before From).
	Read, Excluded, Early int
}

// NewRecompute builds a recompute of aggregation a (its <from> topic has partitions
// partitions) keeping windows that start in [from, to); codec encodes agg.<name> results
// and runID is written in every result's HeaderReprocessID.
func NewRecompute(a config.Aggregation, partitions int32, dec Decoder, codec *schema.Codec, now func() time.Time, from, to time.Time, runID string) (*Recompute, error) {
	if !from.Before(to) {
		return nil, fmt.Errorf("reprocess: --from %s is not before --to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if partitions <= 0 {
		return nil, fmt.Errorf("reprocess: %d partitions", partitions)
	}
	if now == nil {
		now = time.Now
	}
	ag := &Aggregate{Agg: a, Partitions: partitions, Decoder: dec, Codec: codec, Now: now}
	if _, err := ag.StageConfig(StageConfig{}); err != nil {
		return nil, err
	}
	r := &Recompute{agg: ag, from: from.UnixMilli(), to: to.UnixMilli(), exclude: map[string]struct{}{}, runID: runID}
	for p := range partitions {
		t, err := ag.newTask(TaskID{Topic: wire.RepartitionTopic(a.Name), Partition: p})
		if err != nil {
			return nil, err
		}
		r.tasks = append(r.tasks, t.(*aggregateTask))
	}
	return r, nil
}

// recomputeSource is the source of every recomputed event: not one of the spec's
// sources, so events never move stream time and nothing closes before Finish.
const recomputeSource = "sluice-reprocess"

// Spec is the engine spec of the aggregation (window sizes, grace, sources).
func (r *Recompute) Spec() stream.Spec { return r.agg.spec }

// Exclude leaves out the event with id eventID (it was late in the live job).
func (r *Recompute) Exclude(eventID string) { r.exclude[eventID] = struct{}{} }

// Add aggregates one record of <from>.clean. A record that cannot be decoded is an
// error (the live repartition stage dead-letters it; its event is in no window).
func (r *Recompute) Add(ctx context.Context, rec *kgo.Record) error {
	r.Read++
	if _, late := r.exclude[wire.Header(rec, wire.HeaderEventID)]; late {
		r.Excluded++
		return nil
	}
	v, err := decodeProjected(ctx, r.agg.Decoder, r.agg.proj, rec.Value)
	if err != nil {
		return fmt.Errorf("%s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
	}
	ts := rec.Timestamp.UnixMilli()
	if et, ok := v["event_time"].(time.Time); ok {
		ts = et.UnixMilli()
	}
	if ts < r.from {
		// In no window that starts at or after from.
		r.Early++
		return nil
	}
	vals := make([]string, 0, len(r.agg.Agg.GroupBy))
	for _, f := range r.agg.Agg.GroupBy {
		vals = append(vals, groupValue(v[f]))
	}
	key := stream.GroupKey(vals)
	p := partitionFor(key, r.agg.Partitions)
	// Routed as the repartition stage routes it, from a source outside the spec's
	// sources: its event moves no watermark (stream.Spec).
	rp := &kgo.Record{Topic: wire.RepartitionTopic(r.agg.Agg.Name), Partition: p, Key: []byte(key),
		Value: rec.Value, Headers: rec.Headers, Timestamp: rec.Timestamp}
	var unexpected int
	err = r.tasks[p].handleDecoded(rp, recomputeSource, v, func(*kgo.Record) { unexpected++ })
	if err == nil && unexpected > 0 {
		// Without a watermark nothing closes and nothing is late.
		err = fmt.Errorf("recompute: %d outputs before the end", unexpected)
	}
	if err != nil {
		return err
	}
	// The state is in memory and never goes to a changelog: make each write permanent
	// now so no pending changelog record piles up.
	return commitStores(r.tasks[p])
}

func commitStores(t *aggregateTask) error {
	for _, st := range t.Stores() {
		if st.Dirty() {
			if err := st.CommitAt(stream.NoCheckpoint); err != nil {
				return err
			}
		}
	}
	return nil
}

// Finish closes every window and returns the results of those that start in
// [from, to), as records of agg.<name> (key, partition and value as the live stage
// writes them) carrying HeaderReprocessID. Call it once, after the last Add.
func (r *Recompute) Finish() ([]*kgo.Record, error) {
	// Past every window's close instant (end + grace, or a session's last + gap + grace).
	end := int64(math.MaxInt64 / 4)
	for _, t := range r.tasks {
		collect := func(rec *kgo.Record) {
			if rec.Topic != t.out {
				return
			}
			if st, ok := windowStartOfKey(rec.Key); ok && st >= r.from && st < r.to {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: wire.HeaderReprocessID, Value: []byte(r.runID)})
				r.out = append(r.out, rec)
			}
		}
		for _, src := range r.agg.spec.Sources {
			if err := t.emit(t.eng.Advance(src, end), collect); err != nil {
				return nil, err
			}
		}
	}
	return r.out, nil
}

// windowStartOfKey is the window start of an agg.<name> record key ("<group>@<start>").
func windowStartOfKey(k []byte) (int64, bool) {
	s := string(k)
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(s[i+1:], 10, 64)
	return v, err == nil
}

// WindowStartOfKey is the window start (Unix ms) an agg.<name> record key names.
func WindowStartOfKey(k []byte) (int64, bool) { return windowStartOfKey(k) }
