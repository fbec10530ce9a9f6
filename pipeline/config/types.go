// Package config holds the pipeline file (topics, schemas, rules, aggregations) and the
// service flags, loaded once at the edge and checked by one Validate.
package config

import (
	"fmt"
	"time"
)

// Pipeline is the pipeline file: which topics exist, how their events are checked and
// deduplicated, and which aggregations run over them. Default returns the built-in one.
type Pipeline struct {
	// Topics are the raw event topics. Each gets <name>.clean, <name>.dlq and <name>.late.
	Topics []Topic `yaml:"topics"`
	// Dedup configures the clean stage's event-id deduplication.
	Dedup Dedup `yaml:"dedup"`
	// Aggregations are the windowed aggregations (run by the aggregate stage).
	Aggregations []Aggregation `yaml:"aggregations"`
	// RetryTiers are the waits of the delay-tier retry topics (_sluice.retry.<d>),
	// shared by every topic. Default: 5s, 1m, 10m.
	RetryTiers []Duration `yaml:"retry_tiers"`
	// Breaker configures the circuit breakers of the clean stage's dependencies.
	Breaker Breaker `yaml:"breaker"`
	// State says where the process stages keep their state stores (the --state-* flags
	// override it).
	State PipelineState `yaml:"state"`
	// Dir is the directory of the pipeline file; relative schema paths resolve against it.
	// Empty for the built-in pipeline.
	Dir string `yaml:"-"`
}

// Topic is one raw event topic and its event type.
type Topic struct {
	// Name is the Kafka topic and the event type (page_views, clicks, purchases).
	Name string `yaml:"name"`
	// Schema is the .avsc file: a built-in name such as "purchases.avsc", or a path
	// relative to the pipeline file. Default: "<name>.avsc".
	Schema string `yaml:"schema"`
	// KeyField is the event field whose value becomes the Kafka record key. Default: user_id.
	KeyField string `yaml:"key_field"`
	// Partitions is the partition count of the raw topic and of every topic derived
	// from it. Default: 3.
	Partitions int32 `yaml:"partitions"`
	// Rules are checked by the clean stage; a violation dead-letters the record.
	Rules []Rule `yaml:"rules"`
	// Retry is how transient failures of the topic's records are retried.
	Retry Retry `yaml:"retry"`
	// Compatibility is the schema registry compatibility mode of the topic's subjects
	// (<name>-value and <name>.clean-value), set on the registry at start-up: one of
	// CompatibilityModes. Empty: --registry-compatibility. A subject named in
	// --registry-subject-compatibility takes that flag's mode instead.
	Compatibility string `yaml:"compatibility"`
}

// Rule is one declarative check of one field. Every set condition must hold.
type Rule struct {
	// Field is the event field the rule checks.
	Field string `yaml:"field"`
	// Required rejects a missing, null or empty-string value.
	Required bool `yaml:"required"`
	// Min and Max bound a numeric field (inclusive).
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
	// OneOf restricts a string field to a set of values.
	OneOf []string `yaml:"one_of"`
	// MaxLen bounds the length of a string field in bytes (0: no bound).
	MaxLen int `yaml:"max_len"`
	// Pattern is a Go regexp a string field must match.
	Pattern string `yaml:"pattern"`
}

// Dedup configures deduplication by event id.
type Dedup struct {
	// Horizon is how long (in event time of the partition) an event id is remembered.
	// Default: 24h.
	Horizon Duration `yaml:"horizon"`
}

// Aggregation is one windowed aggregation (docs/DESIGN.md#windows-and-watermarks).
type Aggregation struct {
	Name     string   `yaml:"name"`
	From     string   `yaml:"from"`
	GroupBy  []string `yaml:"group_by"`
	Window   Window   `yaml:"window"`
	Measures []string `yaml:"measures"`
	// Emit is "final" (default) or "updates".
	Emit string `yaml:"emit"`
	// Start is where a new aggregation (one whose repartition stage has no committed
	// offsets yet) starts reading <from>.clean: "earliest" (the default: the whole
	// retained history, a backfill), "latest" (only what arrives from now on) or an
	// RFC 3339 time (the first record at or after it). An aggregation that already ran
	// ignores it: it resumes where it committed. docs/OPERATIONS.md#fix-a-wrong-aggregation.
	Start string `yaml:"start,omitempty"`
}

// Where a new aggregation starts (Aggregation.Start).
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// StartTime parses a.Start: ok is false for "", earliest and latest, and err is set when
// it is none of those and not an RFC 3339 time.
func (a *Aggregation) StartTime() (t time.Time, ok bool, err error) {
	switch a.Start {
	case "", StartEarliest, StartLatest:
		return time.Time{}, false, nil
	}
	t, err = time.Parse(time.RFC3339Nano, a.Start)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("want %s, %s or an RFC 3339 time (got %q)", StartEarliest, StartLatest, a.Start)
	}
	return t, true, nil
}

// Window describes an event-time window.
type Window struct {
	// Type is tumbling, hopping or session.
	Type    string   `yaml:"type"`
	Size    Duration `yaml:"size"`
	Advance Duration `yaml:"advance"`
	Gap     Duration `yaml:"gap"`
	Grace   Duration `yaml:"grace"`
}

// Duration is a time.Duration that reads "5s", "1m" or "24h" from YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
