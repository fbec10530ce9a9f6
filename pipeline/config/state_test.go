package config_test

import (
	"flag"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/config"
)

// The state settings come from the --state-* flags (or SLUICE_STATE_*), else the pipeline
// file's state section, else the defaults: pebble in ./sluice-state with a 64 MiB cache.
func TestStateResolve(t *testing.T) {
	file := `
topics:
  - name: orders
state:
  backend: memory
  dir: /var/lib/sluice
  cache: 128MiB
`
	cases := []struct {
		name string
		yaml string
		args []string
		env  map[string]string
		want config.State
	}{
		{"defaults", "topics: [{name: orders}]", nil, nil,
			config.State{Backend: "pebble", Dir: "./sluice-state", CacheBytes: 64 << 20}},
		{"pipeline file", file, nil, nil,
			config.State{Backend: "memory", Dir: "/var/lib/sluice", CacheBytes: 128 << 20}},
		{"flags over the file", file, []string{"--state-backend", "pebble", "--state-dir", "/data/state", "--state-cache", "1GiB"}, nil,
			config.State{Backend: "pebble", Dir: "/data/state", CacheBytes: 1 << 30}},
		{"environment over the file", file, nil, map[string]string{"SLUICE_STATE_DIR": "/env/state"},
			config.State{Backend: "memory", Dir: "/env/state", CacheBytes: 128 << 20}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := config.Parse([]byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			var svc config.Service
			fs := flag.NewFlagSet("sluice", flag.ContinueOnError)
			svc.BindFlags(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			if err := config.ApplyEnv(fs, func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }); err != nil {
				t.Fatal(err)
			}
			if err := svc.State.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := svc.State.Resolve(p.State); got != c.want {
				t.Fatalf("resolved %+v, want %+v", got, c.want)
			}
		})
	}
}

// A state backend other than pebble or memory is refused, naming the flag or the field.
func TestStateBackendInvalid(t *testing.T) {
	if err := (config.State{Backend: "rocksdb"}).Validate(); err == nil || !strings.Contains(err.Error(), "--state-backend") {
		t.Fatalf("Validate = %v, want an error naming --state-backend", err)
	}
	_, err := config.Parse([]byte("topics: [{name: orders}]\nstate: {backend: rocksdb}\n"))
	if err == nil || !strings.Contains(err.Error(), "state.backend") {
		t.Fatalf("Parse = %v, want an error naming state.backend", err)
	}
	_, err = config.Parse([]byte("topics: [{name: orders}]\nstate: {cache: lots}\n"))
	if err == nil || !strings.Contains(err.Error(), "lots") {
		t.Fatalf("Parse = %v, want an error naming the bad cache size", err)
	}
}
