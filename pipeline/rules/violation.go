package rules

import (
	"fmt"
	"strconv"
	"time"
)

// Violation is the first rule an event breaks. It is a permanent error: the record is
// dead-lettered with Error() as its sluice-error header.
type Violation struct {
	// Field is the event field the rule checks.
	Field string
	// Rule is the condition that failed: required, min, max, one_of, max_len or pattern.
	Rule string
	// Message says what was expected and what was found, e.g. `must be >= 0 (got -1)`.
	Message string
}

// Error returns "rule <rule> on <field>: <message>".
func (v *Violation) Error() string {
	return "rule " + v.Rule + " on " + v.Field + ": " + v.Message
}

// maxQuoted bounds how much of an offending string a message repeats, so a 1 MB value
// does not become a 1 MB dead-letter header.
const maxQuoted = 64

// quote returns s quoted, cut to maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// formatNumber prints n without an exponent where that stays short: 1000000, not 1e+06.
func formatNumber(n float64) string {
	if n == float64(int64(n)) && n < 1e15 && n > -1e15 {
		return strconv.FormatInt(int64(n), 10)
	}
	return strconv.FormatFloat(n, 'g', -1, 64)
}

// typeName names the kind of an event value for messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []byte:
		return "bytes"
	case time.Time:
		return "a timestamp"
	case map[string]any:
		return "a record or map"
	case []any:
		return "an array"
	}
	if _, ok := number(v); ok {
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}
