package config

import (
	"testing"

	"github.com/sluicehq/sluice/pipeline/wire"
)

func TestIsAggregationTopic(t *testing.T) {
	for _, c := range []struct {
		topic string
		want  bool
	}{
		{wire.AggTopic("dev_earliest"), true},
		{wire.RepartitionTopic("dev_earliest"), true},
		{wire.AggChangelogTopic("dev_earliest", "windows"), true},
		{wire.CleanTopic("purchases"), false},
		{wire.RetryTopic(DefaultRetryTiers[0].D()), false},
		{wire.RetryDLQTopic, false},
		{wire.SinkDLQTopic, false},
		{wire.ChangelogTopic("clean", "purchases", "dedup"), false},
	} {
		if got := wire.IsAggregationTopic(c.topic); got != c.want {
			t.Errorf("IsAggregationTopic(%q) = %v, want %v", c.topic, got, c.want)
		}
	}
}
