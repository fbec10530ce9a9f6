package process

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/rules"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Decoder decodes Confluent-framed Avro records (schema.Registry implements it).
type Decoder interface {
	Decode(ctx context.Context, b []byte) (map[string]any, int, error)
}

var _ Decoder = (*schema.Registry)(nil)

// IntoDecoder is a Decoder that can decode into a map it is given, cleared first
// (schema.Registry implements it). The clean stage reuses one map per task with it,
// unless a transform might keep the map.
type IntoDecoder interface {
	DecodeInto(ctx context.Context, b []byte, dst map[string]any) (map[string]any, int, error)
}

var _ IntoDecoder = (*schema.Registry)(nil)

// CleanTopic is what the clean stage needs to know about one raw topic.
type CleanTopic struct {
	// Name is the raw topic.
	Name string
	// Codec encodes <name>.clean records.
	Codec *schema.Codec
	// Rules are the topic's declarative checks.
	Rules *rules.Set
	// Transform, if set, runs on every new event after the rules.
	Transform Transform
	// Retry is how transient failures are retried: InPlace attempts per delivery with
	// InPlaceBackoff bounded by InPlaceBudget, then Policy's tiers, then the DLQ.
	Retry CleanRetry
}

// CleanRetry is the retry configuration of one topic in the clean stage.
type CleanRetry struct {
	InPlace        int
	InPlaceBackoff dlq.Backoff
	InPlaceBudget  time.Duration
	Policy         dlq.Policy
}

// Clean is the clean stage: raw topics -> <topic>.clean, deduplicated by event id, with
// processed_at added; undecodable and rule-violating records -> <topic>.dlq.
type Clean struct {
	Topics  map[string]CleanTopic
	Decoder Decoder
	Horizon time.Duration
	Now     func() time.Time
	Metrics *Metrics
	// Breakers are the circuit breakers of the stage's dependencies (the schema registry,
	// transforms). Nil: no breaker.
	Breakers *dlq.Breakers
	// Sleep waits in place between attempts (dlq.Sleep by default); Rand is the jitter
	// source (nil: no jitter).
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64
	// Logger gets one line per dead letter. Nil: discard.
	Logger *slog.Logger

	state State // from the StageConfig
}

// StageConfig returns the stage configuration of the clean stage; base supplies Kafka,
// instance id, limits, logger and metrics.
func (c *Clean) StageConfig(base StageConfig) StageConfig {
	base.Name = wire.StageClean
	base.Inputs = base.Inputs[:0]
	for name := range c.Topics {
		base.Inputs = append(base.Inputs, name)
	}
	base.Changelog = func(input, store string) string { return wire.ChangelogTopic(wire.StageClean, input, store) }
	base.NewTask = c.newTask
	c.state = base.State
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Metrics == nil {
		c.Metrics = base.Metrics
	}
	if c.Sleep == nil {
		c.Sleep = dlq.Sleep
	}
	if c.Logger == nil {
		c.Logger = base.Logger
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return base
}

func (c *Clean) newTask(id TaskID) (Task, error) {
	t, ok := c.Topics[id.Topic]
	if !ok {
		return nil, fmt.Errorf("clean: no configuration for topic %s", id.Topic)
	}
	store, err := openStore[int64](c.state, wire.StageClean, id, "dedup", stream.Int64Codec{})
	if err != nil {
		return nil, err
	}
	ct := &cleanTask{
		c:         c,
		id:        id,
		partition: id.Partition,
		topic:     t,
		clean:     wire.CleanTopic(t.Name),
		dedup:     stream.NewDedup(store.PackKeys(stream.ULIDKeys{}), c.Horizon),
	}
	// decode -> rules -> dedup check -> transform -> encode, retried in place, guarded
	// by the breakers, its failures routed to a retry tier or the DLQ (docs/ERRORS.md).
	chain := []dlq.Middleware{dlq.Route(dlq.RouteOptions{
		Stage:    wire.StageClean,
		DLQ:      wire.DLQTopic,
		Policy:   func(string) dlq.Policy { return t.Retry.Policy },
		Now:      c.Now,
		Rand:     c.Rand,
		OnLetter: ct.deadLettered,
		OnRetry:  ct.retried,
	})}
	if c.Breakers != nil {
		chain = append(chain, dlq.Guard(c.Breakers))
	}
	chain = append(chain, dlq.RetryInPlace(dlq.RetryOptions{Backoff: t.Retry.InPlaceBackoff,
		MaxAttempts: t.Retry.InPlace, MaxTotal: t.Retry.InPlaceBudget, Sleep: c.Sleep, Rand: c.Rand}))
	ct.handler = dlq.Chain(ct.handle, chain...)
	return ct, nil
}

type cleanTask struct {
	c  *Clean
	id TaskID
	// statsAt is when the store's disk and cache use was last published.
	statsAt   time.Time
	partition int32
	topic     CleanTopic
	clean     string
	dedup     *stream.Dedup
	handler   dlq.Handler
	// ingestTS of outputs in the open transaction, observed as end-to-end latency when
	// it commits.
	ingestTS []int64
	// letters, retries and duplicates of the open transaction, counted (and letters
	// logged) when it commits.
	dups    int
	letters []failure
	retries []failure
	// ev is the map the last record was decoded into, reused for the next one when the
	// decoder allows and there is no transform (nothing keeps the map past handle).
	ev map[string]any
}

// failure is a dead letter or retry of the open transaction.
type failure struct {
	offset   int64
	eventID  string
	reqID    string
	class    dlq.Class
	tier     string
	attempts int
	err      error
}

func (t *cleanTask) Stores() []Changelogged { return []Changelogged{t.dedup.Store()} }

// Restored publishes the expiry gauges of the restored store, so they exist before the
// first transaction.
func (t *cleanTask) Restored() {
	t.c.Metrics.expiry(wire.StageClean, t.id, "dedup", t.dedup.ExpiryBacklog(), t.dedup.LargestExpiryBatch())
}

func (t *cleanTask) Handle(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
	return t.handler(ctx, rec, emit)
}

func (t *cleanTask) Done(committed bool) {
	if committed {
		t.c.Metrics.expiry(wire.StageClean, t.id, "dedup", t.dedup.ExpiryBacklog(), t.dedup.LargestExpiryBatch())
		// Disk and cache use once a second: reading them walks the store's metrics.
		if now := t.c.Now(); now.Sub(t.statsAt) >= time.Second {
			t.statsAt = now
			t.c.Metrics.storeState(wire.StageClean, t.id, t.dedup.Store())
		} else {
			t.c.Metrics.stateKeys(wire.StageClean, "dedup", t.topic.Name, t.partition, t.dedup.Store().Len())
		}
	}
	if committed && t.c.Metrics != nil {
		now := t.c.Now().UnixMicro()
		h := t.c.Metrics.endToEnd.WithLabelValues(wire.StageClean, t.topic.Name)
		for _, ts := range t.ingestTS {
			h.Observe(float64(now-ts) / 1e6)
		}
	}
	t.ingestTS = t.ingestTS[:0]
	if committed {
		for _, l := range t.letters {
			if t.c.Metrics != nil {
				t.c.Metrics.deadLetters.WithLabelValues(wire.StageClean, t.topic.Name, string(l.class)).Inc()
			}
			// One line per dead letter, once it is durable (never per attempt).
			t.c.Logger.Warn("dead letter", "stage", wire.StageClean, "topic", t.topic.Name,
				"partition", t.partition, "offset", l.offset, "event_id", l.eventID, "request_id", l.reqID, "class", l.class,
				"attempts", l.attempts, "dlq", wire.DLQTopic(t.topic.Name), "err", l.err)
		}
		for _, r := range t.retries {
			if t.c.Metrics != nil {
				t.c.Metrics.retries.WithLabelValues(wire.StageClean, t.topic.Name, r.tier).Inc()
			}
		}
		if t.c.Breakers != nil {
			t.c.Metrics.breakers(wire.StageClean, t.c.Breakers.States())
		}
	}
	if committed && t.dups > 0 && t.c.Metrics != nil {
		t.c.Metrics.duplicates.WithLabelValues(t.topic.Name).Add(float64(t.dups))
	}
	t.dups = 0
	t.letters, t.retries = t.letters[:0], t.retries[:0]
}

func (t *cleanTask) deadLettered(rec *kgo.Record, l dlq.Letter) {
	t.letters = append(t.letters, failure{offset: rec.Offset, eventID: wire.Header(rec, wire.HeaderEventID),
		reqID: wire.Header(rec, wire.HeaderRequestID), class: l.Class, attempts: l.Attempts, err: l.Err})
}

func (t *cleanTask) retried(rec *kgo.Record, tier dlq.Tier, l dlq.Letter) {
	t.retries = append(t.retries, failure{offset: rec.Offset, class: l.Class, tier: tier.Topic, attempts: l.Attempts, err: l.Err})
}

// handle decodes, checks, deduplicates and re-encodes one record.
func (t *cleanTask) handle(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
	ev, err := t.decode(ctx, rec.Value)
	if err != nil {
		return dlq.FromDependency("schema-registry", err)
	}
	id, _ := ev["event_id"].(string)
	if id == "" {
		id = wire.Header(rec, wire.HeaderEventID)
	}
	if id == "" {
		return dlq.AsPermanent(fmt.Errorf("event_id: missing"))
	}
	if err := t.topic.Rules.Check(ev); err != nil {
		return dlq.AsPermanent(err)
	}
	ts := rec.Timestamp.UnixMilli()
	if et, ok := ev["event_time"].(time.Time); ok {
		ts = et.UnixMilli()
	}
	if t.dedup.Contains(id, ts) {
		t.dups++ // counted when the transaction commits: an aborted batch runs again
		return nil
	}
	if tr := t.topic.Transform; tr != nil {
		if err := tr.Apply(ctx, rec.Topic, ev); err != nil {
			dep := tr.Dependency()
			if dep == "" {
				dep = dlq.DefaultDependency
			}
			return dlq.FromDependency(dep, fmt.Errorf("transform: %w", err))
		}
	}
	ev["processed_at"] = t.c.Now().UTC().Truncate(time.Millisecond)
	val, err := t.topic.Codec.AppendEncode(nil, ev)
	if err != nil {
		// The raw record decoded but does not fit the clean schema: a schema mismatch
		// that a retry cannot fix.
		return dlq.AsPermanent(fmt.Errorf("encode clean record: %w", err))
	}
	// Remembered only now that nothing can fail: a failed attempt leaves no trace, so
	// its retry is not taken for a duplicate.
	t.dedup.Add(id, ts) // Contains said absent above
	if its, ok := wire.Int(rec, wire.HeaderIngestTS); ok {
		t.ingestTS = append(t.ingestTS, its)
	}
	emit(&kgo.Record{
		Topic:     t.clean,
		Partition: rec.Partition,
		Key:       rec.Key,
		Value:     val,
		Headers:   rec.Headers,
		Timestamp: rec.Timestamp,
	})
	return nil
}

// decode decodes one raw record, into the task's reused map when it can.
func (t *cleanTask) decode(ctx context.Context, b []byte) (map[string]any, error) {
	if d, ok := t.c.Decoder.(IntoDecoder); ok && t.topic.Transform == nil {
		ev, _, err := d.DecodeInto(ctx, b, t.ev)
		t.ev = ev
		return ev, err
	}
	ev, _, err := t.c.Decoder.Decode(ctx, b)
	return ev, err
}
