package dlq

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/pipeline/wire"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Tier is one delay-tier retry topic, shared by every topic of the pipeline.
type Tier struct {
	// Delay is the longest wait the tier is meant for.
	Delay time.Duration
	// Topic is the retry topic, e.g. _sluice.retry.5s.
	Topic string
	// Partitions is the topic's partition count; a record waits in partition
	// (source partition mod Partitions), so one source partition's retries keep their order.
	Partitions int32
}

// Policy is how the transient failures of one topic are retried.
type Policy struct {
	// MaxAttempts is the number of failed deliveries (each with its in-place budget) after
	// which a record is dead-lettered. Values below 1 mean 1.
	MaxAttempts int
	// Backoff gives the wait before the n-th redelivery: Backoff.Delay(n, rnd).
	Backoff Backoff
	// Tiers are the retry topics, by ascending Delay. Without tiers a transient failure
	// that spent its in-place budget is dead-lettered.
	Tiers []Tier
	// Ordered holds the partition while its head record retries (no retry topic), so
	// records of one key keep their order; other records of the partition wait too.
	Ordered bool
}

// Tier returns the tier for a wait of d: the shortest whose Delay is at least d, or the
// longest.
func (p Policy) Tier(d time.Duration) Tier {
	for _, t := range p.Tiers {
		if t.Delay >= d {
			return t
		}
	}
	return p.Tiers[len(p.Tiers)-1]
}

// RouteOptions configure Route.
type RouteOptions struct {
	// Stage names the stage in the sluice-stage header.
	Stage string
	// DLQ names the dead-letter topic of a source topic.
	DLQ func(topic string) string
	// Policy returns the retry policy of a source topic.
	Policy func(topic string) Policy
	// Now is the wall clock; Rand the jitter source (nil: no jitter).
	Now  func() time.Time
	Rand func() float64
	// OnLetter observes each dead letter and OnRetry each record sent to a retry topic.
	// They run inside the transaction: count on commit, not here, if it matters.
	OnLetter func(rec *kgo.Record, l Letter)
	OnRetry  func(rec *kgo.Record, tier Tier, l Letter)
}

// Route is the middleware that turns a stage's classified errors into dead letters and
// retries (docs/DESIGN.md#decorators). Wrap one Handler per task: ordered mode keeps the
// head record's attempts in it. A nil error or a WaitError passes through. A permanent error
// emits a dead letter. A transient one (ClassOf, typically an *AttemptsError from
// RetryInPlace inside) emits the record to a retry tier with its not-before time, or a
// dead letter once the policy's attempts are spent; in ordered mode it returns a
// WaitError until then instead. A handled failure returns nil: the dead letter or retry
// record commits with the input offset. An error while ctx is done passes through (the
// record was not given up on; the stage must not commit it).
func Route(o RouteOptions) Middleware { return (&router{o}).wrap }

// router is a Route.
type router struct{ RouteOptions }

func (f *router) wrap(next Handler) Handler {
	var head struct {
		topic     string
		partition int32
		offset    int64
		attempts  int
		first     time.Time
		set       bool
	}
	return func(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
		err := next(ctx, rec, emit)
		if err == nil {
			if head.set && head.offset == rec.Offset && head.partition == rec.Partition && head.topic == rec.Topic {
				head.set = false
			}
			return nil
		}
		if _, ok := AsWait(err); ok {
			return err
		}
		var ae *AttemptsError
		isAttempts := errors.As(err, &ae)
		if ctx.Err() != nil && !isAttempts {
			return err
		}
		if isAttempts {
			// The letter says what failed; the attempts have their own header.
			err = ae.Err
		}
		now := f.Now()
		first, ok := wire.FirstFailure(rec)
		if !ok {
			first = now
		}
		total := wire.Attempts(rec) + 1
		class := ClassOf(err)
		if class == Permanent {
			f.letter(rec, Letter{Stage: f.Stage, Class: Permanent, Err: err, Attempts: total, FirstFailure: first}, emit)
			return nil
		}
		p := f.Policy(rec.Topic)
		if p.MaxAttempts < 1 {
			p.MaxAttempts = 1
		}
		if p.Ordered {
			if !head.set || head.offset != rec.Offset || head.partition != rec.Partition || head.topic != rec.Topic {
				head.topic, head.partition, head.offset, head.attempts, head.first, head.set = rec.Topic, rec.Partition, rec.Offset, 0, first, true
			}
			head.attempts++
			if head.attempts >= p.MaxAttempts {
				n := head.attempts
				head.set = false
				f.letter(rec, Letter{Stage: f.Stage, Class: Transient, Err: err, Attempts: wire.Attempts(rec) + n, FirstFailure: head.first}, emit)
				return nil
			}
			return &WaitError{Until: now.Add(p.Backoff.Delay(head.attempts, f.Rand)), Reason: "ordered-retry", Err: err}
		}
		round := wire.RetryAttempts(rec) + 1
		l := Letter{Stage: f.Stage, Class: Transient, Err: err, Attempts: total, FirstFailure: first}
		if round >= p.MaxAttempts || len(p.Tiers) == 0 {
			f.letter(rec, l, emit)
			return nil
		}
		d := p.Backoff.Delay(round, f.Rand)
		tier := p.Tier(d)
		emit(RetryRecord(rec, tier, l, round, now.Add(d)))
		if f.OnRetry != nil {
			f.OnRetry(rec, tier, l)
		}
		return nil
	}
}

func (f *router) letter(rec *kgo.Record, l Letter, emit func(*kgo.Record)) {
	emit(Record(rec, f.DLQ(rec.Topic), l))
	if f.OnLetter != nil {
		f.OnLetter(rec, l)
	}
}

// RetryRecord builds the record that waits in tier for redelivery at retryAt: rec's key,
// value and headers with the dead-letter headers of l replaced (so it says where it came
// from and why), sluice-retry-attempts set to round and sluice-retry-at to retryAt.
func RetryRecord(rec *kgo.Record, tier Tier, l Letter, round int, retryAt time.Time) *kgo.Record {
	r := Record(rec, tier.Topic, l)
	r.Headers = append(r.Headers,
		kgo.RecordHeader{Key: wire.HeaderRetryAttempts, Value: strconv.AppendInt(nil, int64(round), 10)},
		kgo.RecordHeader{Key: wire.HeaderRetryAt, Value: strconv.AppendInt(nil, retryAt.UnixMicro(), 10)},
	)
	r.Partition = 0
	if tier.Partitions > 0 {
		r.Partition = rec.Partition % tier.Partitions
	}
	return r
}

// Redelivery rebuilds, from a record waiting in a retry topic, the record to deliver
// again: to its sluice-original-topic and -partition, with its key, value, timestamp and
// headers, minus the dead-letter and retry-time headers but keeping sluice-attempts,
// sluice-retry-attempts and sluice-first-failure-ts, so the next failure counts on. It
// returns false when the origin headers are missing or unreadable.
func Redelivery(rec *kgo.Record) (*kgo.Record, bool) {
	topic, ok := wire.Lookup(rec, wire.HeaderOriginalTopic)
	if !ok || topic == "" {
		return nil, false
	}
	ps, _ := wire.Lookup(rec, wire.HeaderOriginalPartition)
	p, err := strconv.ParseInt(ps, 10, 32)
	if err != nil || p < 0 {
		return nil, false
	}
	keep := []string{wire.HeaderAttempts, wire.HeaderRetryAttempts, wire.HeaderFirstFailureTS}
	hs := make([]kgo.RecordHeader, 0, len(rec.Headers))
	for _, h := range rec.Headers {
		if h.Key == wire.HeaderRetryAt || (isLetterHeader(h.Key) && !slices.Contains(keep, h.Key)) {
			continue
		}
		hs = append(hs, h)
	}
	return &kgo.Record{
		Topic:     topic,
		Partition: int32(p),
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   hs,
		Timestamp: rec.Timestamp,
	}, true
}
