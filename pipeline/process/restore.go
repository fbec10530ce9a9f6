package process

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
)

// restore reads changelog partition topic/partition from its start to its last stable
// offset (read_committed) and applies every record to s. It returns the records applied.
func restore(ctx context.Context, kc kafka.Config, adm *kadm.Client, topic string, partition int32, s Changelogged) (int, error) {
	offs, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("restore %s/%d: list offsets: %w", topic, partition, err)
	}
	lo, ok := offs.Lookup(topic, partition)
	if !ok {
		return 0, fmt.Errorf("restore %s/%d: partition not found", topic, partition)
	}
	if lo.Err != nil {
		return 0, fmt.Errorf("restore %s/%d: %w", topic, partition, lo.Err)
	}
	end := lo.Offset
	if end <= 0 {
		return 0, nil
	}
	opts := append(kc.Opts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records (transaction markers) take offsets too: seeing them is how we
		// know we reached the end when the log ends with a marker.
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, fmt.Errorf("restore %s/%d: %w", topic, partition, err)
	}
	defer cl.Close()
	var next int64
	n := 0
	for next < end {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("restore %s/%d: %w", topic, partition, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return n, fmt.Errorf("restore %s/%d: fetch: %w", topic, partition, ferr)
		}
		var aerr error
		fs.EachRecord(func(r *kgo.Record) {
			if aerr != nil || r.Offset >= end {
				return
			}
			next = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			if err := s.Restore(string(r.Key), r.Value); err != nil {
				aerr = fmt.Errorf("restore %s/%d@%d: %w", topic, partition, r.Offset, err)
				return
			}
			n++
		})
		if aerr != nil {
			return n, aerr
		}
		// A compacted log may have dropped the records up to end; the fetch position
		// then jumps past them.
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.LastStableOffset >= end && len(p.Records) == 0 && p.HighWatermark == p.LogStartOffset {
				next = end
			}
		})
	}
	return n, nil
}
