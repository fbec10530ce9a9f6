// Package schema holds the Avro schemas of the event types, the schema registry client
// and the Confluent wire-format codec, and the JSON <-> Avro conversion used by ingest,
// the processor and `sluice consume`.
//
// # Avro-native values
//
// Records travel through the pipeline as map[string]any holding these Go values (what
// Registry.Decode returns, what Codec.FromJSON returns and what Codec.AppendEncode takes):
//
//	null                                  nil
//	boolean                               bool
//	int                                   int (AppendEncode also takes int8, int16, int32)
//	long                                  int64 (AppendEncode also takes int, int32)
//	float, double                         float32, float64
//	string, enum, uuid                    string
//	bytes, fixed                          []byte
//	array                                 []any
//	map, record                           map[string]any
//	union                                 the value of its branch (nil for null)
//	timestamp-*, local-timestamp-*, date  time.Time in UTC
//	time-millis, time-micros              time.Duration
//	decimal                               *big.Rat
package schema

import (
	"errors"
	"strconv"
	"strings"
)

// classError is a sentinel that carries its class from where it is made, as franz-go's
// kerr errors carry Retriable: pipeline/dlq's ClassOf reads Permanent, so no other
// package classifies decode errors again.
type classError struct {
	msg       string
	permanent bool
}

func (e *classError) Error() string { return e.msg }

// Permanent reports whether retrying cannot help.
func (e *classError) Permanent() bool { return e.permanent }

// Sentinel errors for classification (errors.Is).
var (
	// ErrMalformed: the bytes are not a Confluent-framed Avro record of their schema. Permanent.
	ErrMalformed error = &classError{"schema: malformed record", true}
	// ErrUnknownSchema: the schema id is not in the registry. Permanent.
	ErrUnknownSchema error = &classError{"schema: unknown schema id", true}
	// ErrIncompatible: a changed schema is not compatible with the registered one under the
	// subject's compatibility mode.
	ErrIncompatible = errors.New("schema: incompatible schema change")
	// ErrRegistryUnavailable: the registry could not be reached. Transient.
	ErrRegistryUnavailable error = &classError{"schema: registry unavailable", false}
)

// FieldError is one problem with one field of one event. Field is the field's path:
// a top-level name ("amount"), or for nested values "address.city", "items[2]" and
// "tags.color" (map key).
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every field problem of one event. It is what FromJSON returns.
// Fields are in schema order, unknown fields last in name order.
type ValidationError struct{ Fields []FieldError }

// Error renders every problem: `invalid event: amount: must be a number; x: is required`.
func (e *ValidationError) Error() string {
	if e == nil || len(e.Fields) == 0 {
		return "invalid event"
	}
	var b strings.Builder
	b.WriteString("invalid event: ")
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Field)
		b.WriteString(": ")
		b.WriteString(f.Message)
	}
	return b.String()
}

// joinPath appends a field name to a parent path.
func joinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// indexPath appends an array index to a parent path.
func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}
