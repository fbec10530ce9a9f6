package kafka

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
)

// DefaultMaxMessageBytes is Kafka's default max.message.bytes (1 MiB + 12 bytes): the
// largest record batch a topic takes when its own limit is unknown.
const DefaultMaxMessageBytes = 1048588

// MaxMessageBytes returns each topic's max.message.bytes (its own, or the broker's
// message.max.bytes it inherits). A topic whose limit cannot be read gets
// DefaultMaxMessageBytes; the error says why (the map is always complete).
func MaxMessageBytes(ctx context.Context, adm *kadm.Client, topics ...string) (map[string]int, error) {
	out := make(map[string]int, len(topics))
	for _, t := range topics {
		out[t] = DefaultMaxMessageBytes
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return out, fmt.Errorf("describe topic configs: %w", err)
	}
	var firstErr error
	for _, rc := range rcs {
		if rc.Err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("describe topic %s: %w", rc.Name, rc.Err)
			}
			continue
		}
		for _, c := range rc.Configs {
			if c.Key != "max.message.bytes" || c.Value == nil {
				continue
			}
			n, err := strconv.Atoi(*c.Value)
			if err != nil || n <= 0 {
				if firstErr == nil {
					firstErr = fmt.Errorf("topic %s: max.message.bytes %q: not a positive number", rc.Name, *c.Value)
				}
				continue
			}
			out[rc.Name] = n
		}
	}
	return out, firstErr
}
