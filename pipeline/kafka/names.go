package kafka

// GroupID is the consumer group of processing stage stage (clean, retry,
// repartition.<agg>, agg.<agg>): docs/DESIGN.md lists the groups.
func GroupID(stage string) string { return "sluice." + stage }
