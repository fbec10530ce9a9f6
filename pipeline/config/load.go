package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults applied by ApplyDefaults to fields a pipeline file leaves out (or sets to zero).
const (
	// DefaultKeyField is the event field that becomes the Kafka record key.
	DefaultKeyField = "user_id"
	// DefaultPartitions is the partition count of a topic and its derived topics.
	DefaultPartitions int32 = 3
	// DefaultDedupHorizon is how long an event id is remembered by the clean stage.
	DefaultDedupHorizon = 24 * time.Hour
	// EmitFinal emits one result per window and group when the window closes (the default).
	EmitFinal = "final"
	// EmitUpdates emits a result on every change of a window.
	EmitUpdates = "updates"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the text of the built-in pipeline file, for `sluice` to print as a
// starting point for a custom one.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default returns the built-in pipeline: topics page_views, clicks and purchases with their
// rules, a 24h dedup horizon and three aggregations (docs/DESIGN.md#windows-and-watermarks). Every call
// returns a fresh copy that the caller may change. Dir is empty, so schemas resolve to the
// built-in .avsc files.
func Default() *Pipeline {
	p, err := Parse(defaultYAML)
	if err != nil {
		// The embedded file is tested; reaching this is a build defect, not an input error.
		panic(fmt.Sprintf("config: built-in pipeline is invalid: %v", err))
	}
	return p
}

// Load reads, defaults and validates the pipeline file at path. An empty path returns
// Default(). Dir is set to the absolute directory of the file so that relative schema
// paths resolve against it whatever the working directory.
func Load(path string) (*Pipeline, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load pipeline: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load pipeline %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	p.Dir = dir
	return p, nil
}

// Parse decodes one YAML pipeline document, applies the defaults (ApplyDefaults) and
// validates the result (Validate). Unknown keys are errors, so a typo such as "partitons"
// fails instead of silently taking the default. Dir is left empty.
func Parse(data []byte) (*Pipeline, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Pipeline
	if err := dec.Decode(&p); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("pipeline file is empty")
		}
		return nil, fmt.Errorf("decode pipeline: %w", err)
	}
	// A second document would be silently ignored; a file is one pipeline.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("decode pipeline: %w", err)
		}
		return nil, fmt.Errorf("decode pipeline: line %d: a pipeline file holds one YAML document", extra.Line)
	}
	p.ApplyDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// ApplyDefaults fills the fields left zero: a topic's Schema ("<name>.avsc"), KeyField
// (user_id) and Partitions (3), the dedup Horizon (24h) and an aggregation's Emit (final).
// Parse calls it; code that builds a Pipeline by hand calls it before Validate.
func (p *Pipeline) ApplyDefaults() {
	for i := range p.Topics {
		t := &p.Topics[i]
		if t.Schema == "" && t.Name != "" {
			t.Schema = t.Name + ".avsc"
		}
		if t.KeyField == "" {
			t.KeyField = DefaultKeyField
		}
		if t.Partitions == 0 {
			t.Partitions = DefaultPartitions
		}
	}
	if p.Dedup.Horizon == 0 {
		p.Dedup.Horizon = Duration(DefaultDedupHorizon)
	}
	for i := range p.Aggregations {
		if p.Aggregations[i].Emit == "" {
			p.Aggregations[i].Emit = EmitFinal
		}
	}
	p.applyRetryDefaults()
}

// Topic returns the topic called name.
func (p *Pipeline) Topic(name string) (*Topic, bool) {
	for i := range p.Topics {
		if p.Topics[i].Name == name {
			return &p.Topics[i], true
		}
	}
	return nil, false
}

// Aggregation returns the aggregation called name.
func (p *Pipeline) Aggregation(name string) (*Aggregation, bool) {
	for i := range p.Aggregations {
		if p.Aggregations[i].Name == name {
			return &p.Aggregations[i], true
		}
	}
	return nil, false
}
