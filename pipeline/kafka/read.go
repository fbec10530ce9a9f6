package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// listRetryFor bounds how long listOffsets retries a retriable error: a partition
// leader's election after its broker died takes seconds.
const listRetryFor = time.Minute

// listOffsets runs list (a kadm ListStartOffsets/ListCommittedOffsets) on topic and
// retries, with backoff, while its error is retriable (a partition without a leader, a
// leader that moved, a broker that cannot be reached) for up to listRetryFor. Without it
// a restore that starts while a broker is down (a stage's task rebuilt after an aborted
// transaction, an assignment during a leader's election) failed at once and stopped the
// stage for good.
func listOffsets(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error), topic string) (kadm.ListedOffsets, error) {
	deadline := time.Now().Add(listRetryFor)
	backoff := 100 * time.Millisecond
	for {
		offs, err := list(ctx, topic)
		if err == nil {
			err = offs.Error()
		}
		if err == nil || !retriableList(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return offs, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return offs, err
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// retriableList reports whether a list-offsets error may go away by itself.
func retriableList(err error) bool {
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return false // a topic that does not exist fails at once, as before
	}
	var ne net.Error
	return kerr.IsRetriable(err) || errors.As(err, &ne)
}

// ReadCommitted reads partitions of topic (every partition when nil) from their start to
// their current last stable offset, as a read_committed consumer sees them, and calls fn
// for every data record in offset order per partition. It ends at the last stable
// offset even when the log ends with transaction markers or aborted records, which a
// read_committed consumer never delivers. State restores, `sluice dlq` and the test
// harness all read "everything committed so far" through it.
func ReadCommitted(ctx context.Context, kc Config, topic string, partitions []int32, fn func(*kgo.Record) error) error {
	return readCommitted(ctx, kc, topic, partitions, nil, fn)
}

// ReadCommittedFrom is ReadCommitted of one partition from offset from (a state store's
// local checkpoint) instead of its start.
func ReadCommittedFrom(ctx context.Context, kc Config, topic string, partition int32, from int64, fn func(*kgo.Record) error) error {
	return readCommitted(ctx, kc, topic, []int32{partition}, map[int32]int64{partition: from}, fn)
}

// PartitionBounds returns the log start offset of topic/partition and its last stable
// offset (where a read_committed reader stops now).
func PartitionBounds(ctx context.Context, kc Config, topic string, partition int32) (start, end int64, err error) {
	cl, err := kgo.NewClient(kc.Opts()...)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for i, list := range []func(context.Context, ...string) (kadm.ListedOffsets, error){adm.ListStartOffsets, adm.ListCommittedOffsets} {
		offs, err := listOffsets(ctx, list, topic)
		if err != nil {
			return 0, 0, fmt.Errorf("bounds %s/%d: %w", topic, partition, err)
		}
		o, ok := offs.Lookup(topic, partition)
		if !ok {
			return 0, 0, fmt.Errorf("bounds %s/%d: partition not found", topic, partition)
		}
		if i == 0 {
			start = o.Offset
		} else {
			end = o.Offset
		}
	}
	return start, end, nil
}

func readCommitted(ctx context.Context, kc Config, topic string, partitions []int32, from map[int32]int64, fn func(*kgo.Record) error) error {
	acl, err := kgo.NewClient(kc.Opts()...)
	if err != nil {
		return err
	}
	offs, err := listOffsets(ctx, kadm.NewClient(acl).ListCommittedOffsets, topic)
	acl.Close()
	if err != nil {
		return fmt.Errorf("read %s: end offsets: %w", topic, err)
	}
	want := map[int32]bool{}
	for _, p := range partitions {
		want[p] = true
	}
	ends := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	offs.Each(func(o kadm.ListedOffset) {
		if o.Offset > from[o.Partition] && (partitions == nil || want[o.Partition]) {
			ends[o.Partition] = o.Offset
			parts[o.Partition] = kgo.NewOffset().AtStart()
			if at, ok := from[o.Partition]; ok {
				parts[o.Partition] = kgo.NewOffset().At(at)
			}
		}
	})
	for _, p := range partitions {
		if _, ok := offs.Lookup(topic, p); !ok {
			return fmt.Errorf("read %s/%d: partition not found", topic, p)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(kc.Opts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Markers take offsets too: seeing them is how we know we reached the end.
		kgo.KeepControlRecords(),
		// An idle fetch answers soon, so reaching an end that has no visible record
		// takes idleFetches short waits rather than long ones.
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	next := map[int32]int64{}
	done := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	// A fetch may answer a partition with no records although it has some at the position
	// (a real broker does when one response carries many partitions), so an empty answer
	// alone proves nothing. Only when idleFetches whole fetches in a row bring no record
	// at all is every partition that is still short of its end, and whose last stable
	// offset has reached it, at the end of what a read_committed reader will ever see
	// there (the rest aborted, or compacted away).
	const idleFetches = 3
	lso := map[int32]int64{}
	idle := 0
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("read %s: at %v of %v: %w", topic, next, ends, ctx.Err())
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("read %s/%d: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		var aerr error
		got := false
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				if aerr != nil || r.Offset >= ends[r.Partition] {
					continue
				}
				next[r.Partition] = r.Offset + 1
				if r.Attrs.IsControl() {
					continue
				}
				if err := fn(r); err != nil {
					aerr = fmt.Errorf("read %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
				}
			}
			if len(fp.Records) > 0 {
				got = true
			}
			lso[fp.Partition] = fp.LastStableOffset
		})
		if aerr != nil {
			return aerr
		}
		if got {
			idle = 0
			continue
		}
		if idle++; idle >= idleFetches {
			for p, end := range ends {
				if next[p] < end && lso[p] >= end {
					next[p] = end
				}
			}
		}
	}
	return nil
}

// DefaultDeleteRetention is Kafka's default delete.retention.ms: how long compaction keeps
// a tombstone.
const DefaultDeleteRetention = 24 * time.Hour

// DeleteRetention returns topic's delete.retention.ms: a local checkpoint older than it may
// have missed tombstones that compaction removed since. When the broker does not say, it
// returns DefaultDeleteRetention with the error.
func DeleteRetention(ctx context.Context, kc Config, topic string) (time.Duration, error) {
	cl, err := kgo.NewClient(kc.Opts()...)
	if err != nil {
		return DefaultDeleteRetention, err
	}
	defer cl.Close()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return DefaultDeleteRetention, fmt.Errorf("describe %s: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return DefaultDeleteRetention, fmt.Errorf("describe %s: %w", topic, err)
	}
	for _, c := range rc.Configs {
		if c.Key != "delete.retention.ms" || c.Value == nil {
			continue
		}
		ms, err := strconv.ParseInt(*c.Value, 10, 64)
		if err != nil || ms < 0 {
			return DefaultDeleteRetention, fmt.Errorf("%s: delete.retention.ms %q", topic, *c.Value)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	return DefaultDeleteRetention, nil
}
