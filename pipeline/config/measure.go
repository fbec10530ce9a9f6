package config

import (
	"fmt"
	"strings"
)

// Measure functions an aggregation may list.
const (
	MeasureCount         = "count"
	MeasureCountDistinct = "count_distinct"
	MeasureSum           = "sum"
	MeasureAvg           = "avg"
	MeasureMin           = "min"
	MeasureMax           = "max"
)

// Measure is one parsed entry of Aggregation.Measures: "count" (Field empty) or
// "<func>(<field>)".
type Measure struct {
	// Func is count, count_distinct, sum, avg, min or max.
	Func string
	// Field is the event field the function reads; empty for count.
	Field string
}

// Column is the name of the measure in the aggregate output record: "count" or
// "<func>_<field>", for example "sum_amount" or "count_distinct_user_id".
func (m Measure) Column() string {
	if m.Field == "" {
		return m.Func
	}
	return m.Func + "_" + m.Field
}

// String returns the measure as written in a pipeline file: "count" or "sum(amount)".
func (m Measure) String() string {
	if m.Field == "" {
		return m.Func
	}
	return m.Func + "(" + m.Field + ")"
}

// ParseMeasure parses "count", "count_distinct(f)", "sum(f)", "avg(f)", "min(f)" or
// "max(f)". Spaces around the function name and the field are allowed; the field must be
// an Avro name ([A-Za-z_][A-Za-z0-9_]*).
func ParseMeasure(s string) (Measure, error) {
	s = strings.TrimSpace(s)
	if s == MeasureCount {
		return Measure{Func: MeasureCount}, nil
	}
	open := strings.IndexByte(s, '(')
	if open < 0 || !strings.HasSuffix(s, ")") {
		return Measure{}, fmt.Errorf("unknown measure %q: want count, count_distinct(f), sum(f), avg(f), min(f) or max(f)", s)
	}
	fn := strings.TrimSpace(s[:open])
	field := strings.TrimSpace(s[open+1 : len(s)-1])
	switch fn {
	case MeasureCountDistinct, MeasureSum, MeasureAvg, MeasureMin, MeasureMax:
	case MeasureCount:
		return Measure{}, fmt.Errorf("measure %q: count takes no field (use count_distinct(%s) to count distinct values)", s, field)
	default:
		return Measure{}, fmt.Errorf("unknown measure function %q in %q: want count, count_distinct, sum, avg, min or max", fn, s)
	}
	if !isAvroName(field) {
		return Measure{}, fmt.Errorf("measure %q: field %q is not a field name", s, field)
	}
	return Measure{Func: fn, Field: field}, nil
}

// ParsedMeasures parses every entry of a.Measures, stopping at the first bad one.
func (a *Aggregation) ParsedMeasures() ([]Measure, error) {
	out := make([]Measure, 0, len(a.Measures))
	for i, s := range a.Measures {
		m, err := ParseMeasure(s)
		if err != nil {
			return nil, fmt.Errorf("measures[%d]: %w", i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// isAvroName reports whether s is a valid Avro field name: [A-Za-z_][A-Za-z0-9_]*.
func isAvroName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
