package schema_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/schema"
)

// newStrict starts a strict registry (fakeregistry_test.go) and returns a Registry
// built from rc the way the commands build theirs (schema.NewClient, RegistryOptions).
func newStrict(t *testing.T, rc config.Registry, opts ...strictOption) (*schema.Registry, *strictRegistry) {
	t.Helper()
	fake := newStrictRegistry(t, nil, opts...)
	cl, err := schema.NewClient(fake.URL(), rc)
	if err != nil {
		t.Fatal(err)
	}
	return schema.NewRegistry(cl, schema.RegistryOptions(rc)...), fake
}

// purchaseWithout returns the purchases schema without field (its JSON text).
func purchaseWithout(t *testing.T, s, field string) string {
	t.Helper()
	if !strings.Contains(s, field) {
		t.Fatalf("no %s in the schema; update the test", field)
	}
	return strings.Replace(s, field, "", 1)
}

func TestCompatibilityModes(t *testing.T) {
	const subject = "purchases-value"
	sessionID := `{"name": "session_id", "type": "string"},`
	v1 := func(t *testing.T) string { return purchaseWith(t, "", "") }
	// Chains of versions; the last one's registration is the one under test.
	addRequired := func(t *testing.T) []string {
		return []string{v1(t), purchaseWith(t, "", `{"name":"coupon","type":"string"}`)}
	}
	removeRequired := func(t *testing.T) []string {
		return []string{v1(t), purchaseWithout(t, v1(t), sessionID)}
	}
	addOptional := func(t *testing.T) []string {
		return []string{v1(t), purchaseWith(t, "", `{"name":"coupon","type":["null","string"],"default":null}`)}
	}
	// v2 adds coupon with a default, v3 drops the default: fine against v2, not v1.
	backwardChain := func(t *testing.T) []string {
		return []string{v1(t),
			purchaseWith(t, "", `{"name":"coupon","type":"string","default":""}`),
			purchaseWith(t, "", `{"name":"coupon","type":"string"}`)}
	}
	// v2 gives session_id a default, v3 drops it: v2 reads v3's data, v1 cannot.
	forwardChain := func(t *testing.T) []string {
		withDefault := strings.Replace(v1(t), sessionID, `{"name": "session_id", "type": "string", "default": ""},`, 1)
		return []string{v1(t), withDefault, purchaseWithout(t, v1(t), sessionID)}
	}
	typeChanged := func(t *testing.T) []string {
		return []string{v1(t), purchaseWith(t, `{"name":"items","type":"string","default":"1"}`, "")}
	}
	tests := []struct {
		name    string
		mode    string
		chain   func(t *testing.T) []string
		refused bool
	}{
		{"BACKWARD refuses a new required field", config.CompatBackward, addRequired, true},
		{"BACKWARD allows removing a field", config.CompatBackward, removeRequired, false},
		{"FORWARD allows a new required field", config.CompatForward, addRequired, false},
		{"FORWARD refuses removing a field without default", config.CompatForward, removeRequired, true},
		{"FULL refuses a new required field", config.CompatFull, addRequired, true},
		{"FULL refuses removing a field without default", config.CompatFull, removeRequired, true},
		{"FULL allows an optional field", config.CompatFull, addOptional, false},
		{"BACKWARD checks the latest version only", config.CompatBackward, backwardChain, false},
		{"BACKWARD_TRANSITIVE checks every version", config.CompatBackwardTransitive, backwardChain, true},
		{"FORWARD checks the latest version only", config.CompatForward, forwardChain, false},
		{"FORWARD_TRANSITIVE checks every version", config.CompatForwardTransitive, forwardChain, true},
		{"FULL checks the latest version only", config.CompatFull, forwardChain, false},
		{"FULL_TRANSITIVE checks every version", config.CompatFullTransitive, forwardChain, true},
		{"NONE allows a type change", config.CompatNone, typeChanged, false},
		{"BACKWARD refuses a type change", config.CompatBackward, typeChanged, true},
	}
	// Each case runs twice: the registry enforces the mode (production), or the registry
	// only stores it and Sluice checks (--registry-local-check, the embedded registry).
	backends := []struct {
		name string
		opts []strictOption
		rc   func(mode string) config.Registry
		// why is what the error must quote: the registry's message, or Sluice's own.
		why string
	}{
		{"registry enforces", nil, func(mode string) config.Registry {
			return config.Registry{SubjectCompatibility: map[string]string{subject: mode}}
		}, "incompatible with an earlier schema"},
		{"local check", []strictOption{withoutEnforcement()}, func(mode string) config.Registry {
			return config.Registry{Compatibility: mode, LocalCheck: true}
		}, "checked by sluice"},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				reg, fake := newStrict(t, b.rc(tt.mode), b.opts...)
				chain := tt.chain(t)
				for _, avsc := range chain[:len(chain)-1] {
					register(t, reg, subject, avsc)
				}
				if got := fake.mode(subject); got != tt.mode {
					t.Fatalf("mode on the registry = %q, want %q (set at start-up)", got, tt.mode)
				}
				_, err := reg.Register(t.Context(), subject, chain[len(chain)-1])
				last := len(chain)
				_, stored := fake.GetSchema(subject, last)
				if !tt.refused {
					if err != nil || !stored {
						t.Fatalf("Register() = %v (stored %v), want version %d", err, stored, last)
					}
					return
				}
				if !errors.Is(err, schema.ErrIncompatible) {
					t.Fatalf("Register() error = %v, want ErrIncompatible", err)
				}
				for _, want := range []string{subject, tt.mode, b.why} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not name %q", err, want)
					}
				}
				if stored {
					t.Error("refused schema was stored")
				}
			})
		}
	}
}

func TestCompatibilityDefaultAndReadOnlyConfig(t *testing.T) {
	t.Run("default is BACKWARD, set on every subject", func(t *testing.T) {
		reg, fake := newStrict(t, config.Registry{})
		register(t, reg, "clicks-value", builtin(t, "clicks.avsc"))
		if got := fake.mode("clicks-value"); got != config.CompatBackward {
			t.Fatalf("mode = %q, want BACKWARD", got)
		}
	})
	t.Run("config not writable but already right", func(t *testing.T) {
		// srfake's global mode is BACKWARD, so the subject's effective mode is too.
		reg, _ := newStrict(t, config.Registry{}, withReadOnlyConfig())
		register(t, reg, "clicks-value", builtin(t, "clicks.avsc"))
	})
	t.Run("config not writable and different", func(t *testing.T) {
		reg, _ := newStrict(t, config.Registry{Compatibility: config.CompatFull}, withReadOnlyConfig())
		_, err := reg.Register(t.Context(), "clicks-value", builtin(t, "clicks.avsc"))
		for _, want := range []string{"clicks-value", "FULL", "HTTP 403", "denied"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Register() error = %v, want it to name %q", err, want)
			}
		}
	})
	t.Run("unknown mode", func(t *testing.T) {
		fake := newStrictRegistry(t, nil)
		cl, err := schema.NewClient(fake.URL(), config.Registry{})
		if err != nil {
			t.Fatal(err)
		}
		reg := schema.NewRegistry(cl, schema.WithCompatibility(func(string) string { return "SIDEWAYS" }))
		if _, err := reg.Register(t.Context(), "clicks-value", builtin(t, "clicks.avsc")); err == nil || !strings.Contains(err.Error(), "SIDEWAYS") {
			t.Fatalf("Register() error = %v, want the bad mode named", err)
		}
	})
}

func TestRegistryAuth(t *testing.T) {
	tests := []struct {
		name    string
		server  []strictOption
		rc      config.Registry
		wantErr string // "" for success
	}{
		{"basic auth", []strictOption{withBasicAuth("key", "secret")}, config.Registry{Username: "key", Password: "secret"}, ""},
		{"basic auth wrong password", []strictOption{withBasicAuth("key", "secret")}, config.Registry{Username: "key", Password: "nope"}, "HTTP 401"},
		{"no credentials", []strictOption{withBasicAuth("key", "secret")}, config.Registry{}, "HTTP 401"},
		{"bearer token", []strictOption{withBearer("tok-1")}, config.Registry{BearerToken: "tok-1"}, ""},
		{"bearer token wrong", []strictOption{withBearer("tok-1")}, config.Registry{BearerToken: "tok-2"}, "HTTP 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, _ := newStrict(t, tt.rc, tt.server...)
			_, err := reg.Register(t.Context(), "clicks-value", builtin(t, "clicks.avsc"))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Register() error = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Register() error = %v, want %q", err, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), "clicks-value"):
				t.Fatalf("Register() error = %v, want the subject named", err)
			}
		})
	}
}

func TestRegistryMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth)
	ca.issue(t, dir, "client", x509.ExtKeyUsageClientAuth)
	caFile := filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.cert.Raw)

	serverCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	fake := newStrictRegistry(t, func(s *httptest.Server) {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	})
	withCert := config.Registry{TLSCA: caFile, TLSCert: filepath.Join(dir, "client.pem"), TLSKey: filepath.Join(dir, "client-key.pem")}
	tests := []struct {
		name    string
		rc      config.Registry
		wantErr string
	}{
		{"client certificate", withCert, ""},
		{"no client certificate", config.Registry{TLSCA: caFile}, "certificate"},
		{"server not trusted", config.Registry{TLSCert: withCert.TLSCert, TLSKey: withCert.TLSKey}, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := schema.NewClient(fake.URL(), tt.rc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = schema.NewRegistry(cl).Register(t.Context(), "clicks-value", builtin(t, "clicks.avsc"))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Register() error = %v", err)
				}
				return
			}
			if !errors.Is(err, schema.ErrRegistryUnavailable) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Register() error = %v, want ErrRegistryUnavailable about %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewClientRejectsBadSettings(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, url string
		rc        config.Registry
		want      string
	}{
		{"password without user", "http://r", config.Registry{Password: "x"}, "--registry-username"},
		{"basic and bearer", "http://r", config.Registry{Username: "u", Password: "p", BearerToken: "t"}, "--registry-bearer-token"},
		{"cert without key", "https://r", config.Registry{TLSCert: "c.pem"}, "--registry-tls-cert"},
		{"TLS over http", "http://r", config.Registry{TLSCA: notPEM}, "https://"},
		{"CA not PEM", "https://r", config.Registry{TLSCA: notPEM}, "no PEM certificate"},
		{"CA missing", "https://r", config.Registry{TLSCA: filepath.Join(dir, "nope.pem")}, "--registry-tls-ca"},
		{"bad mode", "http://r", config.Registry{Compatibility: "SIDEWAYS"}, "--registry-compatibility"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := schema.NewClient(tt.url, tt.rc); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewClient() error = %v, want %q", err, tt.want)
			}
		})
	}
}

// testCA is a throwaway certificate authority for the mutual TLS test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// issue writes <name>.pem and <name>-key.pem into dir: a certificate for 127.0.0.1.
func (ca *testCA) issue(t *testing.T, dir, name string, usage x509.ExtKeyUsage) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(len(name)) + 2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Unix(0, 0), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(dir, name+"-key.pem"), "PRIVATE KEY", keyDER)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
