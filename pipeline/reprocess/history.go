package reprocess

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/wire"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lastClose is when the last window that starts before to closes (end + grace): for
// sessions, a session that starts just before to closes gap + grace after its last
// event, which is not known, so to + gap + grace is taken.
func lastClose(spec stream.Spec, to int64) int64 {
	if spec.Type == stream.Session {
		return to + spec.Gap + spec.Grace
	}
	adv := spec.Advance
	if adv <= 0 {
		adv = spec.Size
	}
	// The last window start (a multiple of adv) before to.
	last := to - 1 - ((to-1)%adv+adv)%adv
	return last + spec.Size + spec.Grace
}

// liveWatermark is the live aggregate stage's watermark, from its marks changelog: per
// task (partition) the minimum over every source of that source's watermark, and the
// minimum over the tasks. stream.NoWatermark when a task has not heard from every source.
func liveWatermark(ctx context.Context, kc kafka.Config, agg string, partitions int32, sources []string) (int64, error) {
	topic := wire.AggChangelogTopic(agg, "marks")
	marks := map[int32]map[string]int64{}
	err := kafka.ReadCommitted(ctx, kc, topic, nil, func(r *kgo.Record) error {
		m := marks[r.Partition]
		if m == nil {
			m = map[string]int64{}
			marks[r.Partition] = m
		}
		if r.Value == nil {
			delete(m, string(r.Key))
			return nil
		}
		v, err := stream.Int64Codec{}.Decode(r.Value)
		if err != nil {
			return fmt.Errorf("%s/%d@%d: %w", topic, r.Partition, r.Offset, err)
		}
		m[string(r.Key)] = max(m[string(r.Key)], v)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reprocess: the live watermark (%s): %w", topic, err)
	}
	wm := int64(math.MaxInt64)
	for p := range partitions {
		for _, src := range sources {
			v, ok := marks[p][src]
			if !ok {
				return stream.NoWatermark, nil
			}
			wm = min(wm, v)
		}
	}
	return wm, nil
}

// unretained lists the partitions of topic that no longer hold records from ms on: their
// log start moved past 0 and their first retained record is later than ms. earliest is
// the latest of those first records (the earliest time from which every partition is
// retained); bad is empty when the whole range is retained.
func unretained(ctx context.Context, adm *kadm.Client, kc kafka.Config, topic string, ms int64) (earliest int64, bad []string, err error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, nil, fmt.Errorf("reprocess: start offsets of %s: %w", topic, err)
	}
	earliest = math.MinInt64
	var failed error
	starts.Each(func(lo kadm.ListedOffset) {
		if lo.Offset <= 0 || failed != nil {
			return
		}
		ts, ok, err := firstTimestamp(ctx, kc, topic, lo.Partition, lo.Offset)
		if err != nil {
			failed = err
			return
		}
		if ok && ts > ms {
			bad = append(bad, fmt.Sprintf("partition %d from %s", lo.Partition, time.UnixMilli(ts).UTC().Format(time.RFC3339)))
			earliest = max(earliest, ts)
		}
	})
	if failed != nil {
		return 0, nil, failed
	}
	slices.Sort(bad)
	return earliest, bad, nil
}

// wholeSecondAfter is ms rounded up to a whole second: a --from a user can type.
func wholeSecondAfter(ms int64) time.Time {
	first := time.UnixMilli(ms).UTC()
	if t := first.Truncate(time.Second); t.Before(first) {
		return t.Add(time.Second)
	}
	return first
}

// checkRetained fails when a partition of topic no longer holds records from readFrom
// on. lead is how far before --from the input is read (window size or gap, plus grace):
// the error names the earliest --from the retained input allows.
func checkRetained(ctx context.Context, adm *kadm.Client, kc kafka.Config, topic string, readFrom, lead int64) error {
	earliest, bad, err := unretained(ctx, adm, kc, topic, readFrom)
	if err != nil || len(bad) == 0 {
		return err
	}
	// The earliest --from whose read start is a retained record.
	return fmt.Errorf("reprocess: the input is no longer retained: %s holds records only from %s on (%s); the range needs them from %s (--from minus the window and grace); choose --from at or after %s",
		topic, time.UnixMilli(earliest).UTC().Format(time.RFC3339Nano), strings.Join(bad, ", "),
		time.UnixMilli(readFrom).UTC().Format(time.RFC3339), wholeSecondAfter(earliest+lead).Format(time.RFC3339))
}

// firstTimestamp is the timestamp of the first committed record of topic/partition at or
// after offset; ok is false when there is none.
func firstTimestamp(ctx context.Context, kc kafka.Config, topic string, partition int32, offset int64) (int64, bool, error) {
	var ts int64
	found := false
	errFound := errors.New("found")
	err := kafka.ReadCommittedFromOffsets(ctx, kc, topic, map[int32]int64{partition: offset}, func(r *kgo.Record) error {
		ts, found = r.Timestamp.UnixMilli(), true
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return 0, false, fmt.Errorf("reprocess: first record of %s/%d: %w", topic, partition, err)
	}
	return ts, found, nil
}

// offsetsFrom are the offsets of topic's partitions at or after ms, leaving out the
// partitions with nothing from ms on.
func offsetsFrom(ctx context.Context, adm *kadm.Client, topic string, ms int64) (map[int32]int64, error) {
	offs, err := adm.ListOffsetsAfterMilli(ctx, ms, topic)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("reprocess: offsets of %s at %s: %w", topic, time.UnixMilli(ms).UTC().Format(time.RFC3339), err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("reprocess: end offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	offs.Each(func(lo kadm.ListedOffset) {
		if e, ok := ends.Lookup(topic, lo.Partition); ok && lo.Offset >= 0 && lo.Offset < e.Offset {
			out[lo.Partition] = lo.Offset
		}
	})
	return out, nil
}

// currentResults reads agg.<name> and returns the latest result of every window that
// starts in [from, to), by key.
func currentResults(ctx context.Context, o Options, agg string, from, to int64) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	err := kafka.ReadCommitted(ctx, o.Kafka, wire.AggTopic(agg), nil, func(r *kgo.Record) error {
		st, ok := process.WindowStartOfKey(r.Key)
		if !ok || st < from || st >= to {
			return nil
		}
		if r.Value == nil {
			delete(out, string(r.Key))
			return nil
		}
		v, _, err := o.Decoder.Decode(ctx, r.Value)
		if err != nil {
			return nil // an undecodable old result counts as absent: it is rewritten
		}
		out[string(r.Key)] = v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reprocess: read %s: %w", wire.AggTopic(agg), err)
	}
	return out, nil
}

// sameResult compares two results on everything but when they were emitted. Floating
// point measures compare within a relative 1e-9: a sum over the same events in another
// order (the live stage's arrival order is not this run's) differs in the last bits.
func sameResult(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		if k == "emitted_at" {
			continue
		}
		y, ok := b[k]
		if !ok {
			return false
		}
		fx, okx := x.(float64)
		fy, oky := y.(float64)
		if okx && oky {
			if math.Abs(fx-fy) > 1e-9*math.Max(1, math.Max(math.Abs(fx), math.Abs(fy))) {
				return false
			}
			continue
		}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// write produces out to agg.<name> in transactions of at most o.BatchRecords records.
func write(ctx context.Context, o Options, agg string, out []*kgo.Record) error {
	cl, err := kgo.NewClient(append(o.Kafka.Opts(),
		kgo.TransactionalID(wire.TransactionalID("reprocess", agg)),
		kgo.TransactionTimeout(o.TxnTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	total, done := len(out), 0
	for txn := 0; len(out) > 0; txn++ {
		n := min(len(out), o.BatchRecords)
		batch := out[:n]
		out = out[n:]
		if err := cl.BeginTransaction(); err != nil {
			return fmt.Errorf("reprocess: begin transaction: %w", err)
		}
		var perr error
		for _, r := range batch {
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil && perr == nil {
					perr = err
				}
			})
		}
		ferr := cl.Flush(ctx)
		commit := kgo.TryCommit
		if ferr != nil || perr != nil {
			commit = kgo.TryAbort
		} else if o.BeforeCommit != nil {
			if err := o.BeforeCommit(txn); err != nil {
				return fmt.Errorf("reprocess: stopped before committing transaction %d (%d of %d windows committed): %w", txn+1, done, total, err)
			}
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			return fmt.Errorf("reprocess: end transaction: %w", err)
		}
		if ferr != nil || perr != nil {
			return fmt.Errorf("reprocess: write %s: %w", wire.AggTopic(agg), errors.Join(ferr, perr))
		}
		done += n
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "reprocess: committed transaction %d: %d / %d windows written to %s\n", txn+1, done, total, wire.AggTopic(agg))
		}
	}
	return nil
}
