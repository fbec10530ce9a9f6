package dlq

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// HeaderReplayed marks a record re-published from a dead-letter topic by ReplayRecord.
const HeaderReplayed = "sluice-replayed"

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
	if len(f.Classes) > 0 && !slices.Contains(f.Classes, header(r, HeaderClass)) {
		return false
	}
	if len(f.Stages) > 0 && !slices.Contains(f.Stages, header(r, HeaderStage)) {
		return false
	}
	if f.Since.IsZero() && f.Until.IsZero() {
		return true
	}
	at, ok := FirstFailure(r)
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

// FirstFailure returns r's sluice-first-failure-ts (unix microseconds) and whether it
// has a readable one.
func FirstFailure(r *kgo.Record) (time.Time, bool) {
	v, ok := lookup(r, HeaderFirstFailureTS)
	if !ok {
		return time.Time{}, false
	}
	us, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMicro(us).UTC(), true
}

// Attempts returns r's sluice-attempts, or 0 if it has none or it does not parse. A stage
// dead-lettering a replayed record can carry the count on with Attempts(rec)+1.
func Attempts(r *kgo.Record) int {
	v, ok := lookup(r, HeaderAttempts)
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return n
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
		to = header(dead, HeaderOriginalTopic)
	}
	hs := make([]kgo.RecordHeader, 0, len(dead.Headers)+1)
	attempts := -1 // index in hs of the kept sluice-attempts
	for _, h := range dead.Headers {
		switch {
		case h.Key == HeaderAttempts:
			if attempts >= 0 {
				hs[attempts] = h // keep one, the last
				continue
			}
			attempts = len(hs)
		case h.Key == HeaderReplayed, h.Key == HeaderStage, h.Key == HeaderFirstFailureTS,
			h.Key == HeaderClass, strings.HasPrefix(h.Key, "sluice-error"), strings.HasPrefix(h.Key, "sluice-retry-"),
			strings.HasPrefix(h.Key, "sluice-original-"):
			continue
		}
		hs = append(hs, h)
	}
	hs = append(hs, kgo.RecordHeader{Key: HeaderReplayed, Value: []byte("true")})
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
			return 0, fmt.Errorf("replay %s/%d@%d: no --to and no %s header", r.Topic, r.Partition, r.Offset, HeaderOriginalTopic)
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

// lookup returns the value of r's last header named key.
func lookup(r *kgo.Record, key string) (string, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value), true
		}
	}
	return "", false
}

// header returns the value of r's last header named key, or "".
func header(r *kgo.Record, key string) string {
	v, _ := lookup(r, key)
	return v
}
