package main

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunErrors covers what run rejects before any command touches the network: the
// brokers named are never dialled.
func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(typo, []byte("topics:\n  - name: orders\n    partitons: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nope.yaml")
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantErr    []string // substrings of the error; nil means success
		wantIs     error
		wantStderr string
		// envNotEchoed: the error must not repeat the variable's value (it may be a secret).
		envNotEchoed bool
	}{
		{name: "no command", args: nil, wantErr: []string{"no command"}, wantStderr: "usage: sluice"},
		{name: "help", args: []string{"help"}, wantStderr: "usage: sluice"},
		{name: "unknown command", args: []string{"frobnicate"}, wantErr: []string{`unknown command "frobnicate"`}, wantStderr: "usage: sluice"},
		{name: "unknown flag", args: []string{"topics", "--no-such-flag", "describe"}, wantErr: []string{"no-such-flag"}},
		{name: "command help", args: []string{"dev", "-h"}, wantIs: flag.ErrHelp, wantErr: []string{"help"}, wantStderr: "-kafka-port"},
		{
			name:         "bad env value names its variable",
			args:         []string{"ingest"},
			env:          map[string]string{"SLUICE_ACK_TIMEOUT": "garbage"},
			wantErr:      []string{"SLUICE_ACK_TIMEOUT", "--ack-timeout"},
			envNotEchoed: true,
		},
		{
			name:         "bad env value of a command flag",
			args:         []string{"dev"},
			env:          map[string]string{"SLUICE_KAFKA_PORT": "ninety"},
			wantErr:      []string{"SLUICE_KAFKA_PORT", "--kafka-port"},
			envNotEchoed: true,
		},
		{
			name:    "env value failing validation",
			args:    []string{"topics", "describe"},
			env:     map[string]string{"SLUICE_BROKERS": "kafka-without-port"},
			wantErr: []string{"--brokers", "kafka-without-port"},
		},
		{
			name:    "missing config file",
			args:    []string{"topics", "--config", missing, "describe"},
			wantErr: []string{"load pipeline", missing},
			wantIs:  fs.ErrNotExist,
		},
		{
			name:    "missing config file from env",
			args:    []string{"generate", "--count", "1"},
			env:     map[string]string{"SLUICE_CONFIG": missing},
			wantErr: []string{"load pipeline", missing},
			wantIs:  fs.ErrNotExist,
		},
		{
			name:    "config file with a typo",
			args:    []string{"dev", "--config", typo, "--kafka-port", "1"},
			wantErr: []string{typo, "partitons"},
		},
		{name: "consume without topic", args: []string{"consume"}, wantErr: []string{"usage: sluice consume"}},
		{name: "topics without verb", args: []string{"topics"}, wantErr: []string{"usage: sluice topics"}},
		{name: "generate bad target", args: []string{"generate", "--to", "carrier-pigeon"}, wantErr: []string{"--to", "carrier-pigeon"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stdout, &stderr)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("run = %v, want nil", err)
				}
			} else {
				if err == nil {
					t.Fatalf("run succeeded, want error containing %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				for _, v := range tt.env {
					if tt.envNotEchoed && strings.Contains(err.Error(), v) {
						t.Errorf("error %q repeats the environment value %q", err, v)
					}
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.wantStderr, stderr.String())
			}
		})
	}
}
