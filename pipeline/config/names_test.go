package config

import "testing"

func TestIsAggregationTopic(t *testing.T) {
	for _, c := range []struct {
		topic string
		want  bool
	}{
		{AggTopic("dev_earliest"), true},
		{RepartitionTopic("dev_earliest"), true},
		{AggChangelogTopic("dev_earliest", "windows"), true},
		{CleanTopic("purchases"), false},
		{RetryTopic(DefaultRetryTiers[0].D()), false},
		{RetryDLQTopic, false},
		{SinkDLQTopic, false},
		{ChangelogTopic("clean", "purchases", "dedup"), false},
	} {
		if got := IsAggregationTopic(c.topic); got != c.want {
			t.Errorf("IsAggregationTopic(%q) = %v, want %v", c.topic, got, c.want)
		}
	}
}
