package config_test

import (
	"flag"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
)

// newFlags returns a FlagSet bound to a fresh Service, plus one extra flag of the kind cmd
// registers itself.
func newFlags(t *testing.T) (*flag.FlagSet, *config.Service, *string) {
	t.Helper()
	fs := flag.NewFlagSet("sluice", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var s config.Service
	s.BindFlags(fs)
	extra := fs.String("sasl-user", "", "extra flag registered by cmd")
	return fs, &s, extra
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestBindFlagsDefaults(t *testing.T) {
	fs, s, _ := newFlags(t)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	want := config.DefaultService()
	if !reflect.DeepEqual(*s, want) {
		t.Errorf("defaults\n got %+v\nwant %+v", *s, want)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("default service invalid: %v", err)
	}
	if want.InstanceID == "" {
		t.Error("default instance id is empty")
	}
	for name, def := range map[string]string{
		"brokers": "127.0.0.1:9092", "registry-url": "http://127.0.0.1:8081", "http-addr": ":8080",
		"max-body-bytes": "10MiB", "max-buffered-bytes": "64MiB", "ack-timeout": "5s",
		"max-future": "5m0s", "txn-timeout": "1m0s", "txn-max-records": "5000",
		"txn-max-time": "50ms", "log-level": "info", "log-format": "text", "config": "",
		"group-session-timeout": "10s", "group-protocol": "classic",
		"max-inflight-bytes": "0", "max-connections": "4096", "max-connections-per-ip": "0",
	} {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("flag --%s not registered", name)
			continue
		}
		if f.DefValue != def {
			t.Errorf("--%s default = %q, want %q", name, f.DefValue, def)
		}
	}
}

func TestFlagsParse(t *testing.T) {
	fs, s, _ := newFlags(t)
	err := fs.Parse([]string{
		"--brokers", "a:9092, b:9092,", "--max-body-bytes", "1MB", "--max-buffered-bytes", "4096",
		"--ack-timeout", "2s", "--txn-max-records", "10", "--log-level", "debug",
		"--max-inflight-bytes", "64MiB", "--max-connections", "100", "--max-connections-per-ip", "8",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Brokers, []string{"a:9092", "b:9092"}) {
		t.Errorf("brokers = %q", s.Brokers)
	}
	if s.MaxBodyBytes != 1_000_000 || s.MaxBufferedBytes != 4096 || s.MaxInflightBytes != 64<<20 {
		t.Errorf("bytes = %d, %d, %d", s.MaxBodyBytes, s.MaxBufferedBytes, s.MaxInflightBytes)
	}
	if s.MaxConnections != 100 || s.MaxConnectionsPerIP != 8 {
		t.Errorf("connections = %d, %d per IP", s.MaxConnections, s.MaxConnectionsPerIP)
	}
	if s.AckTimeout != 2*time.Second || s.TxnMaxRecords != 10 || s.SlogLevel() != slog.LevelDebug {
		t.Errorf("service = %+v", *s)
	}
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, s *config.Service, extra string)
		wantErr []string
	}{
		{
			name: "env fills unset flags",
			env: map[string]string{
				"SLUICE_BROKERS": "k1:9092,k2:9092", "SLUICE_ACK_TIMEOUT": "3s",
				"SLUICE_MAX_BODY_BYTES": "2MiB", "SLUICE_REGISTRY_URL": "https://sr:8081",
				"SLUICE_TXN_MAX_RECORDS": "7",
			},
			check: func(t *testing.T, s *config.Service, _ string) {
				if !reflect.DeepEqual(s.Brokers, []string{"k1:9092", "k2:9092"}) || s.AckTimeout != 3*time.Second ||
					s.MaxBodyBytes != 2<<20 || s.RegistryURL != "https://sr:8081" || s.TxnMaxRecords != 7 {
					t.Errorf("service = %+v", *s)
				}
			},
		},
		{
			name: "explicit flag wins over env",
			args: []string{"--ack-timeout=9s", "--brokers=cli:9092"},
			env:  map[string]string{"SLUICE_ACK_TIMEOUT": "3s", "SLUICE_BROKERS": "env:9092", "SLUICE_LOG_LEVEL": "warn"},
			check: func(t *testing.T, s *config.Service, _ string) {
				if s.AckTimeout != 9*time.Second || !reflect.DeepEqual(s.Brokers, []string{"cli:9092"}) || s.LogLevel != "warn" {
					t.Errorf("service = %+v", *s)
				}
			},
		},
		{
			name: "flags registered by the caller",
			env:  map[string]string{"SLUICE_SASL_USER": "alice"},
			check: func(t *testing.T, _ *config.Service, extra string) {
				if extra != "alice" {
					t.Errorf("sasl-user = %q", extra)
				}
			},
		},
		{
			name: "unrelated variables are ignored",
			env:  map[string]string{"ACK_TIMEOUT": "zzz", "SLUICE_NOT_A_FLAG": "1"},
			check: func(t *testing.T, s *config.Service, _ string) {
				if s.AckTimeout != 5*time.Second {
					t.Errorf("ack timeout = %s", s.AckTimeout)
				}
			},
		},
		{
			name:    "bad values name their variables",
			env:     map[string]string{"SLUICE_ACK_TIMEOUT": "soon", "SLUICE_MAX_BODY_BYTES": "-1", "SLUICE_TXN_MAX_RECORDS": "lots"},
			wantErr: []string{"SLUICE_ACK_TIMEOUT", "--ack-timeout", "SLUICE_MAX_BODY_BYTES", "SLUICE_TXN_MAX_RECORDS"},
		},
		{
			name:    "bad value of an explicit flag's variable is ignored",
			args:    []string{"--ack-timeout=1s"},
			env:     map[string]string{"SLUICE_ACK_TIMEOUT": "soon"},
			check:   func(t *testing.T, s *config.Service, _ string) {},
			wantErr: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, s, extra := newFlags(t)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := config.ApplyEnv(fs, env(tt.env))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("ApplyEnv succeeded, want error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %s", err, w)
					}
				}
				for _, v := range tt.env {
					if strings.Contains(err.Error(), v) {
						t.Errorf("error %q repeats the value %q", err, v)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s, *extra)
		})
	}
}

func TestEnvName(t *testing.T) {
	if got := config.EnvName("max-buffered-bytes"); got != "SLUICE_MAX_BUFFERED_BYTES" {
		t.Errorf("EnvName = %s", got)
	}
}

func TestServiceValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *config.Service)
		want   string // "" means valid
	}{
		{"defaults", func(s *config.Service) {}, ""},
		{"listen on any port", func(s *config.Service) { s.HTTPAddr = "127.0.0.1:0" }, ""},
		{"no brokers", func(s *config.Service) { s.Brokers = nil }, "--brokers: must list at least one"},
		{"broker without port", func(s *config.Service) { s.Brokers = []string{"kafka"} }, `--brokers: "kafka": must be host:port`},
		{"broker without host", func(s *config.Service) { s.Brokers = []string{":9092"} }, `--brokers: ":9092": must name a host`},
		{"broker bad port", func(s *config.Service) { s.Brokers = []string{"k:99999"} }, `invalid port "99999"`},
		{"registry not a URL", func(s *config.Service) { s.RegistryURL = "sr:8081" }, "--registry-url: must be an http:// or https:// URL"},
		{"http addr", func(s *config.Service) { s.HTTPAddr = "8080" }, "--http-addr:"},
		{"empty instance", func(s *config.Service) { s.InstanceID = "" }, "--instance-id: must not be empty"},
		{"instance with space", func(s *config.Service) { s.InstanceID = "a b" }, "--instance-id: must not contain spaces"},
		{"body bytes", func(s *config.Service) { s.MaxBodyBytes = 0 }, "--max-body-bytes: must be > 0 (got 0)"},
		{"inflight bytes below two bodies", func(s *config.Service) { s.MaxInflightBytes = s.MaxBodyBytes }, "--max-inflight-bytes: must be 0 (8 x --max-body-bytes) or >= 2 x --max-body-bytes"},
		{"inflight bytes", func(s *config.Service) { s.MaxInflightBytes = 2 * s.MaxBodyBytes }, ""},
		{"max connections", func(s *config.Service) { s.MaxConnections = 0 }, "--max-connections: must be > 0 (got 0)"},
		{"max connections per ip", func(s *config.Service) { s.MaxConnectionsPerIP = -1 }, "--max-connections-per-ip: must be >= 0 (got -1)"},
		{"ack timeout", func(s *config.Service) { s.AckTimeout = 0 }, "--ack-timeout: must be > 0 (got 0s)"},
		{"max future", func(s *config.Service) { s.MaxFuture = -time.Second }, "--max-future: must be > 0 (got -1s)"},
		{"buffered bytes", func(s *config.Service) { s.MaxBufferedBytes = -1 }, "--max-buffered-bytes: must be > 0 (got -1)"},
		{"txn timeout zero", func(s *config.Service) { s.TxnTimeout = 0 }, "--txn-timeout: must be >= 1ms"},
		{"txn timeout above MSK", func(s *config.Service) { s.TxnTimeout = 16 * time.Minute }, "--txn-timeout: must be <= 15m0s"},
		{"txn max time above timeout", func(s *config.Service) { s.TxnMaxTime = 2 * time.Minute }, "--txn-max-time: must be < --txn-timeout"},
		{"txn max time zero", func(s *config.Service) { s.TxnMaxTime = 0 }, "--txn-max-time: must be > 0"},
		{"txn max records", func(s *config.Service) { s.TxnMaxRecords = 0 }, "--txn-max-records: must be > 0 (got 0)"},
		{"group session timeout", func(s *config.Service) { s.GroupSessionTimeout = 0 }, "--group-session-timeout: must be >= 100ms"},
		{"group protocol", func(s *config.Service) { s.GroupProtocol = "eager" }, `--group-protocol: must be classic or consumer (got "eager")`},
		{"group protocol consumer", func(s *config.Service) { s.GroupProtocol = "consumer" }, ""},
		{"log level", func(s *config.Service) { s.LogLevel = "loud" }, `--log-level: must be debug, info, warn or error (got "loud")`},
		{"log level case", func(s *config.Service) { s.LogLevel = "WARN" }, ""},
		{"log format", func(s *config.Service) { s.LogFormat = "xml" }, `--log-format: must be text or json (got "xml")`},
		{"log format json", func(s *config.Service) { s.LogFormat = "json" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := config.DefaultService()
			tt.change(&s)
			err := s.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestByteSizes(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "1024", want: 1024},
		{in: "10MiB", want: 10 << 20},
		{in: "10 MiB", want: 10 << 20},
		{in: "512KiB", want: 512 << 10},
		{in: "1GiB", want: 1 << 30},
		{in: "64MB", want: 64e6},
		{in: "3KB", want: 3000},
		{in: "2GB", want: 2e9},
		{in: "100B", want: 100},
		{in: "-1", wantErr: true},
		{in: "1.5MiB", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "10TB", wantErr: true},
		{in: "9999999999999GiB", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			fs, s, _ := newFlags(t)
			err := fs.Set("max-body-bytes", tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Set(%q) = %d, want error", tt.in, s.MaxBodyBytes)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.MaxBodyBytes != tt.want {
				t.Errorf("Set(%q) = %d, want %d", tt.in, s.MaxBodyBytes, tt.want)
			}
		})
	}
}
