// Package kafka holds the Kafka client options, the acknowledging producer used by
// ingest, topic administration and transaction hygiene checks.
package kafka
