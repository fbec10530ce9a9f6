package kafka

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// Config is how to reach Kafka. Security options (TLS, SASL, MSK IAM) join it later.
type Config struct {
	// Brokers are the seed brokers.
	Brokers []string
	// ClientID names the client in broker logs and quotas. Default "sluice".
	ClientID string
	// MetadataMinAge bounds how stale metadata may be before a refresh is allowed.
	// Tests set it low (50ms) so an injected leader error recovers fast. Zero: kgo default.
	MetadataMinAge time.Duration
	// SessionTimeout, if > 0, is the group session timeout of consumer-group clients:
	// how long a crashed member holds its partitions. Tests set it low. Zero: kgo's 45s.
	SessionTimeout time.Duration
	// Logger receives franz-go's warnings and errors. Nil: none.
	Logger *slog.Logger
	// Extra are appended to every client's options (tests, kprom hooks).
	Extra []kgo.Opt
}

// Opts returns the options every Sluice client shares.
func (c Config) Opts() []kgo.Opt {
	id := c.ClientID
	if id == "" {
		id = "sluice"
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(id)}
	if c.MetadataMinAge > 0 {
		opts = append(opts, kgo.MetadataMinAge(c.MetadataMinAge))
	}
	if c.Logger != nil {
		// kgo logs every transaction at info; only its warnings matter to operators.
		l := slog.New(minLevel{c.Logger.Handler(), slog.LevelWarn}).With("component", "kgo")
		opts = append(opts, kgo.WithLogger(kslog.New(l)))
	}
	return append(opts, c.Extra...)
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

// GroupOpts are the options of consumer-group clients on top of Opts.
func (c Config) GroupOpts() []kgo.Opt {
	if c.SessionTimeout <= 0 {
		return nil
	}
	hb := c.SessionTimeout / 5
	return []kgo.Opt{kgo.SessionTimeout(c.SessionTimeout), kgo.HeartbeatInterval(hb),
		kgo.RebalanceTimeout(2 * c.SessionTimeout)}
}
