package config_test

import (
	"testing"

	"github.com/sluicehq/sluice/pipeline/config"
)

// FuzzParse checks that no pipeline file, however broken, panics Parse, and that whatever
// Parse accepts is valid.
func FuzzParse(f *testing.F) {
	f.Add(config.DefaultYAML())
	f.Add([]byte("topics: [{name: t}]\n"))
	f.Add([]byte("topics: [{name: t, rules: [{field: a, min: 1, max: 0, pattern: '[('}]}]\n"))
	f.Add([]byte("topics: [{name: t}]\naggregations: [{name: a, from: t, group_by: [x], window: {type: hopping, size: 5m, advance: 0s}, measures: [sum(]}]\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("topics: [{name: t}]\n---\n"))
	f.Add([]byte("dedup: {horizon: -9223372036854775808ns}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := config.Parse(data)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid pipeline: %v", err)
		}
	})
}
