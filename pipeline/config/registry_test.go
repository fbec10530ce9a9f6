package config_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/config"
)

func TestRegistryFlags(t *testing.T) {
	fs, s, _ := newFlags(t)
	args := []string{"--registry-url", "https://sr:8081", "--registry-username", "key",
		"--registry-tls-ca", "ca.pem", "--registry-tls-cert", "c.pem", "--registry-tls-key", "k.pem",
		"--registry-compatibility", "full_transitive",
		"--registry-subject-compatibility", "clicks-value=none, purchases-value=FORWARD"}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	// The password comes from the environment, as the help text asks.
	if err := config.ApplyEnv(fs, env(map[string]string{"SLUICE_REGISTRY_PASSWORD": "secret"})); err != nil {
		t.Fatal(err)
	}
	want := config.Registry{Username: "key", Password: "secret", TLSCA: "ca.pem", TLSCert: "c.pem", TLSKey: "k.pem",
		Compatibility:        config.CompatFullTransitive,
		SubjectCompatibility: map[string]string{"clicks-value": config.CompatNone, "purchases-value": config.CompatForward}}
	if !reflect.DeepEqual(s.Registry, want) {
		t.Fatalf("Registry = %+v, want %+v", s.Registry, want)
	}
	if err := s.Registry.Validate(s.RegistryURL); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	for subject, mode := range map[string]string{"clicks-value": "NONE", "purchases-value": "FORWARD", "page_views-value": "FULL_TRANSITIVE"} {
		if got := s.Registry.CompatibilityFor(subject); got != mode {
			t.Errorf("CompatibilityFor(%s) = %s, want %s", subject, got, mode)
		}
	}
	if got := (config.Registry{}).CompatibilityFor("x"); got != config.CompatBackward {
		t.Errorf("default mode = %s, want BACKWARD", got)
	}
}

func TestRegistryFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--registry-compatibility", "SIDEWAYS"},
		{"--registry-subject-compatibility", "clicks-value"},
		{"--registry-subject-compatibility", "clicks-value=SIDEWAYS"},
		{"--registry-subject-compatibility", "=FULL"},
	} {
		fs, _, _ := newFlags(t)
		if err := fs.Parse(args); err == nil {
			t.Errorf("Parse(%q) succeeded", args)
		}
	}
}

func TestRegistryValidate(t *testing.T) {
	tests := []struct {
		name string
		url  string
		r    config.Registry
		want string // "" valid
	}{
		{"zero", "http://sr", config.Registry{}, ""},
		{"basic", "http://sr", config.Registry{Username: "u", Password: "p"}, ""},
		{"bearer", "http://sr", config.Registry{BearerToken: "t"}, ""},
		{"mtls", "https://sr", config.Registry{TLSCert: "c", TLSKey: "k", TLSCA: "ca"}, ""},
		{"user without password", "http://sr", config.Registry{Username: "u"}, "--registry-password: required with --registry-username (set SLUICE_REGISTRY_PASSWORD)"},
		{"password without user", "http://sr", config.Registry{Password: "p"}, "--registry-username"},
		{"both auths", "http://sr", config.Registry{Username: "u", Password: "p", BearerToken: "t"}, "--registry-bearer-token"},
		{"key without cert", "https://sr", config.Registry{TLSKey: "k"}, "--registry-tls-cert"},
		{"tls over http", "http://sr", config.Registry{TLSCA: "ca"}, "https://"},
		{"bad mode", "http://sr", config.Registry{Compatibility: "backward"}, "--registry-compatibility"},
		{"bad subject mode", "http://sr", config.Registry{SubjectCompatibility: map[string]string{"s": "X"}}, "subject s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Validate(tt.url)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}
