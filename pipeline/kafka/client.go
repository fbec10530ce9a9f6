package kafka

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/sluicehq/sluice/pipeline/config"
)

// Config is how to reach Kafka.
type Config struct {
	// Brokers are the seed brokers.
	Brokers []string
	// Security is TLS and SASL (PLAIN, SCRAM, AWS MSK IAM). Zero: plaintext, no
	// authentication.
	Security Security
	// Dial, if set, opens the TCP connection to a broker (fault injection: it can cut
	// connections); TLS, when on, runs over the connections it returns. Nil: a net.Dialer
	// with DialTimeout. Do not pass kgo.Dialer in Extra: it would replace TLS.
	Dial func(ctx context.Context, network, host string) (net.Conn, error)
	// ClientID names the client in broker logs and quotas. Default "sluice".
	ClientID string
	// MetadataMinAge bounds how stale metadata may be before a refresh is allowed.
	// Tests set it low (50ms) so an injected leader error recovers fast. Zero: kgo default.
	MetadataMinAge time.Duration
	// SessionTimeout, if > 0, is the group session timeout of consumer-group clients:
	// how long a crashed member that does not come back holds its partitions. Tests set
	// it low. Zero: DefaultSessionTimeout. Classic groups only: a KIP-848 group's session
	// timeout is the broker's (group.consumer.session.timeout.ms).
	SessionTimeout time.Duration
	// InstanceID, if set, makes consumer-group clients static members
	// (group.instance.id): a member restarted with the same id after a crash takes its
	// predecessor's place and assignment at once, without waiting out the session
	// timeout. It must be unique within each group and stable across restarts of one
	// instance. Leave it empty for clients that are not group members.
	InstanceID string
	// GroupProtocol is the consumer-group protocol: GroupProtocolClassic (default) or
	// GroupProtocolConsumer (KIP-848, Kafka 4.0+; falls back to classic on brokers
	// without it).
	GroupProtocol string
	// Logger receives franz-go's warnings and errors. Nil: none.
	Logger *slog.Logger
	// Extra are appended to every client's options (tests, kprom hooks).
	Extra []kgo.Opt
}

// Opts returns the options every Sluice client shares. It cannot fail: an invalid
// Security makes every connection fail with Security.Validate's error, so check Validate
// (or Ping) at start-up.
func (c Config) Opts() []kgo.Opt {
	id := c.ClientID
	if id == "" {
		id = "sluice"
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(id), kgo.RetryBackoffFn(RetryBackoff)}
	if c.MetadataMinAge > 0 {
		opts = append(opts, kgo.MetadataMinAge(c.MetadataMinAge))
	}
	if c.Logger != nil {
		// kgo logs every transaction at info; only its warnings matter to operators.
		l := slog.New(minLevel{c.Logger.Handler(), slog.LevelWarn}).With("component", "kgo")
		opts = append(opts, kgo.WithLogger(kslog.New(l)))
	}
	opts = append(opts, c.Security.opts(c.Dial, nil)...)
	return append(opts, c.Extra...)
}

// RetryBackoff is how long a client waits before its fails-th retry of a request: 100 ms
// doubling up to 1 s, with ±20% jitter (the Java client's retry.backoff.ms and
// retry.backoff.max.ms). kgo's default doubles from 250 ms up to 5 s: after a broker is
// killed, its retries of a commit to the dead transaction coordinator were 3.75 s apart
// when the coordinator moved, so the commit waited ~4 s longer than the failover
// (the fault suite's coordinator-kill case, docs/BENCHMARKS.md).
func RetryBackoff(fails int) time.Duration {
	const lo, hi = 100 * time.Millisecond, time.Second
	d := hi
	if fails <= 1 {
		d = lo
	} else if fails < 5 {
		d = lo << (fails - 1)
	}
	return time.Duration(float64(min(d, hi)) * (0.8 + 0.4*rand.Float64()))
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

// The consumer-group protocols of Config.GroupProtocol.
const (
	// GroupProtocolClassic is the JoinGroup/SyncGroup protocol with client-side
	// assignment.
	GroupProtocolClassic = config.GroupProtocolClassic
	// GroupProtocolConsumer is KIP-848's broker-driven protocol (ConsumerGroupHeartbeat).
	GroupProtocolConsumer = config.GroupProtocolConsumer
)

// DefaultSessionTimeout is the session timeout of classic consumer groups when
// Config.SessionTimeout is zero.
const DefaultSessionTimeout = config.DefaultGroupSessionTimeout

// GroupOpts are the options of consumer-group clients on top of Opts: session timeout,
// static membership (InstanceID) and protocol.
func (c Config) GroupOpts() []kgo.Opt {
	st := c.SessionTimeout
	if st <= 0 {
		st = DefaultSessionTimeout
	}
	// kgo's rebalance timeout (60 s) stays: it bounds how long a live member may take to
	// rejoin (finish its polled batch); a dead one is dropped at its session timeout.
	opts := []kgo.Opt{kgo.SessionTimeout(st), kgo.HeartbeatInterval(st / 5)}
	if c.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(c.InstanceID))
	}
	if c.GroupProtocol == GroupProtocolConsumer {
		opts = append(opts, kgo.ServerSideBalancer())
	}
	return opts
}
