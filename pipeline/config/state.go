package config

import (
	"flag"
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"
)

// State backends: where process stages keep their state stores.
const (
	// StateBackendPebble keeps each task's stores on disk (Pebble) with a local
	// checkpoint: state larger than memory, restarts that restore only the changelog
	// written since the checkpoint. The default.
	StateBackendPebble = "pebble"
	// StateBackendMemory keeps the stores in Go maps: every assignment restores the
	// whole changelog. For tests and small state.
	StateBackendMemory = "memory"
)

// DefaultStateDir is the state directory of sluice process unless --state-dir or the
// pipeline file's state.dir says otherwise.
const DefaultStateDir = "./sluice-state"

// DefaultStateCache is the block cache every store on disk of one process shares: 64 MiB.
const DefaultStateCache = 64 << 20

// State configures where the process stages keep their state stores (--state-backend,
// --state-dir, --state-cache). An empty field was not given: the pipeline file's state
// section, then the defaults, fill it (Resolve).
type State struct {
	// Backend is StateBackendPebble or StateBackendMemory.
	Backend string
	// Dir is the root of the stores on disk: one locked directory per task and store.
	Dir string
	// CacheBytes is the block cache the stores on disk share.
	CacheBytes int64
}

// BindFlags registers the state flags. They default to empty: the pipeline file's state
// section applies unless a flag is given.
func (s *State) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.Backend, "state-backend", "", "where the process stages keep their state `backend`: pebble (on disk, local checkpoints) or memory (default: the pipeline file's state.backend, else pebble)")
	fs.StringVar(&s.Dir, "state-dir", "", "root `directory` of the state stores on disk, one locked directory per task (default: the pipeline file's state.dir, else "+DefaultStateDir+")")
	fs.Var((*bytesValue)(&s.CacheBytes), "state-cache", "block cache `size` the state stores on disk share (default: the pipeline file's state.cache, else 64MiB)")
}

// Resolve fills the fields not given from the pipeline file's state section p, then the
// defaults (pebble in DefaultStateDir with a DefaultStateCache cache).
func (s State) Resolve(p PipelineState) State {
	if s.Backend == "" {
		s.Backend = p.Backend
	}
	if s.Backend == "" {
		s.Backend = StateBackendPebble
	}
	if s.Dir == "" {
		s.Dir = p.Dir
	}
	if s.Dir == "" {
		s.Dir = DefaultStateDir
	}
	if s.CacheBytes == 0 {
		s.CacheBytes = int64(p.Cache)
	}
	if s.CacheBytes == 0 {
		s.CacheBytes = DefaultStateCache
	}
	return s
}

// Validate names a bad state flag.
func (s State) Validate() error {
	switch s.Backend {
	case "", StateBackendPebble, StateBackendMemory:
		return nil
	}
	return fmt.Errorf("--state-backend: must be %s or %s (got %q)", StateBackendPebble, StateBackendMemory, s.Backend)
}

// PipelineState is the pipeline file's state section: where this pipeline's process
// stages keep their state unless a --state-* flag says otherwise.
type PipelineState struct {
	// Backend is pebble (default) or memory.
	Backend string `yaml:"backend"`
	// Dir is the root of the stores on disk. Default DefaultStateDir.
	Dir string `yaml:"dir"`
	// Cache is the shared block cache, a byte size such as 64MiB. Default 64 MiB.
	Cache ByteSize `yaml:"cache"`
}

// ByteSize is a byte count in a pipeline file: a plain number or one with a unit
// ("64MiB", "512KiB", "1GB").
type ByteSize int64

// UnmarshalYAML reads a byte size; problems are reported as *yaml.TypeError with the line.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: byte size must be a number or a string such as \"64MiB\"", n.Line)}}
	}
	v, err := parseBytes(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q: %v", n.Line, n.Value, err)}}
	}
	*b = ByteSize(v)
	return nil
}

// MarshalYAML writes b in the form UnmarshalYAML reads.
func (b ByteSize) MarshalYAML() (any, error) {
	v := bytesValue(b)
	s := v.String()
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return int64(b), nil
	}
	return s, nil
}
