package schema

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"time"
)

// Messages for numbers that are well-formed but do not fit.
const (
	msgIntRange   = "must be an integer between -2147483648 and 2147483647"
	msgLongRange  = "must be an integer between -9223372036854775808 and 9223372036854775807"
	msgFloatRange = "must be a finite number within the range of a float (about 3.4e38)"
	msgDblRange   = "must be a finite number within the range of a double (about 1.8e308)"
)

// scalar converts a JSON value of a non-composite kind. A non-empty msg says what is
// wrong with v.
func (c *converter) scalar(v any) (any, string) {
	switch c.kind {
	case kindNull:
		if v != nil {
			return nil, c.msg
		}
		return nil, ""
	// Values that already have their native type are returned as the same interface
	// value: re-boxing would allocate, and this runs for every field of every event.
	case kindBool:
		if _, ok := v.(bool); ok {
			return v, ""
		}
	case kindString:
		if _, ok := v.(string); ok {
			return v, ""
		}
	case kindInt:
		n, st := integer(v)
		switch {
		case st == numRange || (st == numOK && (n < math.MinInt32 || n > math.MaxInt32)):
			return nil, msgIntRange
		case st == numOK:
			if _, ok := v.(int); ok {
				return v, ""
			}
			return int(n), ""
		}
	case kindLong:
		n, st := integer(v)
		switch st {
		case numRange:
			return nil, msgLongRange
		case numOK:
			if _, ok := v.(int64); ok {
				return v, ""
			}
			return n, ""
		}
	case kindFloat:
		f, st := number(v, 32)
		switch st {
		case numRange:
			return nil, msgFloatRange
		case numOK:
			return float32(f), ""
		}
	case kindDouble:
		f, st := number(v, 64)
		switch st {
		case numRange:
			return nil, msgDblRange
		case numOK:
			if _, ok := v.(float64); ok {
				return v, ""
			}
			return f, ""
		}
	case kindEnum:
		if s, ok := v.(string); ok {
			for _, sym := range c.symbols {
				if s == sym {
					return v, ""
				}
			}
		}
	case kindBytes:
		if b, ok := decodeBytes(v, -1); ok {
			return b, ""
		}
	case kindFixed:
		if b, ok := decodeBytes(v, c.size); ok {
			return b, ""
		}
	case kindTimestamp:
		if t, ok := timestamp(v, c.unit); ok {
			return t, ""
		}
	case kindDate:
		if t, ok := date(v); ok {
			return t, ""
		}
	case kindTimeMillis:
		n, st := integer(v)
		if d, ok := v.(time.Duration); ok {
			n, st = d.Milliseconds(), numOK
		}
		if st == numOK && n >= math.MinInt32 && n <= math.MaxInt32 {
			return time.Duration(n) * time.Millisecond, ""
		}
	case kindTimeMicros:
		if d, ok := v.(time.Duration); ok {
			return d.Truncate(time.Microsecond), ""
		}
		n, st := integer(v)
		if st == numOK && n >= math.MinInt64/1000 && n <= math.MaxInt64/1000 {
			return time.Duration(n) * time.Microsecond, ""
		}
	case kindDecimal:
		if r, ok := decimal(v); ok {
			return r, ""
		}
	}
	return nil, c.msg
}

// numStatus classifies an attempt to read an integer.
type numStatus uint8

const (
	numOK numStatus = iota
	numBad
	numRange
)

// integer reads an integral number: a json.Number or float64 without a fraction, or a
// Go integer. Values outside int64 are numRange.
func integer(v any) (int64, numStatus) {
	switch x := v.(type) {
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err == nil {
			return n, numOK
		}
		if errors.Is(err, strconv.ErrRange) {
			return 0, numRange
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return 0, numRange
			}
			return 0, numBad
		}
		return fromFloat(f)
	case float64:
		return fromFloat(x)
	case float32:
		return fromFloat(float64(x))
	case int:
		return int64(x), numOK
	case int64:
		return x, numOK
	case int32:
		return int64(x), numOK
	case int16:
		return int64(x), numOK
	case int8:
		return int64(x), numOK
	case uint8:
		return int64(x), numOK
	case uint16:
		return int64(x), numOK
	case uint32:
		return int64(x), numOK
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, numRange
		}
		return int64(x), numOK
	case uint64:
		if x > math.MaxInt64 {
			return 0, numRange
		}
		return int64(x), numOK
	}
	return 0, numBad
}

// fromFloat converts an integral float64 that fits int64.
func fromFloat(f float64) (int64, numStatus) {
	switch {
	case math.IsNaN(f):
		return 0, numBad
	case math.IsInf(f, 0):
		return 0, numRange
	case f != math.Trunc(f):
		return 0, numBad
	case f < -(1<<63) || f >= 1<<63:
		return 0, numRange
	}
	return int64(f), numOK
}

// number reads a finite number that fits a float of the given bit size.
func number(v any, bits int) (float64, numStatus) {
	var f float64
	switch x := v.(type) {
	case json.Number:
		p, err := strconv.ParseFloat(string(x), bits)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return 0, numRange
			}
			return 0, numBad
		}
		f = p
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case int32:
		f = float64(x)
	default:
		return 0, numBad
	}
	switch {
	case math.IsNaN(f):
		// JSON has no NaN; Go callers get the same rule.
		return 0, numBad
	case math.IsInf(f, 0), bits == 32 && math.Abs(f) > math.MaxFloat32:
		return 0, numRange
	}
	return f, numOK
}

// decodeBytes reads base64 (or []byte) content, of exactly size bytes if size >= 0.
func decodeBytes(v any, size int) (any, bool) {
	var b []byte
	switch x := v.(type) {
	case string:
		d, err := base64.StdEncoding.DecodeString(x)
		if err != nil {
			return nil, false
		}
		b = d
	case []byte:
		b = x
	default:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Array || rv.Type().Elem().Kind() != reflect.Uint8 {
			return nil, false
		}
		b = make([]byte, rv.Len())
		reflect.Copy(reflect.ValueOf(b), rv)
	}
	if size >= 0 && len(b) != size {
		return nil, false
	}
	return b, true
}

// timestamp reads an RFC 3339 string, integer units since the epoch, or a time.Time,
// truncated to unit, in UTC.
func timestamp(v any, unit time.Duration) (any, bool) {
	var t time.Time
	switch x := v.(type) {
	case string:
		p, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return nil, false
		}
		t = p
	case time.Time:
		t = x
	default:
		n, st := integer(v)
		if st != numOK {
			return nil, false
		}
		if unit == time.Millisecond {
			return time.UnixMilli(n).UTC(), true
		}
		return time.UnixMicro(n).UTC(), true
	}
	if unit == time.Millisecond {
		return time.UnixMilli(t.UnixMilli()).UTC(), true
	}
	return time.UnixMicro(t.UnixMicro()).UTC(), true
}

// date reads "YYYY-MM-DD", integer days since the epoch, or a time.Time (its UTC date).
func date(v any) (any, bool) {
	var days int64
	switch x := v.(type) {
	case string:
		t, err := time.Parse(time.DateOnly, x)
		if err != nil {
			return nil, false
		}
		days = floorDiv(t.Unix(), 86400)
	case time.Time:
		days = floorDiv(x.Unix(), 86400)
	default:
		n, st := integer(v)
		if st != numOK {
			return nil, false
		}
		days = n
	}
	if days < math.MinInt32 || days > math.MaxInt32 {
		return nil, false
	}
	return time.Unix(days*86400, 0).UTC(), true
}

// floorDiv divides rounding toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// decimal reads a decimal number from a JSON number, a numeric string or a *big.Rat.
func decimal(v any) (any, bool) {
	switch x := v.(type) {
	case json.Number:
		return parseRat(string(x))
	case string:
		return parseRat(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, false
		}
		return new(big.Rat).SetFloat64(x), true
	case *big.Rat:
		if x == nil {
			return nil, false
		}
		return new(big.Rat).Set(x), true
	}
	if n, st := integer(v); st == numOK {
		return new(big.Rat).SetInt64(n), true
	}
	return nil, false
}

// parseRat parses a decimal literal; fractions ("1/3") and huge exponents are refused.
func parseRat(s string) (any, bool) {
	if len(s) == 0 || len(s) > 400 {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return nil, false
		}
	}
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}
