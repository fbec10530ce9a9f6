package schema

import (
	"fmt"
	"strings"

	json "github.com/goccy/go-json"
)

// AggregateMeasure is one measure column of an aggregation's output.
type AggregateMeasure struct {
	// Func is count_distinct, sum, avg, min or max.
	Func string
	// Column is "<func>_<field>".
	Column string
}

// Aggregate returns the .avsc of the results of aggregation name (subject
// agg.<name>-value): aggregation, group (map), window_start, window_end, count, one field
// per measure, emitted_at, and final (false for an emit-updates result). Sums are doubles,
// count_distinct a long, avg/min/max nullable doubles (null when no event had a value).
func Aggregate(name string, measures []AggregateMeasure) (string, error) {
	ts := map[string]any{"type": "long", "logicalType": "timestamp-millis"}
	fields := []map[string]any{
		{"name": "aggregation", "type": "string"},
		{"name": "group", "type": map[string]any{"type": "map", "values": "string"}},
		{"name": "window_start", "type": ts},
		{"name": "window_end", "type": ts},
		{"name": "count", "type": "long"},
	}
	seen := map[string]bool{}
	for _, m := range measures {
		if seen[m.Column] {
			return "", fmt.Errorf("aggregate %s: measure %s twice", name, m.Column)
		}
		seen[m.Column] = true
		switch m.Func {
		case "count_distinct":
			fields = append(fields, map[string]any{"name": m.Column, "type": "long"})
		case "sum":
			fields = append(fields, map[string]any{"name": m.Column, "type": "double"})
		case "avg", "min", "max":
			fields = append(fields, map[string]any{"name": m.Column, "type": []any{"null", "double"}, "default": nil})
		default:
			return "", fmt.Errorf("aggregate %s: unknown measure %q", name, m.Func)
		}
	}
	fields = append(fields,
		map[string]any{"name": "emitted_at", "type": ts},
		map[string]any{"name": "final", "type": "boolean", "default": true},
	)
	rec := map[string]any{
		"type":      "record",
		"name":      "Agg_" + avroIdent(name),
		"namespace": "sluice.aggregates",
		"doc":       "Window results of aggregation " + name + ".",
		"fields":    fields,
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// avroIdent maps a name to [A-Za-z0-9_].
func avroIdent(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
