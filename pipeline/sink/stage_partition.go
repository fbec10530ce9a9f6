package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/wire"
)

type topicPartition struct {
	topic     string
	partition int32
}

// partition is one claimed topic-partition and what is buffered since its last flush.
// Only the polling goroutine touches a partition once it is in Stage.parts (the
// revocation callback only removes it from the map).
type partition struct {
	tp        topicPartition
	table     string
	aggregate bool

	epoch int64
	// next is the warehouse's NEXT_OFFSET as this owner knows it: the buffer's start.
	next int64
	// end is one past the last buffered offset; end == next when nothing is buffered.
	end int64
	// gen counts claims: records of a fetch polled before a re-claim are stale.
	gen int

	rows    []Row
	recs    []*kgo.Record // the record of each row, to dead-letter rejected rows
	letters []letter      // dead letters to produce before the next write
	bytes   int
	since   time.Time // when the buffer became non-empty

	// fenced partitions are paused: another sink claimed them. At reclaimAt this one
	// claims again if the group still assigns the partition here.
	fenced    bool
	reclaimAt time.Time

	warnedBehind bool
}

// letter is a dead letter waiting to be produced.
type letter struct {
	rec   *kgo.Record // the dead letter
	orig  *kgo.Record
	class string // sluice_sink_errors_total class
	err   error
}

func (p *partition) empty() bool { return p.end == p.next }

func (p *partition) full(rows, bytes int) bool { return len(p.rows) >= rows || p.bytes >= bytes }

// committed empties the buffer after its range was committed up to end.
func (p *partition) committed(end int64) {
	p.next, p.end = end, end
	clear(p.rows)
	clear(p.recs)
	p.rows, p.recs = p.rows[:0], p.recs[:0]
	p.bytes = 0
	p.since = time.Time{}
}

// claimed starts over from a fresh claim, dropping the buffer.
func (p *partition) claimed(epoch, next int64) {
	p.committed(next)
	clear(p.letters)
	p.letters = p.letters[:0]
	p.epoch = epoch
	p.gen++
	p.fenced = false
	p.reclaimAt = time.Time{}
	p.warnedBehind = false
}

// adjust is the AdjustFetchOffsetsFn: it claims every newly assigned partition in the
// warehouse and starts it at the claimed offset, whatever the group committed.
func (s *Stage) adjust(ctx context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, ps := range offs {
		table, _, agg, ok := s.cfg.Schemas(topic)
		if !ok {
			return nil, fmt.Errorf("sink: assigned topic %s has no schema", topic)
		}
		if agg {
			table = AggregatesTable
		}
		for part := range ps {
			tp := topicPartition{topic, part}
			epoch, next, err := s.claim(ctx, tp, table)
			if err != nil {
				return nil, err
			}
			p := &partition{tp: tp, table: table, aggregate: agg}
			p.claimed(epoch, next)
			s.mu.Lock()
			s.parts[tp] = p
			s.mu.Unlock()
			ps[part] = kgo.NewOffset().At(next).WithEpoch(-1)
			s.log.Info("partition claimed", "topic", topic, "partition", part, "offset", next, "epoch", epoch)
		}
	}
	return offs, nil
}

// claim claims tp, retrying transient failures until ctx ends.
func (s *Stage) claim(ctx context.Context, tp topicPartition, table string) (epoch, next int64, err error) {
	for attempt := 1; ; attempt++ {
		epoch, next, err = s.cfg.Warehouse.Claim(ctx, tp.topic, tp.partition)
		if err == nil {
			return epoch, next, nil
		}
		if ctx.Err() != nil {
			return 0, 0, fmt.Errorf("sink: claim %s/%d: %w", tp.topic, tp.partition, context.Cause(ctx))
		}
		s.m.failed(table, ErrClassTransient, 1)
		s.log.Warn("claim failed; retrying", "topic", tp.topic, "partition", tp.partition, "attempt", attempt, "err", err)
		if err := s.sleep(ctx, attempt); err != nil {
			return 0, 0, err
		}
	}
}

// revoked forgets revoked or lost partitions and drops their buffers.
func (s *Stage) revoked(_ context.Context, cl *kgo.Client, rs map[string][]int32) {
	resume := map[string][]int32{}
	s.mu.Lock()
	for topic, ps := range rs {
		for _, part := range ps {
			tp := topicPartition{topic, part}
			p, ok := s.parts[tp]
			if !ok {
				continue
			}
			if p.fenced {
				resume[topic] = append(resume[topic], part)
			}
			delete(s.parts, tp)
			s.lag.drop(tp)
			s.m.forget(s, tp, false)
			s.log.Info("partition revoked", "topic", topic, "partition", part, "dropped", p.end-p.next)
		}
	}
	s.mu.Unlock()
	// A paused partition stays paused across assignments: unpause it now, or it would
	// stall if it came back to this instance.
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(resume)
	}
}

// reclaimDue claims the fenced partitions whose retry time came and that the group
// still assigns here, seeks them and resumes them. Called by the polling goroutine
// before it allows a rebalance.
func (s *Stage) reclaimDue(ctx context.Context) error {
	now := s.cfg.Now()
	for _, p := range s.snapshot() {
		if !p.fenced || now.Before(p.reclaimAt) {
			continue
		}
		if err := s.reclaim(ctx, p); err != nil {
			return err
		}
		s.cl.ResumeFetchPartitions(map[string][]int32{p.tp.topic: {p.tp.partition}})
	}
	return nil
}

// reclaim claims p again and seeks the consumer to the claimed offset.
func (s *Stage) reclaim(ctx context.Context, p *partition) error {
	epoch, next, err := s.claim(ctx, p.tp, p.table)
	if err != nil {
		return err
	}
	p.claimed(epoch, next)
	s.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{p.tp.topic: {p.tp.partition: {Epoch: -1, Offset: next}}})
	s.log.Info("partition claimed again", "topic", p.tp.topic, "partition", p.tp.partition, "offset", next, "epoch", epoch)
	return nil
}

// fence stops writing p: another owner claimed it. Its fetches pause until it is
// revoked or reclaimDue claims it again.
func (s *Stage) fence(p *partition) {
	p.claimed(p.epoch, p.next)
	p.fenced = true
	p.reclaimAt = s.cfg.Now().Add(s.cfg.FencedRetry)
	s.m.forget(s, p.tp, false)
	s.lag.drop(p.tp)
	s.mu.Lock()
	current := s.parts[p.tp] == p
	s.mu.Unlock()
	if current { // else a newer claim replaced p, and its partition must keep fetching
		s.cl.PauseFetchPartitions(map[string][]int32{p.tp.topic: {p.tp.partition}})
	}
}

// add buffers one record: a control record only extends the range, a record that
// cannot become a row becomes a dead letter. It changes nothing when it fails (only
// when ctx ends).
func (s *Stage) add(ctx context.Context, p *partition, r *kgo.Record) error {
	if r.Attrs.IsControl() {
		s.extend(p, r, 0)
		return nil
	}
	vals, id, err := s.decode(ctx, r)
	class := ErrClassUndecodable
	if err == nil && !p.aggregate {
		err = s.ensureSchema(ctx, p.table, id)
		class = ErrClassIncompatible
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		p.letters = append(p.letters, s.letter(r, class, err))
		s.extend(p, r, len(r.Key)+len(r.Value))
		return nil
	}
	p.rows = append(p.rows, Row{Offset: r.Offset, EventID: wire.Header(r, wire.HeaderEventID), IngestTS: ingestTS(r), Values: vals})
	p.recs = append(p.recs, r)
	s.extend(p, r, len(r.Key)+len(r.Value))
	return nil
}

func (s *Stage) extend(p *partition, r *kgo.Record, bytes int) {
	if p.empty() {
		p.since = s.cfg.Now()
	}
	p.end = r.Offset + 1
	p.bytes += bytes
}

// decode decodes r's value, retrying transient failures (registry unavailable) until
// ctx ends. A returned error is permanent, or ctx's.
func (s *Stage) decode(ctx context.Context, r *kgo.Record) (map[string]any, int, error) {
	for attempt := 1; ; attempt++ {
		vals, id, err := s.cfg.Decoder.Decode(ctx, r.Value)
		if err == nil || dlq.ClassOf(err) == dlq.Permanent {
			return vals, id, err
		}
		if ctx.Err() != nil {
			return nil, 0, context.Cause(ctx)
		}
		table, _, _, _ := s.cfg.Schemas(r.Topic)
		s.m.failed(table, ErrClassTransient, 1)
		s.log.Warn("decode failed; retrying", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempt", attempt, "err", err)
		if err := s.sleep(ctx, attempt); err != nil {
			return nil, 0, err
		}
	}
}

// ensureSchema makes table fit writer schema id (schema evolution) the first time the
// id is seen. A returned error is permanent (the schema does not fit), or ctx's.
func (s *Stage) ensureSchema(ctx context.Context, table string, id int) error {
	ids := s.schemaIDs[table]
	if ids == nil {
		ids = map[int]error{}
		s.schemaIDs[table] = ids
	}
	if err, seen := ids[id]; seen {
		return err
	}
	for attempt := 1; ; attempt++ {
		rs, err := s.cfg.Decoder.Schema(ctx, id)
		if err == nil {
			err = s.cfg.Warehouse.EnsureTable(ctx, table, rs)
		}
		switch {
		case err == nil:
			ids[id] = nil
			s.log.Info("table schema ensured", "table", table, "schema_id", id)
			return nil
		case errors.Is(err, ErrIncompatibleSchema):
			ids[id] = err
			s.log.Warn("writer schema does not fit its table: its records go to the DLQ", "table", table, "schema_id", id, "err", err)
			return err
		case ctx.Err() != nil:
			return context.Cause(ctx)
		}
		s.m.failed(table, ErrClassTransient, 1)
		s.log.Warn("ensure table failed; retrying", "table", table, "schema_id", id, "attempt", attempt, "err", err)
		if err := s.sleep(ctx, attempt); err != nil {
			return err
		}
	}
}

// sleep waits out the backoff after the attempt-th failure.
func (s *Stage) sleep(ctx context.Context, attempt int) error {
	return s.cfg.Sleep(ctx, s.cfg.Backoff.Delay(attempt, s.cfg.Rand))
}

// ingestTS reads the sluice-ingest-ts header (unix micros); zero if absent or bad.
func ingestTS(r *kgo.Record) time.Time {
	t, ok := wire.IngestTS(r)
	if !ok || t.UnixMicro() <= 0 {
		return time.Time{}
	}
	return t
}
