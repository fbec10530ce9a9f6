package process

import (
	"context"
	"fmt"

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
