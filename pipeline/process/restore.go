package process

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
)

// restore reads changelog partition topic/partition from its start to its last stable
// offset (read_committed) and applies every record to s. It returns the records applied.
func restore(ctx context.Context, kc kafka.Config, topic string, partition int32, s Changelogged) (int, error) {
	n := 0
	err := kafka.ReadCommitted(ctx, kc, topic, []int32{partition}, func(r *kgo.Record) error {
		if err := s.Restore(string(r.Key), r.Value); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("restore: %w", err)
	}
	return n, nil
}

// restoreFrom restores s from changelog partition topic/partition. When s has a local
// checkpoint within the partition's log (log start <= checkpoint <= last stable offset)
// that is recent enough, it reads only the records after it (tail is true); otherwise it
// wipes s and reads the whole partition, with a WARN saying why: the checkpoint is before
// the log start (the records after it are gone), beyond the end (the changelog was
// recreated), older than half the changelog's delete.retention.ms at now (compaction may
// have removed tombstones written after it, and a tail restore would bring their keys
// back), or a store on disk has none while the changelog has records (its directory is
// new here, was deleted, or its checkpoint record was corrupt). Either way it then
// records the end as s's checkpoint. It returns the records applied.
func restoreFrom(ctx context.Context, kc kafka.Config, topic string, partition int32, s Changelogged, now time.Time, log *slog.Logger) (n int, tail bool, err error) {
	start, end, err := kafka.PartitionBounds(ctx, kc, topic, partition)
	if err != nil {
		return 0, false, fmt.Errorf("restore: %w", err)
	}
	from := int64(-1)
	if cp, ok := s.Checkpoint(); ok {
		at, dated := s.CheckpointTime()
		var retention time.Duration
		if dated && cp < end {
			retention, _ = kafka.DeleteRetention(ctx, kc, topic) // unknown: Kafka's default
		}
		switch {
		case cp < start:
			log.Warn("state checkpoint before the changelog's log start: full restore",
				"topic", topic, "partition", partition, "checkpoint", cp, "log_start", start)
		case cp > end:
			log.Warn("state checkpoint beyond the changelog's end (changelog recreated?): full restore",
				"topic", topic, "partition", partition, "checkpoint", cp, "end", end)
		case cp < end && !dated:
			log.Warn("state checkpoint without a time: full restore",
				"topic", topic, "partition", partition, "checkpoint", cp)
		case cp < end && now.Sub(at) > retention/2:
			// Tombstones written after the checkpoint may be gone from the changelog:
			// a tail restore could bring back deleted keys (closed windows).
			log.Warn("state checkpoint older than half the changelog's delete.retention.ms: full restore",
				"topic", topic, "partition", partition, "checkpoint", cp, "checkpoint_time", at, "delete_retention", retention)
		default:
			from, tail = cp, true
		}
	}
	if _, ok := s.Checkpoint(); !ok && s.Durable() && end > start {
		why := "no local checkpoint (directory new on this instance, or deleted)"
		if d := s.Discarded(); d != nil {
			why = "local state discarded: " + d.Error()
		}
		log.Warn("state has no usable local checkpoint: full restore",
			"topic", topic, "partition", partition, "reason", why, "log_start", start, "end", end)
	}
	if from < 0 {
		// Also when it looks empty: a full restore that crashed left keys it never
		// counted.
		if err := s.Wipe(); err != nil {
			return 0, false, fmt.Errorf("restore %s/%d: wipe: %w", topic, partition, err)
		}
		from = 0
	}
	apply := func(r *kgo.Record) error {
		if err := s.Restore(string(r.Key), r.Value); err != nil {
			return err
		}
		n++
		return nil
	}
	if from < end {
		if err := kafka.ReadCommittedFrom(ctx, kc, topic, partition, from, apply); err != nil {
			return n, false, fmt.Errorf("restore: %w", err)
		}
	}
	if err := s.CommitAt(end); err != nil {
		return n, false, fmt.Errorf("restore %s/%d: checkpoint: %w", topic, partition, err)
	}
	return n, tail, nil
}
