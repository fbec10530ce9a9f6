package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline/rules"
	"github.com/sluicehq/sluice/pipeline/schema"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultMaxBodyBytes bounds a request body: 10 MiB.
	DefaultMaxBodyBytes int64 = 10 << 20
	// DefaultAckTimeout is how long a request waits for Kafka's acknowledgement.
	DefaultAckTimeout = 5 * time.Second
	// DefaultMaxFuture is how far event_time may be ahead of the receive time.
	DefaultMaxFuture = 5 * time.Minute
	// DefaultReadTimeout bounds reading one request.
	DefaultReadTimeout = 30 * time.Second
	// MaxEventsPerRequest bounds the events of one request; more answer 413.
	MaxEventsPerRequest = 10000
	// DefaultMaxMessageBytes is Kafka's default max.message.bytes (1 MiB + 12 bytes),
	// the record size limit of a topic whose own limit is unknown.
	DefaultMaxMessageBytes = 1048588
	// DefaultCommitGrace is how long past AckTimeout a request waits for the outcome
	// of a commit already sent.
	DefaultCommitGrace = 3 * time.Second
	// DefaultInflightBodies sets the default of Config.MaxInflightBytes: room for this
	// many maximum-size bodies (8 x 10 MiB = 80 MiB with the default body limit). Peak
	// memory is several times the bytes in flight (decoded events, encoded records).
	DefaultInflightBodies = 8
	// DefaultMaxConnections is the default of Config.MaxConnections.
	DefaultMaxConnections = 4096
	// readyTimeout bounds one /readyz probe.
	readyTimeout = 2 * time.Second
)

// Topic is one raw event topic the API accepts events for.
type Topic struct {
	// Name is the Kafka topic and the {topic} path segment (e.g. "purchases").
	Name string
	// KeyField is the event field whose value becomes the record key (e.g. "user_id").
	KeyField string
	// Subject is the registry subject of the value schema. Default "<Name>-value".
	Subject string
	// Codec converts and encodes events; its schema must have the fields event_id
	// (string), event_time (timestamp-millis) and KeyField.
	Codec *schema.Codec
	// MaxMessageBytes is the topic's max.message.bytes: a request with an event whose
	// record, alone in a record batch, is larger answers 413 before anything is
	// produced. Default DefaultMaxMessageBytes.
	MaxMessageBytes int
	// Rules are the topic's clean-stage rules (nil: none). An Idempotency-Key that
	// would give an event an event_id they refuse answers 400 up front.
	Rules *rules.Set
}

// Validate reports the first problem that makes t unusable, naming the field.
func (t Topic) Validate() error {
	switch {
	case t.Name == "":
		return errors.New("name: required")
	case t.KeyField == "":
		return fmt.Errorf("%s: key_field: required", t.Name)
	case t.Codec == nil || t.Codec.Schema == nil:
		return fmt.Errorf("%s: codec: required", t.Name)
	}
	for _, f := range []string{"event_id", "event_time", t.KeyField} {
		if !hasField(t.Codec, f) {
			return fmt.Errorf("%s: schema %s has no field %q", t.Name, t.Codec.Schema.FullName(), f)
		}
	}
	return nil
}

func hasField(c *schema.Codec, name string) bool {
	for _, f := range c.Schema.Fields() {
		if f.Name() == name {
			return true
		}
	}
	return false
}

// Config configures a Server. Zero fields take the documented defaults.
type Config struct {
	// Topics are the topics events may be posted to. At least one; names unique.
	Topics []Topic
	// MaxBodyBytes bounds a request body; larger bodies answer 413. Default 10 MiB.
	MaxBodyBytes int64
	// AckTimeout bounds the wait for Kafka's acknowledgement; later answers 503.
	// Default 5s.
	AckTimeout time.Duration
	// CommitGrace is how long past AckTimeout a request waits for the outcome of a
	// transaction commit already sent; a producer that has not answered by then gets
	// 504 (outcome unknown). Default DefaultCommitGrace.
	CommitGrace time.Duration
	// IdempotencyKeys bounds how many Idempotency-Keys (with the hash of their body)
	// are remembered to answer 422 to a key reused with another body. Default
	// DefaultIdempotencyKeys.
	IdempotencyKeys int
	// IdempotencyTTL is how long a key is remembered. Default DefaultIdempotencyTTL.
	IdempotencyTTL time.Duration
	// MaxFuture rejects events whose event_time is further ahead of the receive time.
	// Default 5m.
	MaxFuture time.Duration
	// Now is the clock for receive times (default event_time, sluice-ingest-ts).
	// Default time.Now.
	Now func() time.Time
	// Logger receives request failures. Default: discard.
	Logger *slog.Logger
	// Registerer receives the ingest metrics. Default: a new registry.
	Registerer prometheus.Registerer
	// Gatherer is served on /metrics. Default: Registerer if it is a Gatherer.
	Gatherer prometheus.Gatherer
	// Ready reports whether the dependencies (broker, registry) are reachable; /readyz
	// calls it with a 2s timeout. Default: always ready.
	Ready func(context.Context) error
	// Auth configures JWT bearer authentication of the API routes. The zero value
	// leaves it off and logs a warning; see AuthConfig.
	Auth AuthConfig
	// RateLimit limits requests per client IP and per principal. The zero value turns
	// rate limiting off.
	RateLimit RateLimitConfig
	// CORS lets browsers on other origins call the API. The zero value allows none.
	CORS CORSConfig
	// Examples gives an example event per topic for /openapi.json (nil: none).
	Examples Example
	// WebSocket configures GET /api/v1/stream/{topic} and GET /api/v1/ingest/{topic}; New
	// registers them when Hub is set (else call RegisterWebSockets). Authorize defaults to
	// the server's own auth.
	WebSocket WSOptions
	// ReadTimeout bounds reading one request, headers and body: a client that trickles
	// its body (slowloris) is cut off. Default 30s.
	ReadTimeout time.Duration
	// MaxInflightBytes bounds the request body bytes all requests together may hold.
	// A request reserves its declared Content-Length (MaxBodyBytes when chunked, plus
	// MaxBodyBytes for the decompressed copy of a compressed body) before its body is
	// read, lowers that to its body's real size once read, and holds it until it is
	// answered; a request that does not fit answers 503 with Retry-After at once, its
	// body unread. Must be >= 2 x MaxBodyBytes. Default DefaultInflightBodies x
	// MaxBodyBytes.
	MaxInflightBytes int64
	// MaxConnections caps the open connections (WebSockets included) of Serve; past it a
	// new connection is answered 503 with Retry-After and closed. Default
	// DefaultMaxConnections; -1 turns the cap off.
	MaxConnections int
	// MaxConnectionsPerIP caps the open connections of Serve per peer IP address; past it
	// a new connection is answered 429 with Retry-After and closed. Behind a proxy or load
	// balancer every client shares its address, so leave it off there. Default 0 (off).
	MaxConnectionsPerIP int
}

// withDefaults validates c and returns it with defaults applied.
func (c Config) withDefaults() (Config, error) {
	if len(c.Topics) == 0 {
		return c, errors.New("ingest: topics: at least one required")
	}
	seen := make(map[string]bool, len(c.Topics))
	topics := make([]Topic, len(c.Topics))
	for i, t := range c.Topics {
		if err := t.Validate(); err != nil {
			return c, fmt.Errorf("ingest: topics[%d]: %w", i, err)
		}
		if seen[t.Name] {
			return c, fmt.Errorf("ingest: topics[%d]: %s: duplicate name", i, t.Name)
		}
		seen[t.Name] = true
		if t.Subject == "" {
			t.Subject = t.Name + "-value"
		}
		if t.MaxMessageBytes <= 0 {
			t.MaxMessageBytes = DefaultMaxMessageBytes
		}
		topics[i] = t
	}
	c.Topics = topics
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	switch {
	case c.MaxBodyBytes < 0:
		return c, fmt.Errorf("ingest: max_body_bytes: must be >= 0 (got %d)", c.MaxBodyBytes)
	case c.MaxBodyBytes > 1<<31-1:
		return c, fmt.Errorf("ingest: max_body_bytes: must be < 2 GiB (got %d)", c.MaxBodyBytes)
	case c.AckTimeout < 0:
		return c, fmt.Errorf("ingest: ack_timeout: must be >= 0 (got %q)", c.AckTimeout)
	case c.MaxFuture < 0:
		return c, fmt.Errorf("ingest: max_future: must be >= 0 (got %q)", c.MaxFuture)
	case c.CommitGrace < 0:
		return c, fmt.Errorf("ingest: commit_grace: must be >= 0 (got %q)", c.CommitGrace)
	case c.IdempotencyKeys < 0:
		return c, fmt.Errorf("ingest: idempotency_keys: must be >= 0 (got %d)", c.IdempotencyKeys)
	case c.IdempotencyTTL < 0:
		return c, fmt.Errorf("ingest: idempotency_ttl: must be >= 0 (got %q)", c.IdempotencyTTL)
	}
	if c.CommitGrace == 0 {
		c.CommitGrace = DefaultCommitGrace
	}
	if c.IdempotencyKeys == 0 {
		c.IdempotencyKeys = DefaultIdempotencyKeys
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if err := c.Auth.validate(); err != nil {
		return c, fmt.Errorf("ingest: auth: %w", err)
	}
	rl, err := c.RateLimit.withDefaults()
	if err != nil {
		return c, fmt.Errorf("ingest: rate_limit: %w", err)
	}
	c.RateLimit = rl
	if err := c.CORS.validate(); err != nil {
		return c, fmt.Errorf("ingest: cors: %w", err)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	switch {
	case c.MaxInflightBytes == 0:
		c.MaxInflightBytes = DefaultInflightBodies * c.MaxBodyBytes
	case c.MaxInflightBytes < 2*c.MaxBodyBytes:
		return c, fmt.Errorf("ingest: max_inflight_bytes: must be >= 2 x max_body_bytes = %d (got %d)",
			2*c.MaxBodyBytes, c.MaxInflightBytes)
	}
	switch {
	case c.MaxConnections == 0:
		c.MaxConnections = DefaultMaxConnections
	case c.MaxConnections < -1:
		return c, fmt.Errorf("ingest: max_connections: must be > 0, or -1 for no cap (got %d)", c.MaxConnections)
	}
	if c.MaxConnectionsPerIP < 0 {
		return c, fmt.Errorf("ingest: max_connections_per_ip: must be >= 0 (got %d)", c.MaxConnectionsPerIP)
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.MaxFuture == 0 {
		c.MaxFuture = DefaultMaxFuture
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		reg := prometheus.NewRegistry()
		c.Registerer = reg
		if c.Gatherer == nil {
			c.Gatherer = reg
		}
	}
	if c.Gatherer == nil {
		if g, ok := c.Registerer.(prometheus.Gatherer); ok {
			c.Gatherer = g
		} else {
			c.Gatherer = prometheus.Gatherers{}
		}
	}
	if c.Ready == nil {
		c.Ready = func(context.Context) error { return nil }
	}
	return c, nil
}
