package config

import "time"

// Service is the runtime configuration of the sluice services, read from flags and
// SLUICE_<FLAG> environment variables (see BindFlags and ApplyEnv).
type Service struct {
	// Config is the pipeline file path; empty means the built-in pipeline.
	Config string
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// RegistryURL is the schema registry base URL.
	RegistryURL string
	// Registry holds the schema registry's auth settings.
	Registry Registry
	// State says where process stages keep their state stores.
	State State
	// HTTPAddr is the ingest API listen address (also serves /metrics). Default ":8080".
	HTTPAddr string
	// InstanceID names this instance; it is part of transactional ids, so a restarted
	// instance fences its crashed predecessor. Default: the host name.
	InstanceID string
	// MaxBodyBytes limits a request body after decompression. Default 10 MiB.
	MaxBodyBytes int64
	// AckTimeout is how long ingest waits for Kafka to acknowledge a request before it
	// answers 503. Default 5s.
	AckTimeout time.Duration
	// MaxFuture rejects events whose event_time is further ahead of the receive time.
	// Default 5m.
	MaxFuture time.Duration
	// ReadTimeout bounds reading one HTTP request, headers and body. Default 30s.
	ReadTimeout time.Duration
	// MaxInflightBytes bounds the request body bytes ingest holds across all requests;
	// a request that does not fit answers 503 with Retry-After before its body is read.
	// 0 (default): 8 x MaxBodyBytes. Else at least 2 x MaxBodyBytes.
	MaxInflightBytes int64
	// MaxConnections caps the open connections of the ingest API (WebSockets
	// included); past it a new connection is answered 503. Default 4096.
	MaxConnections int
	// MaxConnectionsPerIP caps the open connections per peer address (429 past it).
	// Default 0 (off): behind a load balancer every client shares its address.
	MaxConnectionsPerIP int
	// MaxBufferedBytes bounds the ingest producer buffer; a full buffer answers 503.
	// Default 64 MiB.
	MaxBufferedBytes int64
	// IdempotencyKeys bounds how many Idempotency-Keys ingest remembers (with the hash
	// of their body, to answer 422 when one comes back with another body). Default
	// 100000 (about 20 MB).
	IdempotencyKeys int
	// IdempotencyTTL is how long ingest remembers an Idempotency-Key. Default 24h.
	IdempotencyTTL time.Duration
	// TxnTimeout is the transaction timeout of transactional stages. Default 60s.
	TxnTimeout time.Duration
	// GroupSessionTimeout is the session timeout of the classic consumer groups of the
	// process and sink stages: how long the partitions of an instance that crashed and
	// does not come back under its InstanceID stay unowned (an instance restarted under
	// its id takes its place at once). Default DefaultGroupSessionTimeout.
	GroupSessionTimeout time.Duration
	// GroupProtocol is the consumer-group protocol of those stages: "classic" (default)
	// or "consumer" (KIP-848, Kafka 4.0+).
	GroupProtocol string
	// TxnMaxRecords and TxnMaxTime bound one transaction (one poll batch). Defaults
	// 5000 and 50ms.
	TxnMaxRecords int
	TxnMaxTime    time.Duration
	// AggCommitInterval keeps each transaction of the repartition and aggregate stages
	// open up to this long while records keep arriving at least every fifth of it (see
	// process.StageConfig.CommitInterval): fewer, larger transactions under load, where
	// latency matters less, since a window result waits for its window to close anyway.
	// 0 commits as soon as nothing more is buffered, as the clean stage always does.
	// Default 100ms.
	AggCommitInterval time.Duration
	// IdleAdvance, if > 0, advances the watermark of a source partition that is caught up
	// and has seen no records for this long with the wall clock (now - IdleAdvance), so
	// the last windows close when traffic stops. Default 0 (off); sluice dev uses 10s.
	IdleAdvance time.Duration
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string
	// LogFormat is text or json (one JSON object per line, for log shippers). Default text.
	LogFormat string
	// Security holds the Kafka TLS and SASL settings (--kafka-tls*, --kafka-sasl-*).
	Security KafkaSecurity
	// API holds the ingest API's authentication, rate limit and CORS settings.
	API APIConfig
	// Sink holds the warehouse sink's settings (sluice sink, sluice dev).
	Sink SinkConfig
}
