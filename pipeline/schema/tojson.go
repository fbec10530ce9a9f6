package schema

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"time"
)

// rfc3339Millis is how ToJSON writes times: RFC 3339, UTC, always three fraction digits.
const rfc3339Millis = "2006-01-02T15:04:05.000Z07:00"

// ToJSON converts Avro-native values (as Decode returns) to JSON-friendly values:
// time.Time as RFC 3339 with milliseconds in UTC, []byte as base64, unions unwrapped.
//
// Also: fixed-size byte arrays as base64, time.Duration as milliseconds (an integer when
// whole), *big.Rat as a json.Number with its exact decimal digits, and NaN or infinite
// floats, which JSON cannot hold, as the strings "NaN", "Infinity" and "-Infinity".
// Maps and slices are copied; v is not modified.
func ToJSON(v map[string]any) map[string]any {
	if v == nil {
		return nil
	}
	return toJSONMap(v)
}

func toJSONMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, e := range m {
		out[k] = toJSONValue(e)
	}
	return out
}

func toJSONValue(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int, int8, int16, int32, int64, uint8, uint16, uint32, uint64, uint, json.Number:
		return v
	case float64:
		return jsonFloat(x)
	case float32:
		if f := jsonFloat(float64(x)); f != float64(x) {
			return f
		}
		// Shortest digits that read back as the same float32: 19.99, not 19.9899997711.
		return json.Number(strconv.FormatFloat(float64(x), 'g', -1, 32))
	case time.Time:
		return x.UTC().Format(rfc3339Millis)
	case time.Duration:
		if x%time.Millisecond == 0 {
			return x.Milliseconds()
		}
		return float64(x) / float64(time.Millisecond)
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case *big.Rat:
		if x == nil {
			return nil
		}
		if x.IsInt() {
			return json.Number(x.Num().String())
		}
		prec, exact := x.FloatPrec()
		if !exact {
			prec = 34 // a repeating fraction: not from Avro decimal bytes
		}
		return json.Number(x.FloatString(prec))
	case map[string]any:
		return toJSONMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toJSONValue(e)
		}
		return out
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Array && rv.Type().Elem().Kind() == reflect.Uint8 {
		b := make([]byte, rv.Len())
		reflect.Copy(reflect.ValueOf(b), rv)
		return base64.StdEncoding.EncodeToString(b)
	}
	return v
}

// jsonFloat keeps finite floats and names the others.
func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}
