package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Stage defaults (see StageConfig).
const (
	DefaultFlushRows     = 5000
	DefaultFlushBytes    = 4 << 20
	DefaultFlushInterval = time.Second
	DefaultDrainTimeout  = 10 * time.Second
	DefaultFencedRetry   = 30 * time.Second
)

// Decoder decodes Confluent-framed Avro records and looks writer schemas up by id.
// schema.Registry implements it.
type Decoder interface {
	// Decode returns the record's Avro-native values and its writer schema id. Errors
	// wrapping schema.ErrMalformed or schema.ErrUnknownSchema (or dlq.ErrPermanent) are
	// permanent: the record is dead-lettered. Any other error is retried.
	Decode(ctx context.Context, b []byte) (map[string]any, int, error)
	// Schema returns the writer schema registered under id.
	Schema(ctx context.Context, id int) (*avro.RecordSchema, error)
}

// StageConfig configures the Kafka-facing sink stage. Zero fields take the defaults
// given on each.
type StageConfig struct {
	// Kafka is how to reach the brokers.
	Kafka kafka.Config
	// Warehouse receives the rows; it owns the offsets (SLUICE_OFFSETS).
	Warehouse Warehouse
	// Decoder decodes record values (schema.Registry).
	Decoder Decoder
	// Schemas maps a consumed topic to its table and schema: for <t>.clean the event
	// table (TableName) and the pipeline's clean schema, created by NewStage; for
	// agg.<name> aggregate = true (the table is AGGREGATES and s is unused). ok is false
	// for a topic the sink does not know.
	Schemas func(topic string) (table string, s avro.Schema, aggregate bool, ok bool)
	// Topics are the topics to consume: <t>.clean and agg.<name>.
	Topics []string
	// Group is the consumer group. Default DefaultGroup ("sluice.sink").
	Group string
	// FlushRows flushes a partition's buffer at this many rows. Default 5000.
	FlushRows int
	// FlushBytes flushes a partition's buffer at this many record bytes (key + value).
	// Default 4 MiB.
	FlushBytes int
	// FlushInterval flushes a partition's buffer this long after its first record was
	// buffered, whether or not more records arrive. Default 1s.
	FlushInterval time.Duration
	// DrainTimeout bounds the final flush at shutdown. Default 10s.
	DrainTimeout time.Duration
	// FencedRetry is how long a fenced partition stays stopped before the stage claims it
	// again if the group still assigns it here (a claim from an older assignment that
	// landed late must not stall the partition forever). Default 30s.
	FencedRetry time.Duration
	// Backoff paces retries of transient errors (warehouse, registry, dead-letter
	// produce). Zero: dlq.DefaultBackoff().
	Backoff dlq.Backoff
	// Now is the wall clock. Default time.Now.
	Now func() time.Time
	// AfterFunc runs f after d on the same clock as Now and returns a function that stops
	// it; it wakes the poll for time flushes. Default time.AfterFunc.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	// Sleep waits between retries on the same clock. Default dlq.Sleep.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand is the jitter source of Backoff. Default math/rand/v2.Float64.
	Rand func() float64
	// Logger receives lifecycle, retry and dead-letter lines. Nil: discard.
	Logger *slog.Logger
	// Registerer, if set, receives the sink metrics (sluice_sink_*). Stages sharing a
	// registry share the collectors.
	Registerer prometheus.Registerer
	// ClientMetrics, if set, receives the franz-go metrics of the stage's client
	// (sluice_kafka_*{client="sink"}). One stage per registry.
	ClientMetrics prometheus.Registerer
	// Latency, if set, is called for every committed row that carries sluice-ingest-ts
	// with the time from ingest to its warehouse commit (wire it to
	// sluice_end_to_end_latency_seconds{stage="sink"}, which the processor's metrics own).
	Latency func(topic string, d time.Duration)
	// DLQ names the dead-letter topic of a consumed topic. Default DefaultDLQ.
	DLQ func(topic string) string
	// InstanceID names this instance in logs and in the Kafka client id, and is its
	// static group membership id (group.instance.id): unique per running instance and
	// stable across its restarts. Empty: a dynamic member.
	InstanceID string
}

// DefaultDLQ is the default StageConfig.DLQ: <t>.dlq for <t>.clean (the raw topic's
// dead-letter topic, where the clean stage's dead letters go too), SinkDLQTopic for
// everything else.
func DefaultDLQ(topic string) string {
	if raw, ok := wire.RawOfClean(topic); ok {
		return wire.DLQTopic(raw)
	}
	return wire.SinkDLQTopic
}

func (c *StageConfig) defaults() {
	if c.Group == "" {
		c.Group = wire.GroupID(wire.StageSink)
	}
	if c.FlushRows <= 0 {
		c.FlushRows = DefaultFlushRows
	}
	if c.FlushBytes <= 0 {
		c.FlushBytes = DefaultFlushBytes
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.FencedRetry <= 0 {
		c.FencedRetry = DefaultFencedRetry
	}
	if c.Backoff == (dlq.Backoff{}) {
		c.Backoff = dlq.DefaultBackoff()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.AfterFunc == nil {
		c.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	if c.Sleep == nil {
		c.Sleep = dlq.Sleep
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.DLQ == nil {
		c.DLQ = DefaultDLQ
	}
}

// validate names the first missing or inconsistent field.
func (c *StageConfig) validate() error {
	switch {
	case c.Warehouse == nil:
		return errors.New("sink stage: warehouse: required")
	case c.Decoder == nil:
		return errors.New("sink stage: decoder: required")
	case c.Schemas == nil:
		return errors.New("sink stage: schemas: required")
	case len(c.Topics) == 0:
		return errors.New("sink stage: topics: at least one required")
	}
	for _, t := range c.Topics {
		table, s, agg, ok := c.Schemas(t)
		switch {
		case !ok:
			return fmt.Errorf("sink stage: topics: no schema for %q", t)
		case !agg && (s == nil || table == ""):
			return fmt.Errorf("sink stage: topics: %q needs a table and a schema", t)
		}
	}
	return nil
}
