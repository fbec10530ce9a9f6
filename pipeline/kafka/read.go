package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadCommitted reads partitions of topic (every partition when nil) from their start to
// their current last stable offset, as a read_committed consumer sees them, and calls fn
// for every data record in offset order per partition. It ends at the last stable
// offset even when the log ends with transaction markers or aborted records, which a
// read_committed consumer never delivers. State restores, `sluice dlq` and the test
// harness all read "everything committed so far" through it.
func ReadCommitted(ctx context.Context, kc Config, topic string, partitions []int32, fn func(*kgo.Record) error) error {
	acl, err := kgo.NewClient(kc.Opts()...)
	if err != nil {
		return err
	}
	offs, err := kadm.NewClient(acl).ListCommittedOffsets(ctx, topic)
	acl.Close()
	if err == nil {
		err = offs.Error()
	}
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
		if o.Offset > 0 && (partitions == nil || want[o.Partition]) {
			ends[o.Partition] = o.Offset
			parts[o.Partition] = kgo.NewOffset().AtStart()
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
			// Aborted records are skipped without being delivered, and a compacted log
			// may have dropped records: the last stable offset tells how far we got.
			if len(fp.Records) == 0 && fp.LastStableOffset >= ends[fp.Partition] {
				next[fp.Partition] = ends[fp.Partition]
			}
		})
		if aerr != nil {
			return aerr
		}
	}
	return nil
}
