package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/fanout"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Deps are what every service shares: configuration, Kafka, the schema registry,
// metrics, logs and the clock.
type Deps struct {
	Service  config.Service
	Pipeline *config.Pipeline
	Kafka    kafka.Config
	// Schemas are the registered schemas (RegisterSchemas).
	Schemas map[string]TopicSchemas
	// AggCodecs encode each aggregation's results (RegisterAggregates).
	AggCodecs map[string]*schema.Codec
	// RegistryClient is used by readiness checks.
	RegistryClient *sr.Client
	Registry       *prometheus.Registry
	Logger         *slog.Logger
	Now            func() time.Time
	// AfterFunc and Sleep are timers on the same clock as Now (nil: real ones); Rand is
	// the jitter source of retries (nil: math/rand/v2).
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	Sleep     func(ctx context.Context, d time.Duration) error
	Rand      func() float64
	// Transforms are the user transforms of the clean stage, by raw topic.
	Transforms map[string]process.Transform
	// ClientMetrics, if set, receives the franz-go metrics of the ingest producer and of
	// each stage's client (sluice_kafka_*). Set it once per process: the client names
	// must be unique in it.
	ClientMetrics prometheus.Registerer
	// IdempotentIngest makes ingest write with the plain idempotent producer instead of
	// transactions, for benchmark comparisons only: a 503 may then follow a partial
	// write of the request.
	IdempotentIngest bool
}

func (d *Deps) defaults() {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Rand == nil {
		d.Rand = rand.Float64
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
}

// Ingest is a running ingest API.
type Ingest struct {
	srv  *ingest.Server
	hub  *fanout.Hub
	prod ingestProducer
	adm  *kadm.Client
	ln   net.Listener
	done chan error
}

// ingestProducer is what the ingest service needs of its producer.
type ingestProducer interface {
	ingest.Producer
	Client() *kgo.Client
	Close(ctx context.Context) error
}

var (
	_ ingestProducer = (*kafka.TxnProducer)(nil)
	_ ingestProducer = (*kafka.Producer)(nil)
)

// ingestCommitGrace is how long past --ack-timeout the ingest producer may wait for
// the answer to a commit it sent (ingest waits a second more).
const ingestCommitGrace = 2 * time.Second

// StartIngest starts the ingest API on ln. It reads each raw topic's max.message.bytes
// (falling back to Kafka's default, with a warning, when the brokers do not answer).
func StartIngest(d Deps, ln net.Listener) (*Ingest, error) {
	d.defaults()
	names := make([]string, 0, len(d.Pipeline.Topics))
	for _, t := range d.Pipeline.Topics {
		names = append(names, t.Name)
	}
	// Filled before the API serves; the producer reads it at its first record per
	// partition (kgo.ProducerBatchMaxBytesFn).
	limits := make(map[string]int, len(names))
	batchMax := func(topic string) int32 {
		if n, ok := limits[topic]; ok {
			return int32(min(n, 1<<30))
		}
		return kafka.DefaultMaxMessageBytes
	}
	var prod ingestProducer
	var err error
	if d.IdempotentIngest {
		kc := d.Kafka
		kc.Extra = append(append([]kgo.Opt(nil), kc.Extra...), kafka.ClientMetrics(d.ClientMetrics, "ingest")...)
		prod, err = kafka.NewProducer(kc, kafka.ProducerOptions{MaxBufferedBytes: d.Service.MaxBufferedBytes})
	} else {
		prod, err = kafka.NewTxnProducer(d.Kafka, kafka.TxnProducerOptions{
			TransactionalID:  wire.TransactionalID("ingest", d.Service.InstanceID),
			MaxBufferedBytes: d.Service.MaxBufferedBytes,
			// A transaction an ingest instance left open holds back the clean stage
			// until this passes (or the instance restarts under its id): keep it short.
			TxnTimeout:    max(10*time.Second, 2*(d.Service.AckTimeout+ingestCommitGrace)),
			CommitGrace:   ingestCommitGrace,
			MaxBatchBytes: batchMax,
			ClientMetrics: d.ClientMetrics,
		})
	}
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(prod.Client())
	lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	got, err := kafka.MaxMessageBytes(lctx, adm, names...)
	cancel()
	if err != nil {
		d.Logger.Warn("ingest: reading max.message.bytes of the raw topics; using Kafka's default for the others",
			"default", kafka.DefaultMaxMessageBytes, "err", err)
	}
	maps.Copy(limits, got)
	var topics []ingest.Topic
	for _, t := range d.Pipeline.Topics {
		ts := d.Schemas[t.Name]
		topics = append(topics, ingest.Topic{Name: t.Name, KeyField: t.KeyField, Subject: wire.Subject(t.Name), Codec: ts.Raw,
			MaxMessageBytes: limits[t.Name], Rules: ts.Rules})
	}
	a := d.Service.API
	var store fiber.Storage
	if a.RateLimitRedisURL != "" {
		st, err := ingest.NewRedisStorage(context.Background(), a.RateLimitRedisURL)
		if err != nil {
			_ = prod.Close(context.Background())
			return nil, fmt.Errorf("ingest: rate-limit store: %w", err)
		}
		store = st
	}
	sreg := schema.NewRegistry(d.RegistryClient)
	hkc := d.Kafka // without the ingest client's kprom hook: one hook serves one client
	hkc.ClientID = wire.ClientID("stream")
	hub := fanout.New(hkc, func(ctx context.Context, r *kgo.Record) (any, error) {
		v, _, err := sreg.Decode(ctx, r.Value)
		if err != nil {
			return nil, err
		}
		return schema.ToJSON(v), nil
	})
	aggs := map[string]bool{}
	for _, a := range d.Pipeline.Aggregations {
		aggs[wire.AggTopic(a.Name)] = true
	}
	srv, err := ingest.New(ingest.Config{
		WebSocket: ingest.WSOptions{Hub: hub, AllowStream: func(t string) bool { return aggs[t] }},
		Auth: ingest.AuthConfig{Disabled: a.AuthDisabled, HS256Secret: []byte(a.JWTHS256Secret),
			JWKSURL: a.JWTJWKSURL, Issuer: a.JWTIssuer, Audience: a.JWTAudience},
		RateLimit: ingest.RateLimitConfig{Max: a.RateLimit, Window: a.RateLimitWindow,
			MaxPerIP: a.RateLimitPerIP, TrustedProxies: a.TrustedProxies, Storage: store},
		CORS:         ingest.CORSConfig{AllowOrigins: a.CORSOrigins, AllowCredentials: a.CORSAllowCredentials},
		Examples:     exampleEvent,
		Topics:       topics,
		MaxBodyBytes: d.Service.MaxBodyBytes,
		AckTimeout:   d.Service.AckTimeout,
		// A second more than the producer's own bound: it answers first.
		CommitGrace:     ingestCommitGrace + time.Second,
		IdempotencyKeys: d.Service.IdempotencyKeys,
		IdempotencyTTL:  d.Service.IdempotencyTTL,
		MaxFuture:       d.Service.MaxFuture,
		ReadTimeout:     d.Service.ReadTimeout,
		Now:             d.Now,
		Logger:          d.Logger.With("service", "ingest"),
		Registerer:      d.Registry,
		Gatherer:        d.Registry,
		Ready:           readiness(adm, d.RegistryClient),

		// Memory bounds: body bytes in flight and open connections.
		MaxInflightBytes:    d.Service.MaxInflightBytes,
		MaxConnections:      d.Service.MaxConnections,
		MaxConnectionsPerIP: d.Service.MaxConnectionsPerIP,
	}, prod)
	if err != nil {
		_ = prod.Close(context.Background())
		return nil, fmt.Errorf("ingest: %w", err)
	}
	in := &Ingest{srv: srv, hub: hub, prod: prod, adm: adm, ln: ln, done: make(chan error, 1)}
	go func() { in.done <- srv.Serve(ln) }()
	return in, nil
}

// Addr is the address the API listens on.
func (in *Ingest) Addr() string { return in.ln.Addr().String() }

// Shutdown stops accepting requests, waits for in-flight ones, then flushes and closes
// the producer.
func (in *Ingest) Shutdown(ctx context.Context) error {
	err := in.srv.Shutdown(ctx)
	in.hub.Close()
	// The producer closes last: WebSocket shutdown still acks what it read.
	return errors.Join(err, in.prod.Close(ctx))
}

// readiness reports whether the brokers and the registry answer.
func readiness(adm *kadm.Client, reg *sr.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := adm.BrokerMetadata(ctx); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		if reg != nil {
			if _, err := reg.Subjects(ctx); err != nil {
				return fmt.Errorf("schema registry: %w", err)
			}
		}
		return nil
	}
}

// exampleEvent is a generated event of topic for the API document (nil for topics
// without a generator).
func exampleEvent(topic string) map[string]any {
	g, err := gen.New(topic, gen.Options{Seed: 1, Now: func() time.Time { return time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		return nil
	}
	ev := g.Next()
	delete(ev, "event_id") // the API assigns it
	return ev
}
