package process

import (
	"context"
	"fmt"
)

// Lag returns how far group's committed offset (group "": offset next) is behind the
// high watermark of topic/partition.
func (s *Stage) Lag(ctx context.Context, group, topic string, partition int32, next int64) (int64, error) {
	offs, err := s.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	o, ok := offs.Lookup(topic, partition)
	if !ok {
		return 0, fmt.Errorf("end offset %s/%d: partition not found", topic, partition)
	}
	if o.Err != nil {
		return 0, o.Err
	}
	if group != "" {
		committed, err := s.adm.FetchOffsets(ctx, group)
		if err != nil {
			return 0, err
		}
		c, ok := committed.Lookup(topic, partition)
		next = 0
		if ok && c.Err == nil {
			next = c.At
		}
	}
	return o.Offset - next, nil
}
