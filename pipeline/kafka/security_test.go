package kafka_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
)

// failFast is how quickly a wrong credential or certificate must fail Ping.
const failFast = 5 * time.Second

// pki is a throw-away CA with one server and one client certificate, as PEM files.
type pki struct {
	caFile, certFile, keyFile, clientCertFile, clientKeyFile string
	server                                                   tls.Certificate
	pool                                                     *x509.CertPool
}

// serverName is the DNS name in the server certificate besides 127.0.0.1.
const serverName = "broker.sluice.test"

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{caFile: filepath.Join(dir, "ca.pem"), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	writePEM(t, p.caFile, "CERTIFICATE", caDER)

	issue := func(serial int64, usage x509.ExtKeyUsage, certFile, keyFile string) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: serverName},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{serverName}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "PRIVATE KEY", keyDER)
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	p.certFile, p.keyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	p.server = issue(2, x509.ExtKeyUsageServerAuth, p.certFile, p.keyFile)
	p.clientCertFile, p.clientKeyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	issue(3, x509.ExtKeyUsageClientAuth, p.clientCertFile, p.clientKeyFile)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeFile writes content to a new file in a temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSecurityValidate(t *testing.T) {
	p := newPKI(t)
	notPEM := writeFile(t, "ca.pem", "not a certificate")
	for _, tc := range []struct {
		name string
		sec  kafka.Security
		want []string // substrings of the error; none: valid
	}{
		{name: "zero is plaintext", sec: kafka.Security{}},
		{name: "tls with system roots", sec: kafka.Security{TLS: true}},
		{name: "tls with CA and client cert", sec: kafka.Security{CAFile: p.caFile, CertFile: p.clientCertFile, KeyFile: p.clientKeyFile}},
		{name: "plain", sec: kafka.Security{SASLMechanism: "PLAIN", Username: "u", Password: "p"}},
		{name: "scram lower case", sec: kafka.Security{SASLMechanism: "scram-sha-512", Username: "u", Password: "p"}},
		{name: "msk iam over tls", sec: kafka.Security{TLS: true, SASLMechanism: "AWS_MSK_IAM"}},
		{name: "unknown mechanism", sec: kafka.Security{SASLMechanism: "FOO"},
			want: []string{`--kafka-sasl-mechanism: unknown "FOO" (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, AWS_MSK_IAM)`}},
		{name: "scram without credentials", sec: kafka.Security{SASLMechanism: "SCRAM-SHA-256"},
			want: []string{"--kafka-sasl-username: required by --kafka-sasl-mechanism SCRAM-SHA-256",
				"--kafka-sasl-password: required by --kafka-sasl-mechanism SCRAM-SHA-256 (or SLUICE_KAFKA_SASL_PASSWORD)"}},
		{name: "username without mechanism", sec: kafka.Security{Username: "u", Password: "p"},
			want: []string{"--kafka-sasl-username: set but --kafka-sasl-mechanism is empty",
				"--kafka-sasl-password: set but --kafka-sasl-mechanism is empty"}},
		{name: "msk iam without tls", sec: kafka.Security{SASLMechanism: "AWS_MSK_IAM"},
			want: []string{"--kafka-tls: required by --kafka-sasl-mechanism AWS_MSK_IAM"}},
		{name: "msk iam with password", sec: kafka.Security{TLS: true, SASLMechanism: "AWS_MSK_IAM", Username: "u", Password: "p"},
			want: []string{"--kafka-sasl-username: not used by AWS_MSK_IAM"}},
		{name: "cert without key", sec: kafka.Security{CertFile: p.clientCertFile},
			want: []string{"--kafka-tls-key: required by --kafka-tls-cert"}},
		{name: "key without cert", sec: kafka.Security{KeyFile: p.clientKeyFile},
			want: []string{"--kafka-tls-cert: required by --kafka-tls-key"}},
		{name: "cert and key mismatch", sec: kafka.Security{CertFile: p.clientCertFile, KeyFile: p.keyFile},
			want: []string{"--kafka-tls-cert/--kafka-tls-key: "}},
		{name: "unreadable CA file", sec: kafka.Security{CAFile: filepath.Join(t.TempDir(), "missing.pem")},
			want: []string{"--kafka-tls-ca: open ", "no such file"}},
		{name: "CA file without PEM", sec: kafka.Security{CAFile: notPEM},
			want: []string{"--kafka-tls-ca: no PEM certificate in " + notPEM}},
		{name: "all problems at once", sec: kafka.Security{SASLMechanism: "BAR", CertFile: p.clientCertFile},
			want: []string{`unknown "BAR"`, "--kafka-tls-key: required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.sec.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestSecurityFrom(t *testing.T) {
	got := kafka.SecurityFrom(config.KafkaSecurity{
		TLS: true, TLSCA: "ca", TLSCert: "c", TLSKey: "k", TLSServerName: "sn", TLSInsecureSkipVerify: true,
		SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: "p",
	})
	want := kafka.Security{TLS: true, CAFile: "ca", CertFile: "c", KeyFile: "k", ServerName: "sn",
		InsecureSkipVerify: true, SASLMechanism: "PLAIN", Username: "u", Password: "p"}
	if got != want {
		t.Errorf("SecurityFrom = %+v, want %+v", got, want)
	}
}

func TestTLSConfig(t *testing.T) {
	if tc, err := (kafka.Security{}).TLSConfig(); tc != nil || err != nil {
		t.Errorf("TLSConfig of plaintext = %v, %v; want nil, nil", tc, err)
	}
	p := newPKI(t)
	tc, err := kafka.Security{ServerName: "x", CAFile: p.caFile, CertFile: p.clientCertFile, KeyFile: p.clientKeyFile}.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.ServerName != "x" || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.InsecureSkipVerify || tc.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLSConfig = %+v", tc)
	}
}

// ping runs kafka.Ping and returns its error and duration.
func ping(t *testing.T, cfg kafka.Config) (error, time.Duration) {
	t.Helper()
	start := time.Now()
	err := kafka.Ping(t.Context(), cfg)
	return err, time.Since(start)
}

func TestTLSEndToEnd(t *testing.T) {
	p := newPKI(t)
	c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}))
	for _, tc := range []struct {
		name string
		sec  kafka.Security
		want string // error substring; "": Ping and produce/consume work
	}{
		{name: "CA file", sec: kafka.Security{TLS: true, CAFile: p.caFile}},
		{name: "server name override", sec: kafka.Security{CAFile: p.caFile, ServerName: serverName}},
		{name: "skip verify", sec: kafka.Security{TLS: true, InsecureSkipVerify: true}},
		{name: "system roots do not know the CA", sec: kafka.Security{TLS: true},
			want: "kafka: TLS with brokers"},
		{name: "wrong server name", sec: kafka.Security{CAFile: p.caFile, ServerName: "other.example"},
			want: "other.example"},
		{name: "plaintext client", sec: kafka.Security{}, want: "kafka: TLS with brokers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := kafka.Config{Brokers: c.ListenAddrs(), Security: tc.sec}
			err, took := ping(t, cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Ping: %v", err)
				}
				produceConsume(t, cfg)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Ping = %v, want an error containing %q", err, tc.want)
			}
			t.Log(err)
			if took > failFast {
				t.Errorf("Ping took %s, want < %s", took, failFast)
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool}))
	with := kafka.Config{Brokers: c.ListenAddrs(),
		Security: kafka.Security{CAFile: p.caFile, CertFile: p.clientCertFile, KeyFile: p.clientKeyFile}}
	if err, _ := ping(t, with); err != nil {
		t.Fatalf("Ping with client certificate: %v", err)
	}
	without := kafka.Config{Brokers: c.ListenAddrs(), Security: kafka.Security{CAFile: p.caFile}}
	err, took := ping(t, without)
	if err == nil || !strings.Contains(err.Error(), "kafka: TLS with brokers") {
		t.Fatalf("Ping without client certificate = %v, want a TLS error", err)
	}
	t.Log(err)
	if took > failFast {
		t.Errorf("Ping took %s, want < %s", took, failFast)
	}
}

func TestTLSClientPlaintextBroker(t *testing.T) {
	// kfake, unlike Kafka, waits for the rest of the "request" a ClientHello announces, so
	// the handshake only ends with Ping's deadline.
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err := kafka.Ping(ctx, kafka.Config{Brokers: c.ListenAddrs(), Security: kafka.Security{TLS: true, InsecureSkipVerify: true}})
	want := "(is it a plaintext listener?)"
	if err == nil || !strings.Contains(err.Error(), "kafka: TLS with brokers") || !strings.Contains(err.Error(), want) {
		t.Fatalf("Ping = %v, want a TLS error containing %q", err, want)
	}
}

// countingDialer counts the connections it opens.
type countingDialer struct {
	n atomic.Int32
	d net.Dialer
}

func (c *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.n.Add(1)
	return c.d.DialContext(ctx, network, addr)
}

func TestConfigDial(t *testing.T) {
	p := newPKI(t)
	plainCluster := newCluster(t)
	tlsCluster := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{p.server}}))
	for _, tc := range []struct {
		name    string
		cluster *kfake.Cluster
		sec     kafka.Security
	}{
		{name: "plaintext", cluster: plainCluster},
		{name: "tls over the custom dialer", cluster: tlsCluster, sec: kafka.Security{CAFile: p.caFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d countingDialer
			cfg := kafka.Config{Brokers: tc.cluster.ListenAddrs(), Security: tc.sec, Dial: d.DialContext}
			if err, _ := ping(t, cfg); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if d.n.Load() == 0 {
				t.Error("Config.Dial was not used")
			}
		})
	}
}

// TestSASLEndToEnd checks each mechanism kfake serves. kfake closes the connection on bad
// credentials where a real broker answers SASL_AUTHENTICATION_FAILED (TestSCRAMRealBroker
// covers that path); Ping must fail fast on both.
func TestSASLEndToEnd(t *testing.T) {
	c := newCluster(t, kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plainuser", "plain-pw"),
		kfake.Superuser("SCRAM-SHA-256", "scram256", "pw-256"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "pw-512"))
	for _, tc := range []struct {
		name string
		sec  kafka.Security
		want string // error substring; "": Ping and produce/consume work
	}{
		{name: "plain", sec: kafka.Security{SASLMechanism: "PLAIN", Username: "plainuser", Password: "plain-pw"}},
		{name: "scram-sha-256", sec: kafka.Security{SASLMechanism: "SCRAM-SHA-256", Username: "scram256", Password: "pw-256"}},
		{name: "scram-sha-512", sec: kafka.Security{SASLMechanism: "scram-sha-512", Username: "scram512", Password: "pw-512"}},
		{name: "plain wrong password", sec: kafka.Security{SASLMechanism: "PLAIN", Username: "plainuser", Password: "nope"},
			want: `kafka: authentication failed (SASL PLAIN as user "plainuser"): `},
		{name: "scram-sha-256 wrong password", sec: kafka.Security{SASLMechanism: "SCRAM-SHA-256", Username: "scram256", Password: "nope"},
			want: `kafka: authentication failed (SASL SCRAM-SHA-256 as user "scram256"): `},
		{name: "scram-sha-512 unknown user", sec: kafka.Security{SASLMechanism: "SCRAM-SHA-512", Username: "nobody", Password: "pw-512"},
			want: `kafka: authentication failed (SASL SCRAM-SHA-512 as user "nobody")`},
		{name: "user of another mechanism", sec: kafka.Security{SASLMechanism: "SCRAM-SHA-512", Username: "scram256", Password: "pw-256"},
			want: `kafka: authentication failed (SASL SCRAM-SHA-512 as user "scram256")`},
		{name: "invalid security fails before dialing", sec: kafka.Security{SASLMechanism: "SCRAM-SHA-256"},
			want: "kafka: --kafka-sasl-username: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := kafka.Config{Brokers: c.ListenAddrs(), Security: tc.sec}
			err, took := ping(t, cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Ping: %v", err)
				}
				produceConsume(t, cfg)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Ping = %v, want an error containing %q", err, tc.want)
			}
			t.Log(err)
			if took > failFast {
				t.Errorf("Ping took %s, want < %s", took, failFast)
			}
		})
	}
}

func TestPingBrokerRejectsCredentials(t *testing.T) {
	// A real broker answers bad credentials with SASL_AUTHENTICATION_FAILED and a message;
	// kfake is made to do the same, for every attempt, so a retry would hang.
	c := newCluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "sluice", "pw"))
	const msg = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = kmsg.StringPtr(msg)
		return resp, nil, true
	})
	cfg := kafka.Config{Brokers: c.ListenAddrs(),
		Security: kafka.Security{SASLMechanism: "SCRAM-SHA-256", Username: "sluice", Password: "wrong"}}
	err, took := ping(t, cfg)
	want := `kafka: authentication failed (SASL SCRAM-SHA-256 as user "sluice"): SASL_AUTHENTICATION_FAILED: SASL Authentication failed.: ` + msg
	if err == nil || err.Error() != want {
		t.Fatalf("Ping = %v\nwant %s", err, want)
	}
	if !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("Ping error does not wrap kerr.SaslAuthenticationFailed: %v", err)
	}
	if took > failFast {
		t.Errorf("Ping took %s, want < %s", took, failFast)
	}
}

func TestMSKIAMMechanismName(t *testing.T) {
	// kfake speaks TLS and SASL but not AWS_MSK_IAM: its handshake refuses the mechanism
	// by name before credentials are needed, which shows IAM is what the client asked for.
	p := newPKI(t)
	c := newCluster(t, kfake.EnableSASL(), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{p.server}}))
	cfg := kafka.Config{Brokers: c.ListenAddrs(), Security: kafka.Security{CAFile: p.caFile, SASLMechanism: "AWS_MSK_IAM"}}
	err, took := ping(t, cfg)
	want := "kafka: authentication failed (SASL AWS_MSK_IAM): UNSUPPORTED_SASL_MECHANISM"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Ping = %v, want an error containing %q", err, want)
	}
	if took > failFast {
		t.Errorf("Ping took %s, want < %s", took, failFast)
	}
}

func TestMSKIAMCredentialsFromDefaultChain(t *testing.T) {
	// The default AWS chain reads the standard environment variables first; files and the
	// EC2 metadata service are switched off so the machine's own AWS setup cannot leak in.
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDSLUICETEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token-123",
		"AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
	} {
		t.Setenv(k, v)
	}
	p := newPKI(t)
	c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{p.server}}))
	// kfake does not speak AWS_MSK_IAM: accept the handshake, capture the signed request,
	// and refuse it.
	c.ControlKey(int16(kmsg.SASLHandshake), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return req.ResponseKind(), nil, true
	})
	got := make(chan []byte, 1)
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case got <- req.(*kmsg.SASLAuthenticateRequest).SASLAuthBytes:
		default:
		}
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		return resp, nil, true
	})
	// An MSK broker name carries the region; Dial sends it to kfake.
	const msk = "b-1.sluice.abc123.c2.kafka.eu-west-1.amazonaws.com:9098"
	var d net.Dialer
	cfg := kafka.Config{Brokers: []string{msk},
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, c.ListenAddrs()[0])
		},
		Security: kafka.Security{CAFile: p.caFile, ServerName: serverName, SASLMechanism: "AWS_MSK_IAM"}}
	err, took := ping(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "kafka: authentication failed (SASL AWS_MSK_IAM): SASL_AUTHENTICATION_FAILED") {
		t.Fatalf("Ping = %v, want the refused authentication", err)
	}
	if took > failFast {
		t.Errorf("Ping took %s, want < %s", took, failFast)
	}
	var signed map[string]string
	if err := json.Unmarshal(<-got, &signed); err != nil {
		t.Fatalf("AWS_MSK_IAM payload: %v", err)
	}
	if cred := signed["x-amz-credential"]; !strings.HasPrefix(cred, "AKIDSLUICETEST/") || !strings.Contains(cred, "/eu-west-1/kafka-cluster/") {
		t.Errorf("x-amz-credential = %q, want the environment's key and the broker's region", cred)
	}
	if signed["x-amz-security-token"] != "token-123" || signed["action"] != "kafka-cluster:Connect" || signed["x-amz-signature"] == "" {
		t.Errorf("signed payload = %v", signed)
	}
}

func TestOptsWithInvalidSecurity(t *testing.T) {
	c := newCluster(t)
	cfg := kafka.Config{Brokers: c.ListenAddrs(), Security: kafka.Security{SASLMechanism: "FOO"}}
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), failFast)
	defer cancel()
	_, err = kadm.NewClient(cl).BrokerMetadata(ctx)
	if err == nil || !strings.Contains(err.Error(), `--kafka-sasl-mechanism: unknown "FOO"`) {
		t.Fatalf("request = %v, want the validation error", err)
	}
}

func TestPingUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens on addr now
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	err = kafka.Ping(ctx, kafka.Config{Brokers: []string{addr}})
	want := "kafka: cannot reach brokers [" + addr + "]"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Ping = %v, want an error containing %q", err, want)
	}
}

func TestPingSASLBrokerWithoutSASL(t *testing.T) {
	c := newCluster(t, kfake.EnableSASL())
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	err := kafka.Ping(ctx, kafka.Config{Brokers: c.ListenAddrs()})
	want := "kafka: authentication failed (no --kafka-sasl-mechanism given; does the broker require SASL?)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Ping = %v, want an error containing %q", err, want)
	}
}

// TestSCRAMRealBroker runs against a real broker with a SASL_PLAINTEXT SCRAM listener
// whose user sluice/sluice-secret has SCRAM-SHA-256 and SCRAM-SHA-512 credentials.
func TestSCRAMRealBroker(t *testing.T) {
	brokers := os.Getenv("SLUICE_TEST_SASL_BROKERS")
	if brokers == "" {
		t.Skip("SLUICE_TEST_SASL_BROKERS is unset: no real broker with a SASL_PLAINTEXT SCRAM listener (user sluice/sluice-secret) to test against")
	}
	for _, mech := range []string{kafka.SASLScramSHA256, kafka.SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			cfg := kafka.Config{Brokers: strings.Split(brokers, ","),
				Security: kafka.Security{SASLMechanism: mech, Username: "sluice", Password: "sluice-secret"}}
			if err, _ := ping(t, cfg); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			produceConsume(t, cfg)
			cfg.Security.Password = "wrong"
			err, took := ping(t, cfg)
			want := "kafka: authentication failed (SASL " + mech + ` as user "sluice"): SASL_AUTHENTICATION_FAILED`
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Ping with a wrong password = %v, want an error containing %q", err, want)
			}
			if took > failFast {
				t.Errorf("Ping took %s, want < %s", took, failFast)
			}
		})
	}
}

// produceConsume creates a topic, produces one record and reads it back, all with cfg.
func produceConsume(t *testing.T, cfg kafka.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	topic := "security-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()) + "-" + time.Now().Format("150405.000000000")
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("secret hello")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cons, err := kgo.NewClient(append(cfg.Opts(), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		var fetchErr error
		fs.EachError(func(_ string, _ int32, err error) { fetchErr = errors.Join(fetchErr, err) })
		if fetchErr != nil {
			t.Fatalf("consume: %v", fetchErr)
		}
		if recs := fs.Records(); len(recs) > 0 {
			if string(recs[0].Value) != "secret hello" {
				t.Fatalf("consumed %q", recs[0].Value)
			}
			return
		}
	}
}
