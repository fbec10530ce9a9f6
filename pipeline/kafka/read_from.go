package kafka

import (
	"context"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadCommittedFromOffsets is ReadCommitted of the partitions of topic that from names,
// each from its offset to its current last stable offset (`sluice reprocess` reads a
// time range this way, from offsets found by timestamp).
func ReadCommittedFromOffsets(ctx context.Context, kc Config, topic string, from map[int32]int64, fn func(*kgo.Record) error) error {
	if len(from) == 0 {
		return nil
	}
	return readCommitted(ctx, kc, topic, slices.Sorted(maps.Keys(from)), from, fn)
}
