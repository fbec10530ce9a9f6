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

// flush commits p's buffer: first its dead letters (durable before any offset covering
// them commits), then its rows and offsets in one warehouse transaction. It returns
// only when the batch committed, the partition was fenced or claimed again, or ctx
// ended; transient errors are retried with backoff and never drop anything. Any other
// returned error is a caller bug (ErrUnknownTable, ErrInvalidBatch) and stops the stage.
func (s *Stage) flush(ctx context.Context, p *partition) error {
	if p.empty() || p.fenced {
		return nil
	}
	start := s.cfg.Now()
	if err := s.sendLetters(ctx, p); err != nil {
		return err
	}
	for attempt := 1; ; {
		b := Batch{Table: p.table, Topic: p.tp.topic, Partition: p.tp.partition, Start: p.next, End: p.end,
			Epoch: p.epoch, Rows: p.rows, Aggregate: p.aggregate}
		err := s.cfg.Warehouse.Write(ctx, b)
		var rej *RejectedError
		switch {
		case err == nil:
			s.committed(p, b, s.cfg.Now().Sub(start))
			return nil
		case ctx.Err() != nil:
			// Outcome unknown: the next owner (or the drain) retries the same batch, and
			// Write tells a committed one apart.
			return fmt.Errorf("sink: flush %s/%d: %w", p.tp.topic, p.tp.partition, context.Cause(ctx))
		case errors.As(err, &rej):
			if err := s.reject(p, rej); err != nil {
				return err
			}
			if err := s.sendLetters(ctx, p); err != nil {
				return err
			}
		case errors.Is(err, ErrFenced):
			s.m.failed(p.table, ErrClassFenced, 1)
			s.log.Warn("partition fenced by another sink; stopped", "topic", p.tp.topic, "partition", p.tp.partition,
				"offset", p.next, "retry_in", s.cfg.FencedRetry, "err", err)
			s.fence(p)
			return nil
		case errors.Is(err, ErrOffsetMismatch):
			s.m.failed(p.table, ErrClassOffsetMismatch, 1)
			s.log.Warn("warehouse offset moved; claiming again", "topic", p.tp.topic, "partition", p.tp.partition,
				"offset", p.next, "err", err)
			return s.reclaim(ctx, p)
		case errors.Is(err, ErrUnknownTable) || errors.Is(err, ErrInvalidBatch):
			return fmt.Errorf("sink: flush %s/%d: %w", p.tp.topic, p.tp.partition, err)
		default:
			s.m.failed(p.table, ErrClassTransient, 1)
			s.log.Warn("warehouse write failed; retrying", "topic", p.tp.topic, "partition", p.tp.partition,
				"offset", p.next, "attempt", attempt, "err", err)
			if err := s.sleep(ctx, attempt); err != nil {
				return fmt.Errorf("sink: flush %s/%d: %w", p.tp.topic, p.tp.partition, err)
			}
			attempt++
		}
	}
}

// committed records a committed batch: metrics, the buffer emptied, and the offset
// committed to the group for lag reporting.
func (s *Stage) committed(p *partition, b Batch, took time.Duration) {
	now := s.cfg.Now()
	var newest time.Time
	for i := range b.Rows {
		ts := b.Rows[i].IngestTS
		if ts.IsZero() {
			continue
		}
		if ts.After(newest) {
			newest = ts
		}
		if s.cfg.Latency != nil {
			s.cfg.Latency(p.tp.topic, now.Sub(ts))
		}
	}
	s.m.written(p.table, len(b.Rows), took)
	s.m.newest(s, p.table, p.tp, newest)
	p.committed(b.End)
	s.log.Debug("batch committed", "topic", p.tp.topic, "partition", p.tp.partition,
		"offset", b.Start, "end", b.End, "rows", len(b.Rows), "took", took)
	s.lag.set(p.tp, b.End)
}

// reject turns the rows rej lists into dead letters and removes them from the buffer;
// their offsets stay in the batch range.
func (s *Stage) reject(p *partition, rej *RejectedError) error {
	why := make(map[int64]error, len(rej.Rows))
	for _, r := range rej.Rows {
		why[r.Offset] = r.Err
	}
	keep := 0
	for i := range p.rows {
		err, bad := why[p.rows[i].Offset]
		if !bad {
			p.rows[keep], p.recs[keep] = p.rows[i], p.recs[i]
			keep++
			continue
		}
		p.letters = append(p.letters, s.letter(p.recs[i], ErrClassRejected, err))
	}
	if keep == len(p.rows) {
		// Nothing matched: retrying would loop forever.
		return fmt.Errorf("sink: flush %s/%d: %w: rejected offsets %v are not in the batch",
			p.tp.topic, p.tp.partition, ErrInvalidBatch, rej.Offsets())
	}
	clear(p.rows[keep:])
	clear(p.recs[keep:])
	p.rows, p.recs = p.rows[:keep], p.recs[:keep]
	return nil
}

// letter builds the dead letter of r; the replay history it carries goes on.
func (s *Stage) letter(r *kgo.Record, class string, err error) letter {
	first, ok := wire.FirstFailure(r)
	if !ok {
		first = s.cfg.Now()
	}
	return letter{
		rec: dlq.Record(r, s.cfg.DLQ(r.Topic), dlq.Letter{Stage: wire.StageSink, Class: dlq.Permanent, Err: err,
			Attempts: wire.Attempts(r) + 1, FirstFailure: first}),
		orig: r, class: class, err: err,
	}
}

// sendLetters produces p's pending dead letters and waits until every one is
// acknowledged (acks=all), retrying failed ones with backoff until ctx ends.
func (s *Stage) sendLetters(ctx context.Context, p *partition) error {
	for attempt := 1; len(p.letters) > 0; attempt++ {
		recs := make([]*kgo.Record, len(p.letters))
		for i, l := range p.letters {
			recs[i] = l.rec
		}
		res := s.cl.ProduceSync(ctx, recs...)
		failed := p.letters[:0]
		var first error
		for i, r := range res {
			l := p.letters[i]
			if r.Err != nil {
				failed = append(failed, l)
				if first == nil {
					first = r.Err
				}
				continue
			}
			s.m.failed(p.table, l.class, 1)
			// One line per dead letter, once it is durable.
			s.log.Warn("dead letter", "topic", l.orig.Topic, "partition", l.orig.Partition, "offset", l.orig.Offset,
				"event_id", wire.Header(l.orig, wire.HeaderEventID), "class", l.class, "dlq", l.rec.Topic, "err", l.err)
		}
		clear(p.letters[len(failed):])
		p.letters = failed
		if len(failed) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("sink: dead letters of %s/%d: %w", p.tp.topic, p.tp.partition, context.Cause(ctx))
		}
		s.m.failed(p.table, ErrClassTransient, 1)
		s.log.Warn("dead letter produce failed; retrying", "topic", p.tp.topic, "partition", p.tp.partition,
			"attempt", attempt, "err", first)
		if err := s.sleep(ctx, attempt); err != nil {
			return fmt.Errorf("sink: dead letters of %s/%d: %w", p.tp.topic, p.tp.partition, err)
		}
	}
	return nil
}
