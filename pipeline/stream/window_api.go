package stream

// This file is the API of the window engine used by the process stages
// (pipeline/process) and the harness (driver, oracle); its rules are those of
// docs/DESIGN.md#windows-and-watermarks.
//
// The implementation: Aggregator in aggregator.go, WindowState and GroupKey in window.go,
// WindowStateCodec in wstate_codec.go, measures in measure.go.

import "math"

// WindowType is tumbling, hopping or session.
type WindowType string

// The window types.
const (
	Tumbling WindowType = "tumbling"
	Hopping  WindowType = "hopping"
	Session  WindowType = "session"
)

// EmitMode is final or updates.
type EmitMode string

// The emit modes.
const (
	// EmitFinal emits one result per window and group, when the window closes.
	EmitFinal EmitMode = "final"
	// EmitUpdates emits the window's current result on every change (downstream upserts by
	// window key); closing a window emits nothing more.
	EmitUpdates EmitMode = "updates"
)

// MeasureFunc is count, count_distinct, sum, avg, min or max.
type MeasureFunc string

// Measure is one aggregate function over one field (Field empty for count).
type Measure struct {
	Func  MeasureFunc
	Field string
}

// Spec describes one aggregation. All times are Unix milliseconds of event time.
type Spec struct {
	// Name is the aggregation name.
	Name string
	Type WindowType
	// Size is the window length (tumbling, hopping), > 0.
	Size int64
	// Advance is the hop (hopping), 0 < Advance <= Size, Size % Advance == 0.
	Advance int64
	// Gap is the session gap (session), > 0.
	Gap int64
	// Grace is how long after a window's end it stays open for out-of-order records, >= 0.
	Grace int64
	// Measures are computed for every window; count is always computed.
	Measures []Measure
	Emit     EmitMode
	// Sources are the ids of every source partition that feeds the task. Stream time is
	// the minimum of their watermarks; a source not yet heard from has watermark
	// NoWatermark, so nothing closes before every source has reported.
	Sources []string
}

// NoWatermark is the watermark of a source partition not yet heard from.
const NoWatermark int64 = math.MinInt64

// Event is one input record, already decoded and keyed.
type Event struct {
	// Source is the id of the source partition the record came from (e.g. "purchases.clean/2").
	Source string
	// Time is the record's event time (Unix ms).
	Time int64
	// Group is the group key (the values of group_by joined; see GroupKey).
	Group string
	// GroupValues are the group_by values, in group_by order.
	GroupValues []string
	// Values holds the measured fields' values (float64/int32/int64/float32 for sum, avg,
	// min and max; any value for count_distinct, compared by its fmt %v string). A missing
	// or nil value does not contribute to that measure (but counts for count).
	Values map[string]any
	// IngestTS and EventID identify the event for latency tracking: results carry those
	// of the newest contributing event (largest IngestTS).
	IngestTS int64
	EventID  string
}

// MeasureValue is one measure of one result.
type MeasureValue struct {
	// Column is "<func>_<field>", e.g. "sum_amount", "count_distinct_user_id".
	Column string
	// Value is the measure; for count_distinct an integral float.
	Value float64
	// Null is set when no contributing event had a value (avg, min, max; sum is 0).
	Null bool
}

// Result is one window result.
type Result struct {
	Group       string
	GroupValues []string
	// Start and End delimit the window: [Start, End) for tumbling and hopping; for a
	// session Start is its first record's time and End its last record's time
	// (inclusive), as Kafka Streams reports sessions.
	Start, End int64
	Count      int64
	// Measures follow Spec.Measures order (count excluded).
	Measures []MeasureValue
	// Final is true for a result emitted because the window closed (emit final).
	Final bool
	// IngestTS and EventID are those of the newest contributing event.
	IngestTS int64
	EventID  string
}

// Late describes why an event was not applied.
type Late struct {
	// Reason is a short fixed phrase, e.g. "window closed".
	Reason string
	// StreamTime is the task's stream time when the event arrived.
	StreamTime int64
}
