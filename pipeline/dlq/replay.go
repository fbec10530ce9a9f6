package dlq

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/pipeline/wire"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Filter selects dead letters to replay. A zero Filter selects every dead letter.
type Filter struct {
	// Classes, if not empty, are the sluice-error-class values to keep.
	Classes []string
	// Stages, if not empty, are the sluice-stage values to keep.
	Stages []string
	// Since, if not zero, keeps dead letters that first failed at or after it.
	Since time.Time
	// Until, if not zero, keeps dead letters that first failed before it.
	Until time.Time
	// Max, if > 0, bounds how many dead letters Replay re-publishes. Match ignores it.
	Max int
}

// Match reports whether dead letter r passes f's class, stage and time filters. The time
// is r's sluice-first-failure-ts; a record without a readable one fails any time bound.
func (f Filter) Match(r *kgo.Record) bool {
	if len(f.Classes) > 0 && !slices.Contains(f.Classes, wire.Header(r, wire.HeaderClass)) {
		return false
	}
	if len(f.Stages) > 0 && !slices.Contains(f.Stages, wire.Header(r, wire.HeaderStage)) {
		return false
	}
	if f.Since.IsZero() && f.Until.IsZero() {
		return true
	}
	at, ok := wire.FirstFailure(r)
	if !ok {
		return false
	}
	if !f.Since.IsZero() && at.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !at.Before(f.Until) {
		return false
	}
	return true
}

// ReplayRecord rebuilds the original record of dead letter dead, to re-publish it. The
// topic is to, or the dead letter's sluice-original-topic when to is empty. Key, value
// and timestamp are unchanged. Headers are the dead letter's without the letter headers
// (sluice-error*, sluice-stage, sluice-original-*, sluice-first-failure-ts) and without
// an older sluice-replayed, plus sluice-replayed: true; sluice-attempts stays as it was,
// so a replayed record that fails again carries its attempt count on.
//
// The partition is left to the producer's partitioner (Partition -1): with the default
// key partitioner a replay lands on the partition its key maps to now, which is the
// original one unless the topic's partition count changed. Records of one key stay in
// order among themselves but may land after newer records of the same key.
func ReplayRecord(dead *kgo.Record, to string) *kgo.Record {
	if to == "" {
		to = wire.Header(dead, wire.HeaderOriginalTopic)
	}
	hs := make([]kgo.RecordHeader, 0, len(dead.Headers)+1)
	attempts := -1 // index in hs of the kept sluice-attempts
	for _, h := range dead.Headers {
		switch {
		case h.Key == wire.HeaderAttempts:
			if attempts >= 0 {
				hs[attempts] = h // keep one, the last
				continue
			}
			attempts = len(hs)
		case h.Key == wire.HeaderReplayed, h.Key == wire.HeaderStage, h.Key == wire.HeaderFirstFailureTS,
			h.Key == wire.HeaderClass, wire.IsFailureHeader(h.Key), wire.IsOriginHeader(h.Key):
			continue
		}
		hs = append(hs, h)
	}
	hs = append(hs, kgo.RecordHeader{Key: wire.HeaderReplayed, Value: []byte("true")})
	return &kgo.Record{
		Topic:     to,
		Partition: -1,
		Key:       dead.Key,
		Value:     dead.Value,
		Headers:   hs,
		Timestamp: dead.Timestamp,
	}
}

// Producer writes records durably (acks=all) and reports when every one is acknowledged.
// *kafka.Producer implements it.
type Producer interface {
	Produce(ctx context.Context, recs ...*kgo.Record) error
}

// Replay re-publishes through p the dead letters that match f, at most f.Max of them when
// it is > 0, in the order given, each rebuilt by ReplayRecord(dead, to). It returns how
// many it produced: all of the selected ones, or 0 with an error (some may still have
// been written; replaying again is safe, the clean stage deduplicates by event id).
func Replay(ctx context.Context, p Producer, dead []*kgo.Record, to string, f Filter) (int, error) {
	var out []*kgo.Record
	for _, r := range dead {
		if f.Max > 0 && len(out) >= f.Max {
			break
		}
		if !f.Match(r) {
			continue
		}
		rr := ReplayRecord(r, to)
		if rr.Topic == "" {
			return 0, fmt.Errorf("replay %s/%d@%d: no --to and no %s header", r.Topic, r.Partition, r.Offset, wire.HeaderOriginalTopic)
		}
		out = append(out, rr)
	}
	if len(out) == 0 {
		return 0, nil
	}
	if err := p.Produce(ctx, out...); err != nil {
		return 0, fmt.Errorf("replay %d records: %w", len(out), err)
	}
	return len(out), nil
}
