package deploy_test

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/config"
)

// registryTLSMount is where docker-compose.yml mounts SLUICE_REGISTRY_TLS_DIR.
const registryTLSMount = "/etc/sluice/registry-tls"

// registryEnvVars are the SLUICE_* variables of every --registry-* flag the services take,
// read from the flags themselves so that a new flag needs a line in docker-compose.yml.
// --registry-local-check is left out: it is for registries that do not enforce modes,
// and the compose stack runs Confluent's, which does.
func registryEnvVars() []string {
	fs := flag.NewFlagSet("sluice", flag.ContinueOnError)
	var svc config.Service
	svc.BindFlags(fs)
	var out []string
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "registry-") && f.Name != "registry-local-check" {
			out = append(out, config.EnvName(f.Name))
		}
	})
	return out
}

// serviceRegistry parses the registry settings a service's environment gives sluice, the
// way the binary does (BindFlags, then ApplyEnv).
func serviceRegistry(t *testing.T, vars map[string]string) config.Service {
	t.Helper()
	fs := flag.NewFlagSet("sluice", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var svc config.Service
	svc.BindFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := config.ApplyEnv(fs, func(k string) (string, bool) { v, ok := vars[k]; return v, ok }); err != nil {
		t.Fatalf("environment: %v", err)
	}
	return svc
}

func TestComposeRegistrySettings(t *testing.T) {
	vars := registryEnvVars()
	if len(vars) < 8 {
		t.Fatalf("only %d registry flags found: %v", len(vars), vars)
	}
	tests := []struct {
		name string
		env  map[string]string
		want config.Registry
		url  string
	}{
		{name: "defaults: the compose registry, no auth, BACKWARD",
			url:  "http://schema-registry:8081",
			want: config.Registry{Compatibility: config.CompatBackward, SubjectCompatibility: map[string]string{}}},
		{name: "authenticated registry over mutual TLS",
			env: map[string]string{
				"SLUICE_REGISTRY_URL": "https://sr.example:8081", "SLUICE_REGISTRY_USERNAME": "key",
				"SLUICE_REGISTRY_PASSWORD": "secret", "SLUICE_REGISTRY_TLS_CA": registryTLSMount + "/ca.pem",
				"SLUICE_REGISTRY_TLS_CERT": registryTLSMount + "/client.pem", "SLUICE_REGISTRY_TLS_KEY": registryTLSMount + "/client-key.pem",
				"SLUICE_REGISTRY_COMPATIBILITY":         "FULL_TRANSITIVE",
				"SLUICE_REGISTRY_SUBJECT_COMPATIBILITY": "clicks-value=NONE",
			},
			url: "https://sr.example:8081",
			want: config.Registry{Username: "key", Password: "secret", TLSCA: registryTLSMount + "/ca.pem",
				TLSCert: registryTLSMount + "/client.pem", TLSKey: registryTLSMount + "/client-key.pem",
				Compatibility: config.CompatFullTransitive, SubjectCompatibility: map[string]string{"clicks-value": config.CompatNone}}},
		{name: "bearer token",
			env:  map[string]string{"SLUICE_REGISTRY_BEARER_TOKEN": "tok"},
			url:  "http://schema-registry:8081",
			want: config.Registry{BearerToken: "tok", Compatibility: config.CompatBackward, SubjectCompatibility: map[string]string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := loadCompose(t, tt.env)
			n := 0
			for _, s := range p.Services {
				if !isSluice(s) || s.Name == "generator" { // the generator only talks to the ingest API
					continue
				}
				n++
				got := map[string]string{}
				for _, v := range vars {
					val, ok := s.Environment[v]
					if !ok {
						t.Errorf("service %s: no %s", s.Name, v)
						continue
					}
					if val != nil {
						got[v] = *val
					}
				}
				got["SLUICE_REGISTRY_URL"] = env(s, "SLUICE_REGISTRY_URL")
				svc := serviceRegistry(t, got)
				if svc.RegistryURL != tt.url {
					t.Errorf("service %s: registry URL %q, want %q", s.Name, svc.RegistryURL, tt.url)
				}
				if svc.Registry.SubjectCompatibility == nil {
					svc.Registry.SubjectCompatibility = map[string]string{}
				}
				if !reflect.DeepEqual(svc.Registry, tt.want) {
					t.Errorf("service %s: registry settings\n got %+v\nwant %+v", s.Name, svc.Registry, tt.want)
				}
				if err := svc.Registry.Validate(svc.RegistryURL); err != nil {
					t.Errorf("service %s: %v", s.Name, err)
				}
				if hostPath(s, registryTLSMount+"/ca.pem") == "" {
					t.Errorf("service %s: nothing mounted at %s", s.Name, registryTLSMount)
				}
			}
			if n < 4 {
				t.Errorf("checked %d Sluice services, want topics, ingest, process and sink", n)
			}
		})
	}
}
