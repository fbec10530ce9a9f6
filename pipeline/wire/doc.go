// Package wire is Sluice's wire contract: the names other programs see on the brokers.
// It holds the topic names derived from a pipeline file, the consumer group and
// transactional id formats, and the record header names with one getter and one parser
// per typed header (docs/DESIGN.md#topics, docs/DESIGN.md#consumer-groups-and-transactional-ids,
// docs/DESIGN.md#headers). Every package names them through it; none spells them.
//
// It imports no other Sluice package.
package wire
