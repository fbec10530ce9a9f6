package config

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// UnmarshalYAML reads a Go duration string such as "5s", "1m", "1h30m" or "24h"
// (time.ParseDuration). A bare number other than 0 is rejected because its unit would be a
// guess, and so is a negative duration. Problems are reported as *yaml.TypeError with the
// line, so the decoder lists them together with every other type error of the file.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{
			fmt.Sprintf("line %d: duration must be a string such as \"5s\" or \"24h\"", n.Line),
		}}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{
			fmt.Sprintf("line %d: invalid duration %q: use a value such as \"5s\", \"1m\" or \"24h\"", n.Line, n.Value),
		}}
	}
	if v < 0 {
		return &yaml.TypeError{Errors: []string{
			fmt.Sprintf("line %d: duration %q must not be negative", n.Line, n.Value),
		}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d in the form UnmarshalYAML reads ("1m0s").
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String returns d in time.Duration notation, for example "1m0s".
func (d Duration) String() string { return time.Duration(d).String() }
