package reprocess

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/rules"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// The clean stage's reprocess (`sluice reprocess --topic`, runbook:
// docs/OPERATIONS.md#fix-a-wrong-rule) re-feeds raw records of a time range that are
// not in <topic>.clean and pass the current rules back into the raw topic, where the
// live clean stage, running the fixed pipeline file, cleans them; its dedup state drops
// any that became clean meanwhile. See RunTopic.

// DefaultHorizonMargin is how far inside the dedup horizon --from must be by default
// (TopicOptions.HorizonMargin).
const DefaultHorizonMargin = time.Hour

// TopicOptions describe one reprocess of the clean stage over a raw topic.
type TopicOptions struct {
	// Pipeline is the current pipeline file; Rules are the rules it gives Topic
	// (service.Deps.Schemas[topic].Rules), checked in-process to choose what to re-feed.
	Pipeline *config.Pipeline
	Rules    *rules.Set
	Kafka    kafka.Config
	// Decoder decodes raw and <topic>.clean records (schema.Registry).
	Decoder process.Decoder
	// Topic is the raw topic; its records whose timestamp is in [From, To) are considered.
	Topic    string
	From, To time.Time
	// DryRun reads and counts, writing nothing.
	DryRun bool
	// HorizonMargin: From must be at least this far inside the dedup horizon, measured
	// back from the latest event time in <topic>.clean when the run begins (0:
	// DefaultHorizonMargin). It covers how far the live clean stage's event time moves on
	// before it reaches the re-fed records: its lag and the run itself.
	HorizonMargin time.Duration
	// RunID goes in every re-fed record's sluice-reprocess-id header (default
	// reprocess-<now>).
	RunID string
	// Progress, if set, receives a progress line about once a second.
	Progress io.Writer
	Now      func() time.Time
	// BatchRecords bounds the records of one re-feed transaction (default 5000).
	BatchRecords int
	// BeforeCommit, if set, is called in every re-feed transaction once its records are
	// flushed and before it commits, with the number of transactions committed before
	// it. An error stops the run there and leaves that transaction open, as a process
	// killed at that instant leaves it: the next run (same transactional id) fences and
	// aborts it. For tests of a run killed mid-way.
	BeforeCommit func(committed int) error
}

// refeedTxnTimeout is the re-feed transactions' timeout: the live clean stage reads the
// raw topic read_committed, so a transaction left open by a killed run holds its
// partitions back until the broker aborts it (or the next run fences it).
const refeedTxnTimeout = 15 * time.Second

// TopicSummary is what a clean-stage reprocess did (or, in a dry run, would do).
type TopicSummary struct {
	Topic  string    `json:"topic"`
	RunID  string    `json:"run_id"`
	DryRun bool      `json:"dry_run"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	// DedupHorizon is the pipeline's dedup.horizon; LatestEventTime the largest record
	// timestamp in <topic>.clean from From on when the run began (the live clean stage's
	// dedup time: the largest event time it has cleaned); OldestFrom the earliest --from
	// the run accepts: that minus the horizon plus the margin (zero when <topic>.clean
	// holds nothing from From on).
	DedupHorizon    string    `json:"dedup_horizon"`
	LatestEventTime time.Time `json:"latest_event_time"`
	OldestFrom      time.Time `json:"oldest_from"`
	// CleanIDs are the event ids read from <topic>.clean in the range.
	CleanIDs int `json:"clean_ids"`
	// Records are the raw records read (from the offsets of From to the end offsets when
	// the run began); InRange those whose timestamp is in [From, To).
	Records int `json:"records_read"`
	InRange int `json:"in_range"`
	// Of InRange: copies an earlier reprocess re-fed (left out: their originals are read),
	// records that no longer decode (left out), events already in <topic>.clean (left
	// out), events that still fail the current rules (left out; by rule), repeats of an
	// event id already taken in this run (left out), and the events re-fed (would be,
	// in a dry run).
	EarlierRefeeds int            `json:"earlier_refeeds"`
	Undecodable    int            `json:"undecodable"`
	AlreadyClean   int            `json:"already_clean"`
	StillFail      int            `json:"still_fail"`
	StillFailRules map[string]int `json:"still_fail_by_rule,omitempty"`
	Repeats        int            `json:"repeats"`
	Refed          int            `json:"refed"`
	// RefedByPartition is where they went (the partition each original was in).
	RefedByPartition map[int32]int `json:"refed_by_partition,omitempty"`
	Transactions     int           `json:"transactions"`
	Seconds          float64       `json:"seconds"`
	RecordsPerS      float64       `json:"records_per_s"`
}

// ValidateTopic checks a clean-stage reprocess's arguments against pipeline p before
// anything connects: the topic exists (the error lists the pipeline's) and from is
// before to.
func ValidateTopic(p *config.Pipeline, topic string, from, to time.Time) (*config.Topic, error) {
	t, ok := p.Topic(topic)
	if !ok {
		var names []string
		for _, x := range p.Topics {
			names = append(names, x.Name)
		}
		return nil, fmt.Errorf("reprocess: unknown topic %q (the pipeline has: %s)", topic, strings.Join(names, ", "))
	}
	if !from.Before(to) {
		return nil, fmt.Errorf("reprocess: --from %s must be before --to %s", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	return t, nil
}

// oldestFrom is the earliest --from whose events the dedup state still remembers
// whenever the live clean stage meets their re-fed copies: the latest event time of the
// raw topic minus the horizon, plus the margin.
func oldestFrom(latest time.Time, horizon, margin time.Duration) time.Time {
	return latest.Add(margin - horizon).UTC()
}

// RunTopic re-runs the clean stage's rules over the raw records of o.Topic whose
// timestamp is in [o.From, o.To). It reads the event ids <topic>.clean holds in the range,
// then every raw record from the offsets of From (ListOffsets by timestamp) to the end
// offsets when it began, and re-feeds to the raw topic, on the partition it was read
// from, each record that
//   - is in the range and is not itself a copy re-fed by an earlier reprocess,
//   - decodes, and whose event id <topic>.clean does not hold and this run has not
//     re-fed already,
//   - passes the rules of the current pipeline file,
//
// with the same key, value and timestamp, its headers plus sluice-reprocess-id (and
// sluice-ingest-ts set to the re-feed time, the original kept in sluice-first-ingest-ts),
// in transactions of its own (transactional id sluice.reprocess-topic.<topic>: a run
// killed mid-way is fenced by the next one). The live clean stage, which must already
// run the fixed pipeline file, cleans them into <topic>.clean (and dead-letters those a
// transform still rejects). Its dedup state drops a re-fed record whose event id it
// cleaned after this run read <topic>.clean (a record still in a retry tier, or behind
// the live stage's lag) as long as the event is within the dedup horizon: hence the
// refusal of a From older than the latest event time in <topic>.clean minus
// dedup.horizon plus HorizonMargin.
//
// It refuses an unknown topic, From not before To, a From older than the horizon allows,
// and a range the raw topic no longer retains, each naming what is wrong.
func RunTopic(ctx context.Context, o TopicOptions) (*TopicSummary, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BatchRecords <= 0 {
		o.BatchRecords = 5000
	}
	if o.HorizonMargin == 0 {
		o.HorizonMargin = DefaultHorizonMargin
	}
	if o.HorizonMargin < 0 {
		return nil, fmt.Errorf("reprocess: --horizon-margin must not be negative (got %s)", o.HorizonMargin)
	}
	began := o.Now()
	if o.RunID == "" {
		o.RunID = "reprocess-" + began.UTC().Format("20060102T150405.000Z")
	}
	if _, err := ValidateTopic(o.Pipeline, o.Topic, o.From, o.To); err != nil {
		return nil, err
	}
	if o.Decoder == nil {
		return nil, errors.New("reprocess: no decoder for the topic")
	}
	horizon := o.Pipeline.Dedup.Horizon.D()
	s := &TopicSummary{Topic: o.Topic, RunID: o.RunID, DryRun: o.DryRun, From: o.From.UTC(), To: o.To.UTC(),
		DedupHorizon: horizon.String(), StillFailRules: map[string]int{}, RefedByPartition: map[int32]int{}}

	cl, err := kgo.NewClient(o.Kafka.Opts()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	from, to := o.From.UnixMilli(), o.To.UnixMilli()

	if err := rawRetained(ctx, adm, o.Kafka, o.Topic, from); err != nil {
		return nil, err
	}
	rawFrom, err := offsetsFrom(ctx, adm, o.Topic, from)
	if err != nil {
		return nil, err
	}
	ends, err := adm.ListCommittedOffsets(ctx, o.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("reprocess: end offsets of %s: %w", o.Topic, err)
	}
	var total int64
	for p, off := range rawFrom {
		if e, ok := ends.Lookup(o.Topic, p); ok {
			total += e.Offset - off
		}
	}

	// The event ids already clean, on any partition: the clean stage writes each event to
	// the partition of its raw record, with its timestamp, but a dead letter replayed
	// with `sluice dlq replay` may have been cleaned on another partition than its
	// original's. The header is the id the clean stage used, unless a producer wrote a
	// value whose event_id differs from its header; then the live dedup state still
	// drops the copy (same partition), within the horizon.
	clean := wire.CleanTopic(o.Topic)
	cleanFrom, err := offsetsFrom(ctx, adm, clean, from)
	if err != nil {
		return nil, err
	}
	cleanIDs := map[string]struct{}{}
	latest := int64(math.MinInt64)
	err = kafka.ReadCommittedFromOffsets(ctx, o.Kafka, clean, cleanFrom, func(r *kgo.Record) error {
		ts := r.Timestamp.UnixMilli()
		latest = max(latest, ts)
		if ts < from || ts >= to {
			return nil
		}
		id := wire.Header(r, wire.HeaderEventID)
		if id == "" {
			v, _, err := o.Decoder.Decode(ctx, r.Value)
			if err != nil {
				return fmt.Errorf("an event id without its header, undecodable: %w", err)
			}
			id, _ = v["event_id"].(string)
		}
		cleanIDs[id] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reprocess: read %s: %w", clean, err)
	}
	s.CleanIDs = len(cleanIDs)
	// The live stage's dedup time on a partition is the largest event time it cleaned
	// there (the clean record keeps the raw record's timestamp, which ingest sets to
	// event_time); it moves on while the run goes, by at most the margin.
	if latest != math.MinInt64 {
		s.LatestEventTime = time.UnixMilli(latest).UTC()
		s.OldestFrom = oldestFrom(s.LatestEventTime, horizon, o.HorizonMargin)
		if o.From.Before(s.OldestFrom) {
			return nil, fmt.Errorf("reprocess: --from %s is older than the dedup horizon allows: the clean stage remembers an event id for %s (dedup.horizon) of event time behind the latest it cleaned, and %s holds events up to %s; an event before %s (that minus the horizon plus a margin of %s) that became clean while the reprocess runs could be cleaned twice; choose --from at or after %s",
				o.From.UTC().Format(time.RFC3339), horizon, clean, s.LatestEventTime.Format(time.RFC3339), s.OldestFrom.Format(time.RFC3339), o.HorizonMargin, s.OldestFrom.Format(time.RFC3339))
		}
	}

	var w *refeeder
	if !o.DryRun {
		if w, err = newRefeeder(o.Kafka, o.Topic, o.BatchRecords, o.BeforeCommit); err != nil {
			return nil, err
		}
		defer w.close()
	}
	taken := map[string]struct{}{}
	refedAt := strconv.FormatInt(began.UnixMicro(), 10)
	p := progress{w: o.Progress, now: o.Now, start: o.Now(), total: total}
	err = kafka.ReadCommittedFromOffsets(ctx, o.Kafka, o.Topic, rawFrom, func(r *kgo.Record) error {
		s.Records++
		p.tick(s.Records)
		if e, ok := ends.Lookup(o.Topic, r.Partition); ok && r.Offset >= e.Offset {
			return nil // written after the run began
		}
		if ts := r.Timestamp.UnixMilli(); ts < from || ts >= to {
			return nil
		}
		s.InRange++
		if wire.Header(r, wire.HeaderReprocessID) != "" {
			s.EarlierRefeeds++
			return nil
		}
		ev, _, err := o.Decoder.Decode(ctx, r.Value)
		if err != nil {
			if errors.Is(err, schema.ErrMalformed) || errors.Is(err, schema.ErrUnknownSchema) {
				s.Undecodable++
				return nil
			}
			// The registry is down or slow: a record the live stage could clean would
			// be left out. Stop instead.
			return fmt.Errorf("decode: %w", err)
		}
		// The id the clean stage dedups by; without one it dead-letters the record.
		id, _ := ev["event_id"].(string)
		if id == "" {
			id = wire.Header(r, wire.HeaderEventID)
		}
		if id == "" {
			s.StillFail++
			s.StillFailRules["event_id: missing"]++
			return nil
		}
		if _, ok := cleanIDs[id]; ok {
			s.AlreadyClean++
			return nil
		}
		if err := o.Rules.Check(ev); err != nil {
			s.StillFail++
			var v *rules.Violation
			if errors.As(err, &v) {
				s.StillFailRules[v.Rule+" on "+v.Field]++
			} else {
				s.StillFailRules[err.Error()]++
			}
			return nil
		}
		if _, ok := taken[id]; ok {
			s.Repeats++
			return nil
		}
		taken[id] = struct{}{}
		s.Refed++
		s.RefedByPartition[r.Partition]++
		if w != nil {
			return w.add(ctx, refeedRecord(r, o.RunID, refedAt))
		}
		return nil
	})
	if err == nil && w != nil {
		err = w.flush(ctx)
	}
	if w != nil {
		s.Transactions = w.txns
	}
	if err != nil {
		return s, fmt.Errorf("reprocess: %s: %w (re-fed in %d committed transactions before it; running again is safe: what is clean by then is left out)", o.Topic, err, s.Transactions)
	}
	p.done(s.Records)
	if len(s.StillFailRules) == 0 {
		s.StillFailRules = nil
	}
	if len(s.RefedByPartition) == 0 {
		s.RefedByPartition = nil
	}
	s.Seconds = o.Now().Sub(began).Seconds()
	if s.Seconds > 0 {
		s.RecordsPerS = math.Round(float64(s.Records) / s.Seconds)
	}
	return s, nil
}

// refeedRecord is the copy of raw record r that the reprocess writes back: same topic,
// partition, key, value and timestamp; its headers without an older sluice-reprocess-id,
// sluice-ingest-ts or sluice-first-ingest-ts, plus sluice-reprocess-id: runID,
// sluice-ingest-ts: refedAt and sluice-first-ingest-ts: the original's ingest time.
func refeedRecord(r *kgo.Record, runID, refedAt string) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+3)
	first := ""
	for _, h := range r.Headers {
		switch h.Key {
		case wire.HeaderIngestTS:
			first = string(h.Value)
			continue
		case wire.HeaderFirstIngestTS, wire.HeaderReprocessID:
			continue
		}
		hs = append(hs, h)
	}
	hs = append(hs, kgo.RecordHeader{Key: wire.HeaderReprocessID, Value: []byte(runID)},
		kgo.RecordHeader{Key: wire.HeaderIngestTS, Value: []byte(refedAt)})
	if first != "" {
		hs = append(hs, kgo.RecordHeader{Key: wire.HeaderFirstIngestTS, Value: []byte(first)})
	}
	return &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: hs, Timestamp: r.Timestamp}
}

// refeeder writes re-fed records in transactions of at most batch records.
type refeeder struct {
	cl           *kgo.Client
	topic        string
	batch        int
	beforeCommit func(int) error
	buf          []*kgo.Record
	txns         int
}

func newRefeeder(kc kafka.Config, topic string, batch int, beforeCommit func(int) error) (*refeeder, error) {
	cl, err := kgo.NewClient(append(kc.Opts(),
		kgo.TransactionalID(wire.TransactionalID("reprocess-topic", topic)),
		kgo.TransactionTimeout(refeedTxnTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		return nil, err
	}
	return &refeeder{cl: cl, topic: topic, batch: batch, beforeCommit: beforeCommit}, nil
}

func (w *refeeder) add(ctx context.Context, r *kgo.Record) error {
	w.buf = append(w.buf, r)
	if len(w.buf) >= w.batch {
		return w.flush(ctx)
	}
	return nil
}

// flush writes the buffered records in one transaction.
func (w *refeeder) flush(ctx context.Context) error {
	if len(w.buf) == 0 {
		return nil
	}
	if err := w.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	var perr error
	for _, r := range w.buf {
		w.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil && perr == nil {
				perr = err
			}
		})
	}
	ferr := w.cl.Flush(ctx)
	commit := kgo.TryCommit
	if ferr != nil || perr != nil {
		commit = kgo.TryAbort
	} else if w.beforeCommit != nil {
		if err := w.beforeCommit(w.txns); err != nil {
			return fmt.Errorf("stopped before committing transaction %d: %w", w.txns+1, err)
		}
	}
	if err := w.cl.EndTransaction(ctx, commit); err != nil {
		return fmt.Errorf("end transaction: %w", err)
	}
	if ferr != nil || perr != nil {
		return fmt.Errorf("write %s: %w", w.topic, errors.Join(ferr, perr))
	}
	w.txns++
	w.buf = w.buf[:0]
	return nil
}

func (w *refeeder) close() { w.cl.Close() }

// rawRetained fails when a partition of the raw topic no longer holds records from ms on.
func rawRetained(ctx context.Context, adm *kadm.Client, kc kafka.Config, topic string, ms int64) error {
	earliest, bad, err := unretained(ctx, adm, kc, topic, ms)
	if err != nil || len(bad) == 0 {
		return err
	}
	// The earliest --from whose records are all retained.
	return fmt.Errorf("reprocess: the range is no longer retained: %s holds records only from %s on (%s); choose --from at or after %s",
		topic, time.UnixMilli(earliest).UTC().Format(time.RFC3339Nano), strings.Join(bad, ", "), wholeSecondAfter(earliest).Format(time.RFC3339))
}
