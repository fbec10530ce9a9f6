package wire

import "strings"

// groupPrefix starts every consumer group and transactional id of Sluice.
const groupPrefix = "sluice."

// GroupID is the consumer group of processing stage stage (clean, retry,
// repartition.<agg>, agg.<agg>, sink).
func GroupID(stage string) string { return groupPrefix + stage }

// TransactionalID is the transactional id of a Sluice component: sluice.<name>.<instance>.
// It is stable across restarts of one instance, so a restarted instance fences the
// transaction its crashed predecessor left open.
func TransactionalID(name, instance string) string {
	return groupPrefix + name + "." + instance
}

// ClientID is the Kafka client id of a Sluice component: sluice-<name>.
func ClientID(name string) string { return HeaderPrefix + name }

// Stage names: a stage's consumer group is GroupID(name), its transactional ids
// TransactionalID(name, instance), and its dead letters carry the name in HeaderStage.
const (
	// StageClean validates and deduplicates the raw topics.
	StageClean = "clean"
	// StageRetry delivers the records of the delay-tier retry topics again.
	StageRetry = "retry"
	// StageSink writes clean topics and window results to the warehouse.
	StageSink = "sink"
)

// StageRepartition is the repartition stage's name for aggregation agg.
func StageRepartition(agg string) string { return "repartition." + agg }

// StageAggregate is the aggregate stage's name for aggregation agg.
func StageAggregate(agg string) string { return AggPrefix + agg }

// StageOfGroup returns the stage whose consumer group is g, and false when g is not a
// Sluice group.
func StageOfGroup(g string) (string, bool) { return strings.CutPrefix(g, groupPrefix) }
