package wire

import (
	"strconv"
	"strings"
	"time"
)

// ReservedPrefix starts Sluice's internal topics (retry tiers, repartition, changelog);
// a pipeline file may not name a topic with it.
const ReservedPrefix = "_sluice"

// Suffixes of the topics derived from a raw topic.
const (
	// CleanSuffix ends the topic of a raw topic's validated, deduplicated events.
	CleanSuffix = ".clean"
	// DLQSuffix ends a raw topic's dead-letter topic.
	DLQSuffix = ".dlq"
	// LateSuffix ends the topic of a raw topic's events that came too late for a window.
	LateSuffix = ".late"
)

// DerivedSuffixes are appended to a raw topic's name for the topics Sluice makes from it
// ("" is the raw topic itself).
var DerivedSuffixes = [...]string{"", CleanSuffix, DLQSuffix, LateSuffix}

// CleanTopic is the topic of validated, deduplicated events of raw topic t.
func CleanTopic(t string) string { return t + CleanSuffix }

// DLQTopic is the dead-letter topic of raw topic t.
func DLQTopic(t string) string { return t + DLQSuffix }

// LateTopic is the topic of late events of raw topic t.
func LateTopic(t string) string { return t + LateSuffix }

// RawOfClean returns the raw topic whose clean topic is topic, and false when topic is
// not a clean topic.
func RawOfClean(topic string) (string, bool) { return strings.CutSuffix(topic, CleanSuffix) }

// ChangelogTopic is the compacted changelog of one state store of one stage for one
// input topic, e.g. _sluice.clean.purchases.dedup-changelog.
func ChangelogTopic(stage, input, store string) string {
	return ReservedPrefix + "." + stage + "." + input + "." + store + changelogSuffix
}

// Subject is the schema registry subject of a topic's values.
func Subject(topic string) string { return topic + "-value" }

// AggPrefix starts the output topic of an aggregation.
const AggPrefix = "agg."

// AggTopic is the output topic of aggregation name.
func AggTopic(name string) string { return AggPrefix + name }

// RepartitionTopic is the internal topic that re-keys an aggregation's input by its
// group, carrying watermark markers of every source partition.
func RepartitionTopic(agg string) string { return ReservedPrefix + "." + agg + repartitionSuffix }

const (
	repartitionSuffix  = ".repartition"
	changelogSuffix    = "-changelog"
	aggChangelogPrefix = ReservedPrefix + ".agg."
)

// IsAggregationTopic reports whether topic is one an aggregation owns, whatever its name:
// its results (AggTopic), its repartition topic or a changelog of its stores.
func IsAggregationTopic(topic string) bool {
	return strings.HasPrefix(topic, AggPrefix) || strings.HasPrefix(topic, aggChangelogPrefix) ||
		strings.HasPrefix(topic, ReservedPrefix+".") && strings.HasSuffix(topic, repartitionSuffix)
}

// AggChangelogTopic is the compacted changelog of one store of aggregation name.
func AggChangelogTopic(name, store string) string {
	return aggChangelogPrefix + name + "." + store + changelogSuffix
}

// RetryTopicPrefix starts every delay-tier retry topic.
const RetryTopicPrefix = ReservedPrefix + ".retry."

// RetryTopic is the delay-tier retry topic for waits up to d, e.g. _sluice.retry.5s.
func RetryTopic(d time.Duration) string { return RetryTopicPrefix + shortDuration(d) }

// RetryDLQTopic receives what the retry stage itself cannot deliver (a record in a
// retry topic without readable origin headers).
const RetryDLQTopic = RetryTopicPrefix + "dlq"

// SinkDLQTopic receives the aggregate results the warehouse sink cannot write (clean
// records it cannot write go to their raw topic's .dlq).
const SinkDLQTopic = ReservedPrefix + ".sink.dlq"

// shortDuration writes d in its largest whole unit: 5s, 1m, 10m, 2h, 250ms.
func shortDuration(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d >= time.Minute && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d >= time.Second && d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	default:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
}
