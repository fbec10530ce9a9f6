package sink

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/pipeline/schema"
)

// errWrongType is wrapped by convertValue when a value's Go type does not fit the column.
var errWrongType = errors.New("wrong type")

// convertValue turns an Avro-native value (see package schema) into the value bound for
// a column of type t: integers range-checked to the column's width, times in UTC,
// decimals and times of day as exact strings, JSON as its text. nil stays nil (every
// column is nullable).
func convertValue(t ColumnType, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t.Kind {
	case KindString:
		switch x := v.(type) {
		case string:
			if !utf8.ValidString(x) {
				return nil, errInvalidUTF8
			}
			return x, nil
		case *big.Rat: // a decimal too wide for a DECIMAL column
			if x == nil {
				return nil, nil
			}
			return ratString(x), nil
		}
	case KindInt:
		if n, ok := integer(v); ok {
			if n < math.MinInt32 || n > math.MaxInt32 {
				return nil, fmt.Errorf("%d out of range for int", n)
			}
			return int32(n), nil
		}
	case KindLong:
		if n, ok := integer(v); ok {
			return n, nil
		}
	case KindFloat:
		switch x := v.(type) {
		case float32:
			return x, nil
		case float64:
			return float32(x), nil
		}
		if n, ok := integer(v); ok {
			return float32(n), nil
		}
	case KindDouble:
		switch x := v.(type) {
		case float64:
			return x, nil
		case float32:
			return float64(x), nil
		}
		if n, ok := integer(v); ok {
			return float64(n), nil
		}
	case KindBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case KindTimestamp:
		if ts, ok := v.(time.Time); ok {
			return inRange(ts.UTC())
		}
	case KindDate:
		if ts, ok := v.(time.Time); ok {
			y, m, d := ts.UTC().Date()
			return inRange(time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
		}
	case KindTime:
		if d, ok := v.(time.Duration); ok {
			return timeOfDay(d)
		}
	case KindBytes:
		if b, ok := byteSlice(v); ok {
			return b, nil
		}
	case KindDecimal:
		return decimalString(t, v)
	case KindJSON:
		return jsonText(v)
	case KindOther:
		return nil, fmt.Errorf("%w: column type %s is not written by the sink", errWrongType, t.Raw)
	}
	return nil, fmt.Errorf("%w: %T for a %s column", errWrongType, v, t)
}

// errInvalidUTF8 rejects strings that are not UTF-8, which Avro requires and warehouses
// would store mangled (DuckDB's appender writes NULL).
var errInvalidUTF8 = errors.New("string is not valid UTF-8")

// Timestamps and dates must fall in years 1..9999, which every warehouse holds exactly;
// outside it DuckDB fails the whole batch or wraps the value around.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

func inRange(ts time.Time) (any, error) {
	if ts.Before(minTime) || !ts.Before(maxTime) {
		return nil, fmt.Errorf("time %s outside years 1..9999", ts.Format(time.RFC3339Nano))
	}
	return ts, nil
}

// integer accepts the Go integer types an Avro int or long decodes to.
func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

// byteSlice accepts []byte and fixed-size byte arrays (Avro fixed).
func byteSlice(v any) ([]byte, bool) {
	if b, ok := v.([]byte); ok {
		return b, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Array && rv.Type().Elem().Kind() == reflect.Uint8 {
		out := make([]byte, rv.Len())
		reflect.Copy(reflect.ValueOf(out), rv)
		return out, true
	}
	return nil, false
}

// timeOfDay renders a duration in [0, 24h) as "HH:MM:SS.ffffff".
func timeOfDay(d time.Duration) (string, error) {
	if d < 0 || d >= 24*time.Hour {
		return "", fmt.Errorf("time of day %s out of range", d)
	}
	us := d.Microseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%06d", us/3_600_000_000, us/60_000_000%60, us/1_000_000%60, us%1_000_000), nil
}

// decimalString renders v with exactly t.Scale fraction digits, rejecting values that
// need more fraction digits or more integer digits than the column holds.
func decimalString(t ColumnType, v any) (any, error) {
	var r *big.Rat
	switch x := v.(type) {
	case *big.Rat:
		if x == nil {
			return nil, nil
		}
		r = x
	default:
		n, ok := integer(v)
		if !ok {
			return nil, fmt.Errorf("%w: %T for a %s column", errWrongType, v, t)
		}
		r = new(big.Rat).SetInt64(n)
	}
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Scale)), nil)))
	if !scaled.IsInt() {
		return nil, fmt.Errorf("%s has more than %d fraction digits", ratString(r), t.Scale)
	}
	digits := len(new(big.Int).Abs(scaled.Num()).String())
	if digits > t.Precision {
		return nil, fmt.Errorf("%s does not fit %s", ratString(r), t)
	}
	return r.FloatString(t.Scale), nil
}

// ratString renders a rational exactly when it has a finite decimal expansion.
func ratString(r *big.Rat) string {
	if prec, exact := r.FloatPrec(); exact {
		return r.FloatString(prec)
	}
	return r.FloatString(34)
}

// jsonText renders an Avro-native value as JSON text, the way `sluice consume` does
// (times RFC 3339 UTC with milliseconds, bytes base64); map keys are sorted.
func jsonText(v any) (string, error) {
	j := schema.ToJSON(map[string]any{"v": v})["v"]
	if !validJSONStrings(j) {
		return "", errInvalidUTF8
	}
	b, err := json.Marshal(j)
	if err != nil {
		return "", fmt.Errorf("%w: %T as JSON: %v", errWrongType, v, err)
	}
	return string(b), nil
}

// validJSONStrings reports whether every string and map key in a ToJSON value is UTF-8
// (encoding/json would silently replace the bad bytes).
func validJSONStrings(v any) bool {
	switch x := v.(type) {
	case string:
		return utf8.ValidString(x)
	case map[string]string:
		for k, e := range x {
			if !utf8.ValidString(k) || !utf8.ValidString(e) {
				return false
			}
		}
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) || !validJSONStrings(e) {
				return false
			}
		}
	case []any:
		for _, e := range x {
			if !validJSONStrings(e) {
				return false
			}
		}
	}
	return true
}

// recordMetadata is the RECORD_METADATA document of a row.
type recordMetadata struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	EventID   string `json:"event_id,omitempty"`
	// IngestTS is the sluice-ingest-ts header in unix microseconds (null when absent).
	IngestTS *int64 `json:"ingest_ts"`
}

func metadataJSON(b *Batch, r *Row, eventID string) string {
	md := recordMetadata{Topic: b.Topic, Partition: b.Partition, Offset: r.Offset, EventID: eventID}
	if !r.IngestTS.IsZero() {
		us := r.IngestTS.UnixMicro()
		md.IngestTS = &us
	}
	out, _ := json.Marshal(md) // plain strings and integers: cannot fail
	return string(out)
}
