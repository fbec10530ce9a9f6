// Package ingest is the HTTP ingest API of Sluice (docs/API.md): it accepts events as
// JSON, JSON arrays or NDJSON, validates them all-or-nothing against their topic's Avro
// schema, turns them into Kafka records (see Encoder) and answers 202 only after a
// Producer reports every record acknowledged. It also serves the topic catalogue, health,
// readiness and Prometheus metrics.
//
// Errors are application/problem+json (RFC 9457, see Problem). Bad input always gets a
// 4xx; a Kafka that does not acknowledge in time gets a fast 503 with Retry-After.
package ingest
