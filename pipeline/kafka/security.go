package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	kaws "github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicehq/sluice/pipeline/config"
)

// The SASL mechanisms Security accepts (case-insensitive).
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
	SASLAWSMSKIAM   = "AWS_MSK_IAM"
)

// DialTimeout bounds one TCP dial plus TLS handshake to a broker, as kgo's own default.
const DialTimeout = 10 * time.Second

// Security is how a client proves who it is and protects the connection: TLS (optionally
// with a client certificate) and SASL. The zero value is plaintext without authentication.
// Validate reports mistakes naming the sluice flag that holds the field.
type Security struct {
	// TLS turns on TLS to the brokers. Setting CAFile, CertFile, KeyFile, ServerName or
	// InsecureSkipVerify implies it.
	TLS bool
	// CAFile is a PEM bundle of the CAs that sign the brokers' certificates. Empty: the
	// system roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key for mutual TLS; both or
	// neither.
	CertFile, KeyFile string
	// ServerName is the name the broker certificates must carry. Empty: the host part of
	// each broker address.
	ServerName string
	// InsecureSkipVerify accepts any broker certificate. Tests and emergencies only.
	InsecureSkipVerify bool
	// SASLMechanism is "" (none), PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM.
	// AWS_MSK_IAM takes its credentials from the default AWS chain (environment, shared
	// config and credentials files, SSO, web identity, ECS and EC2 roles) and needs TLS.
	SASLMechanism string
	// Username and Password are the PLAIN and SCRAM credentials.
	Username, Password string
}

// SecurityFrom converts the security flags of the sluice commands.
func SecurityFrom(c config.KafkaSecurity) Security {
	return Security{
		TLS: c.TLS, CAFile: c.TLSCA, CertFile: c.TLSCert, KeyFile: c.TLSKey,
		ServerName: c.TLSServerName, InsecureSkipVerify: c.TLSInsecureSkipVerify,
		SASLMechanism: c.SASLMechanism, Username: c.SASLUsername, Password: c.SASLPassword,
	}
}

// TLSEnabled reports whether connections use TLS: TLS is set or implied by another TLS
// field.
func (s Security) TLSEnabled() bool {
	return s.TLS || s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" || s.ServerName != "" ||
		s.InsecureSkipVerify
}

// mechanism returns SASLMechanism in upper case.
func (s Security) mechanism() string {
	return strings.ToUpper(strings.TrimSpace(s.SASLMechanism))
}

// Validate checks s and returns every problem at once (errors.Join), each naming the
// flag, for example `--kafka-sasl-mechanism: unknown "FOO" (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512, AWS_MSK_IAM)`. It reads the CA, certificate and key files.
func (s Security) Validate() error {
	var errs []error
	add := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flagName, fmt.Sprintf(format, args...)))
	}
	switch m := s.mechanism(); m {
	case "":
		if s.Username != "" {
			add("kafka-sasl-username", "set but --kafka-sasl-mechanism is empty")
		}
		if s.Password != "" {
			add("kafka-sasl-password", "set but --kafka-sasl-mechanism is empty")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if s.Username == "" {
			add("kafka-sasl-username", "required by --kafka-sasl-mechanism %s", m)
		}
		if s.Password == "" {
			add("kafka-sasl-password", "required by --kafka-sasl-mechanism %s (or SLUICE_KAFKA_SASL_PASSWORD)", m)
		}
	case SASLAWSMSKIAM:
		if s.Username != "" || s.Password != "" {
			add("kafka-sasl-username", "not used by AWS_MSK_IAM, whose credentials come from the default AWS chain")
		}
		if !s.TLSEnabled() {
			add("kafka-tls", "required by --kafka-sasl-mechanism AWS_MSK_IAM (MSK serves IAM only over TLS)")
		}
	default:
		add("kafka-sasl-mechanism", "unknown %q (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, AWS_MSK_IAM)", s.SASLMechanism)
	}
	if _, err := s.TLSConfig(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// TLSConfig returns the TLS client configuration, or nil when TLS is off. Its ServerName
// is empty unless set; the dialer fills in each broker's host. Errors name the flag.
func (s Security) TLSConfig() (*tls.Config, error) {
	if !s.TLSEnabled() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName, InsecureSkipVerify: s.InsecureSkipVerify}
	var errs []error
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--kafka-tls-ca: %w", err))
		} else {
			c.RootCAs = x509.NewCertPool()
			if !c.RootCAs.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("--kafka-tls-ca: no PEM certificate in %s", s.CAFile))
			}
		}
	}
	switch {
	case s.CertFile != "" && s.KeyFile == "":
		errs = append(errs, errors.New("--kafka-tls-key: required by --kafka-tls-cert"))
	case s.CertFile == "" && s.KeyFile != "":
		errs = append(errs, errors.New("--kafka-tls-cert: required by --kafka-tls-key"))
	case s.CertFile != "":
		pair, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--kafka-tls-cert/--kafka-tls-key: %w", err))
		} else {
			c.Certificates = []tls.Certificate{pair}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// dialFunc opens a connection to a broker, as kgo.Dialer takes.
type dialFunc = func(ctx context.Context, network, host string) (net.Conn, error)

// opts returns the kgo options of s, dialing through dial (nil: a net.Dialer). It installs
// a kgo.Dialer only when dial is set or TLS is on, so a plain Config keeps kgo's defaults.
// probe, if set, watches the dials and the SASL exchanges (Ping). An invalid s (see
// Validate) makes every dial fail with Validate's error.
func (s Security) opts(dial dialFunc, probe *pingProbe) []kgo.Opt {
	if err := s.Validate(); err != nil {
		return []kgo.Opt{kgo.Dialer(func(context.Context, string, string) (net.Conn, error) {
			return nil, fmt.Errorf("kafka security: %w", err)
		})}
	}
	var opts []kgo.Opt
	tc, _ := s.TLSConfig() // Validate checked it
	if dial != nil || tc != nil || probe != nil {
		if dial == nil {
			dial = (&net.Dialer{Timeout: DialTimeout}).DialContext
		}
		if tc != nil {
			dial = tlsDialer(dial, tc)
		}
		if probe != nil {
			dial = probe.dialer(dial)
		}
		opts = append(opts, kgo.Dialer(dial))
	}
	if m := s.saslMechanism(); m != nil {
		if probe != nil {
			m = probedMechanism{m, probe}
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts
}

// tlsDialer runs a TLS client handshake, bounded by DialTimeout, over each connection dial
// opens. An empty ServerName becomes the host part of the broker address.
func tlsDialer(dial dialFunc, tc *tls.Config) dialFunc {
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		c := tc.Clone()
		if c.ServerName == "" {
			name, _, err := net.SplitHostPort(host)
			if err != nil {
				return nil, fmt.Errorf("tls: broker address %q: %w", host, err)
			}
			c.ServerName = name
		}
		ctx, cancel := context.WithTimeout(ctx, DialTimeout)
		defer cancel()
		raw, err := dial(ctx, network, host)
		if err != nil {
			return nil, err
		}
		conn := tls.Client(raw, c)
		if err := conn.HandshakeContext(ctx); err != nil {
			raw.Close()
			if ctx.Err() != nil {
				// A plaintext Kafka listener may wait for the rest of what it takes for a
				// huge request instead of closing.
				return nil, fmt.Errorf("tls handshake with %s: no answer (is it a plaintext listener?): %w", host, err)
			}
			return nil, fmt.Errorf("tls handshake with %s: %w", host, err)
		}
		return conn, nil
	}
}

// saslMechanism returns the franz-go mechanism of a valid s, or nil for none.
func (s Security) saslMechanism() sasl.Mechanism {
	switch s.mechanism() {
	case SASLPlain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	case SASLAWSMSKIAM:
		return kaws.ManagedStreamingIAM(awsChain())
	}
	return nil
}

// awsChain returns an MSK IAM credential source backed by the default AWS chain
// (environment, shared config and credentials files, SSO, web identity, ECS and EC2
// roles). The chain is loaded once, on the first authentication; its provider caches and
// refreshes the credentials.
func awsChain() func(context.Context) (kaws.Auth, error) {
	load := sync.OnceValues(func() (sdkaws.Config, error) {
		return awsconfig.LoadDefaultConfig(context.Background())
	})
	return func(ctx context.Context) (kaws.Auth, error) {
		cfg, err := load()
		if err != nil {
			return kaws.Auth{}, fmt.Errorf("AWS_MSK_IAM: loading the AWS config: %w", err)
		}
		if cfg.Credentials == nil {
			return kaws.Auth{}, errors.New("AWS_MSK_IAM: no AWS credentials in the default chain")
		}
		cr, err := cfg.Credentials.Retrieve(ctx)
		if err != nil {
			return kaws.Auth{}, fmt.Errorf("AWS_MSK_IAM: AWS credentials: %w", err)
		}
		return kaws.Auth{AccessKey: cr.AccessKeyID, SecretKey: cr.SecretAccessKey, SessionToken: cr.SessionToken}, nil
	}
}

// PingTimeout bounds Ping.
const PingTimeout = 10 * time.Second

// Ping connects to the brokers of cfg and asks for the broker list, so a command fails at
// start-up within PingTimeout (or ctx's deadline, if sooner) instead of hanging on a wrong
// address, TLS setting or credential. Errors read, for example,
// `kafka: authentication failed (SASL SCRAM-SHA-256 as user "x"): <broker message>` or
// `kafka: cannot reach brokers [h:9092] within 10s: <last connection error>`. An invalid
// cfg.Security returns Validate's error without dialing. With InsecureSkipVerify it logs a
// warning to cfg.Logger.
//
// A broker that rejects credentials answers SASL_AUTHENTICATION_FAILED, which kgo does not
// retry; one that just closes the connection mid-exchange (kfake, some proxies) looks like
// a network error that kgo retries, so Ping watches the SASL exchange and fails at the
// first connection that dies inside it.
func Ping(ctx context.Context, cfg Config) error {
	sec := cfg.Security
	if err := sec.Validate(); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	if sec.InsecureSkipVerify && cfg.Logger != nil {
		cfg.Logger.Warn("kafka TLS certificate verification is OFF (--kafka-tls-insecure-skip-verify): " +
			"anyone on the network path can read and change the traffic")
	}
	limit := PingTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < limit {
		limit = time.Until(dl).Round(time.Millisecond)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, limit)
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	probe := &pingProbe{cancel: cancel}
	base := cfg
	base.Security, base.Dial = Security{}, nil
	cl, err := kgo.NewClient(append(append(base.Opts(), sec.opts(cfg.Dial, probe)...), kgo.WithHooks(probe))...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest() // no topics: brokers and controller only
	req.Topics = []kmsg.MetadataRequestTopic{}
	_, err = req.RequestWith(ctx, cl)
	if err == nil {
		return nil
	}
	timedOut := false
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		timedOut = errors.Is(cause, context.DeadlineExceeded)
		cl.Close() // ends the dials under way
		if le := probe.lastErr(); timedOut && le != nil {
			err = le
		} else if !timedOut {
			err = cause
		}
	}
	switch {
	case errors.Is(err, errSASLCut) || isAuthErr(err):
		return fmt.Errorf("kafka: authentication failed (%s): %w", sec.saslWho(), err)
	case isTLSErr(err):
		return fmt.Errorf("kafka: TLS with brokers %v failed: %w", cfg.Brokers, err)
	case timedOut:
		return fmt.Errorf("kafka: cannot reach brokers %v within %s: %w", cfg.Brokers, limit, err)
	}
	return fmt.Errorf("kafka: cannot reach brokers %v: %w", cfg.Brokers, err)
}

// saslWho describes the SASL identity for error messages.
func (s Security) saslWho() string {
	switch m := s.mechanism(); m {
	case "":
		return "no --kafka-sasl-mechanism given; does the broker require SASL?"
	case SASLAWSMSKIAM:
		return "SASL AWS_MSK_IAM"
	default:
		return fmt.Sprintf("SASL %s as user %q", m, s.Username)
	}
}

// isAuthErr reports the broker refusing the SASL exchange, or a broker that requires SASL
// closing a connection that did not offer it.
func isAuthErr(err error) bool {
	var eof *kgo.ErrFirstReadEOF
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) ||
		(errors.As(err, &eof) && strings.Contains(eof.Error(), "SASL"))
}

// isTLSErr reports a failed TLS handshake or certificate check, a TLS alert from the broker
// (crypto/tls errors all read "tls: ..."; with TLS 1.3 a refused client certificate
// arrives as an alert on the first read), or a plaintext client talking to a TLS listener
// (kgo's first-read EOF).
func isTLSErr(err error) bool {
	var (
		verify *tls.CertificateVerificationError
		header tls.RecordHeaderError
		eof    *kgo.ErrFirstReadEOF
	)
	msg := err.Error()
	return errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &eof) ||
		strings.Contains(msg, "tls: ") || strings.Contains(msg, "tls handshake")
}

// errSASLCut marks a connection that failed after its SASL exchange began and before it
// completed.
var errSASLCut = errors.New("connection closed during SASL authentication (wrong user, password or mechanism?)")

// pingProbe watches Ping's dials, SASL exchanges and connection attempts. It remembers the
// last failure, which explains a timeout, and cancels Ping when a connection fails in the
// middle of a SASL exchange, which retrying will not fix.
type pingProbe struct {
	cancel context.CancelCauseFunc
	// begun and done count SASL exchanges started and completed.
	begun, done atomic.Int64
	// dials counts dials under way; lastErr waits for them.
	dials sync.WaitGroup
	mu    sync.Mutex
	last  error
}

var _ kgo.HookBrokerConnect = (*pingProbe)(nil)

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (p *pingProbe) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		return
	}
	p.record(err)
	switch {
	case isAuthErr(err):
		p.cancel(err)
	case p.begun.Load() > p.done.Load():
		p.cancel(fmt.Errorf("%w: %w", errSASLCut, err))
	}
}

func (p *pingProbe) record(err error) {
	p.mu.Lock()
	p.last = err
	p.mu.Unlock()
}

// lastErr returns the last failure once the dials under way (which the caller has
// canceled) have returned, waiting at most a second.
func (p *pingProbe) lastErr() error {
	finished := make(chan struct{})
	go func() { p.dials.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Second):
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// dialer returns dial recording its failures.
func (p *pingProbe) dialer(dial dialFunc) dialFunc {
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		p.dials.Add(1)
		defer p.dials.Done()
		conn, err := dial(ctx, network, host)
		if err != nil {
			p.record(err)
		}
		return conn, err
	}
}

// probedMechanism counts the SASL exchanges of a mechanism.
type probedMechanism struct {
	sasl.Mechanism
	p *pingProbe
}

func (m probedMechanism) Authenticate(ctx context.Context, host string) (sasl.Session, []byte, error) {
	m.p.begun.Add(1)
	s, first, err := m.Mechanism.Authenticate(ctx, host)
	if err != nil {
		return nil, nil, err
	}
	return probedSession{s, m.p}, first, nil
}

type probedSession struct {
	sasl.Session
	p *pingProbe
}

func (s probedSession) Challenge(resp []byte) (bool, []byte, error) {
	done, out, err := s.Session.Challenge(resp)
	if done && err == nil {
		s.p.done.Add(1)
	}
	return done, out, err
}
