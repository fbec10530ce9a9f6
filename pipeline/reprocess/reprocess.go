// Package reprocess recomputes the windows of one aggregation over a time range from its
// retained <from>.clean topic, beside the live processor, and rewrites them in
// agg.<name> (`sluice reprocess`; runbook: docs/OPERATIONS.md#fix-a-wrong-aggregation).
package reprocess

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Options describe one reprocess run.
type Options struct {
	// Pipeline is the current pipeline file: a fixed aggregation gives fixed results.
	Pipeline *config.Pipeline
	Kafka    kafka.Config
	// Decoder decodes <from>.clean records and agg.<name> results; Codec encodes the
	// results (service.Setup registers both).
	Decoder *schema.Registry
	Codec   *schema.Codec
	// Aggregation is the name of the aggregation; windows that start in [From, To) are
	// recomputed.
	Aggregation string
	From, To    time.Time
	// DryRun computes the results and the diff against agg.<name> and writes nothing.
	DryRun bool
	// Show is how many changed windows the summary lists with their values (default 10).
	Show int
	// RunID goes in every result's sluice-reprocess-id header (default: reprocess-<now>).
	RunID string
	// Progress, if set, receives a progress line about once a second.
	Progress io.Writer
	Now      func() time.Time
	// BatchRecords bounds the results of one output transaction (default 5000).
	BatchRecords int
	// TxnTimeout is the output transactions' timeout (default 10 s). A run killed with a
	// transaction open holds back every read-committed reader of agg.<name> (the sink,
	// and so the live results in the warehouse) at that transaction until the next run
	// fences it or the broker aborts it after this timeout (Kafka checks every
	// transaction.abort.timed.out.transaction.cleanup.interval.ms, 10 s by default). A
	// transaction here is one flush of at most BatchRecords records.
	TxnTimeout time.Duration
	// BeforeCommit, if set, is called in every output transaction once its records are
	// flushed and before it commits, with the number of transactions committed before
	// it. An error stops the run there and leaves that transaction open, as a process
	// killed at that instant leaves it: a read-committed reader never sees its records,
	// and the next run (same transactional id) fences and aborts it. For tests of a run
	// killed mid-way.
	BeforeCommit func(committed int) error
}

// Change is one window whose result differs from what agg.<name> held.
type Change struct {
	Key    string         `json:"key"`
	Before map[string]any `json:"before,omitempty"`
	After  map[string]any `json:"after"`
}

// Summary is what a run did.
type Summary struct {
	Aggregation string    `json:"aggregation"`
	RunID       string    `json:"run_id"`
	DryRun      bool      `json:"dry_run"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	// ReadFrom is the event time the input was read from: From minus the window size
	// (or session gap) and grace.
	ReadFrom time.Time `json:"read_from"`
	// LiveWatermark is the live aggregate stage's watermark (its closed windows end
	// before it).
	LiveWatermark time.Time `json:"live_watermark"`
	Records       int       `json:"records_read"`
	LateExcluded  int       `json:"late_excluded"`
	Undecodable   int       `json:"undecodable"`
	// Windows are the windows in range recomputed (written unless DryRun); Changed those
	// whose values differ from agg.<name>'s, New those agg.<name> did not hold.
	Windows int      `json:"windows"`
	Changed int      `json:"changed"`
	New     int      `json:"new"`
	Changes []Change `json:"changes,omitempty"`
	Seconds float64  `json:"seconds"`
	// RecordsPerS is the read rate of the input.
	RecordsPerS float64 `json:"records_per_s"`
}

// Run recomputes the windows and, unless o.DryRun, writes them to agg.<name> in
// transactions of its own (transactional id sluice.reprocess.<name>, so a run killed
// mid-way is fenced by the next; running again writes the same values).
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Show == 0 {
		o.Show = 10
	}
	if o.BatchRecords <= 0 {
		o.BatchRecords = 5000
	}
	if o.TxnTimeout <= 0 {
		o.TxnTimeout = 10 * time.Second
	}
	began := o.Now()
	if o.RunID == "" {
		o.RunID = "reprocess-" + began.UTC().Format("20060102T150405.000Z")
	}
	a, err := Validate(o.Pipeline, o.Aggregation, o.From, o.To)
	if err != nil {
		return nil, err
	}
	t, ok := o.Pipeline.Topic(a.From)
	if !ok {
		return nil, fmt.Errorf("reprocess: aggregation %s reads unknown topic %s", a.Name, a.From)
	}
	if o.Codec == nil || o.Decoder == nil {
		return nil, errors.New("reprocess: no codec or decoder for the aggregation")
	}
	rc, err := process.NewRecompute(*a, t.Partitions, o.Decoder, o.Codec, o.Now, o.From, o.To, o.RunID)
	if err != nil {
		return nil, err
	}
	spec := rc.Spec()
	s := &Summary{Aggregation: a.Name, RunID: o.RunID, DryRun: o.DryRun, From: o.From.UTC(), To: o.To.UTC()}
	lead := spec.Size
	if spec.Type == stream.Session {
		lead = spec.Gap
	}
	readFrom := o.From.UnixMilli() - lead - spec.Grace
	s.ReadFrom = time.UnixMilli(readFrom).UTC()

	cl, err := kgo.NewClient(o.Kafka.Opts()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	clean := wire.CleanTopic(a.From)

	// The live job must have closed every window of the range.
	wm, err := liveWatermark(ctx, o.Kafka, a.Name, t.Partitions, spec.Sources)
	if err != nil {
		return nil, err
	}
	s.LiveWatermark = time.UnixMilli(max(wm, 0)).UTC()
	if need := lastClose(spec, o.To.UnixMilli()); wm == stream.NoWatermark || wm < need {
		live := "none yet (no window has closed)"
		if wm != stream.NoWatermark {
			live = time.UnixMilli(wm).UTC().Format(time.RFC3339Nano)
		}
		return nil, fmt.Errorf("reprocess: the range overlaps windows the live job has not closed yet: its watermark is %s, and the last window before --to closes at %s; reprocess only closed windows (an earlier --to)",
			live, time.UnixMilli(need).UTC().Format(time.RFC3339Nano))
	}

	// The input must still be retained from readFrom on.
	if err := checkRetained(ctx, adm, o.Kafka, clean, readFrom, lead+spec.Grace); err != nil {
		return nil, err
	}
	from, err := offsetsFrom(ctx, adm, clean, readFrom)
	if err != nil {
		return nil, err
	}
	ends, err := adm.ListCommittedOffsets(ctx, clean)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("reprocess: end offsets of %s: %w", clean, err)
	}
	var total int64
	for p, o := range from {
		if e, ok := ends.Lookup(clean, p); ok {
			total += e.Offset - o
		}
	}

	// Events the live job dead-lettered as late for this aggregation stay out, except
	// those a `reprocess --topic` re-fed (they carry its run id): they were late only
	// because of the re-feed, and belong in the windows this run recomputes.
	lateFrom, err := offsetsFrom(ctx, adm, wire.LateTopic(a.From), readFrom)
	if err != nil {
		return nil, err
	}
	if err := kafka.ReadCommittedFromOffsets(ctx, o.Kafka, wire.LateTopic(a.From), lateFrom, func(r *kgo.Record) error {
		if wire.Header(r, wire.HeaderAggregation) == a.Name && wire.Header(r, wire.HeaderReprocessID) == "" {
			if id := wire.Header(r, wire.HeaderEventID); id != "" {
				rc.Exclude(id)
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reprocess: read %s: %w", wire.LateTopic(a.From), err)
	}

	p := progress{w: o.Progress, now: o.Now, start: o.Now(), total: total}
	err = kafka.ReadCommittedFromOffsets(ctx, o.Kafka, clean, from, func(r *kgo.Record) error {
		if err := rc.Add(ctx, r); err != nil {
			// The live repartition stage dead-letters what it cannot decode; so does
			// this run leave it out, and count it.
			s.Undecodable++
		}
		p.tick(rc.Read)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reprocess: read %s: %w", clean, err)
	}
	p.done(rc.Read)
	s.Records = rc.Read
	s.LateExcluded = rc.Excluded
	out, err := rc.Finish()
	if err != nil {
		return nil, err
	}
	s.Windows = len(out)

	// The diff against what agg.<name> holds now (latest result per window).
	before, err := currentResults(ctx, o, a.Name, o.From.UnixMilli(), o.To.UnixMilli())
	if err != nil {
		return nil, err
	}
	for _, r := range out {
		after, _, err := o.Decoder.Decode(ctx, r.Value)
		if err != nil {
			return nil, fmt.Errorf("reprocess: decode a recomputed result: %w", err)
		}
		b, had := before[string(r.Key)]
		switch {
		case !had:
			s.New++
			s.Changed++
		case !sameResult(b, after):
			s.Changed++
		default:
			continue
		}
		if len(s.Changes) < o.Show {
			s.Changes = append(s.Changes, Change{Key: string(r.Key), Before: b, After: after})
		}
	}
	if !o.DryRun {
		if err := write(ctx, o, a.Name, out); err != nil {
			return nil, err
		}
	}
	s.Seconds = o.Now().Sub(began).Seconds()
	if s.Seconds > 0 {
		s.RecordsPerS = math.Round(float64(s.Records) / s.Seconds)
	}
	return s, nil
}

// Validate checks a reprocess's arguments against pipeline p before anything connects:
// the aggregation exists (the error lists the pipeline's) and from is before to.
func Validate(p *config.Pipeline, aggregation string, from, to time.Time) (*config.Aggregation, error) {
	a, ok := p.Aggregation(aggregation)
	if !ok {
		var names []string
		for _, x := range p.Aggregations {
			names = append(names, x.Name)
		}
		return nil, fmt.Errorf("reprocess: unknown aggregation %q (the pipeline has: %s)", aggregation, strings.Join(names, ", "))
	}
	if !from.Before(to) {
		return nil, fmt.Errorf("reprocess: --from %s must be before --to %s", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	return a, nil
}

// progress prints "records read / total, ETA" about once a second.
type progress struct {
	w     io.Writer
	now   func() time.Time
	start time.Time
	last  time.Time
	total int64
}

func (p *progress) tick(n int) {
	if p.w == nil {
		return
	}
	now := p.now()
	if now.Sub(p.last) < time.Second {
		return
	}
	p.last = now
	el := now.Sub(p.start)
	eta := "?"
	if n > 0 && p.total > int64(n) {
		eta = (time.Duration(float64(el) / float64(n) * float64(p.total-int64(n)))).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "reprocess: read %d / %d records (%.0f%%), ETA %s\n", n, p.total, 100*float64(n)/float64(max(p.total, 1)), eta)
}

func (p *progress) done(n int) {
	if p.w != nil {
		fmt.Fprintf(p.w, "reprocess: read %d records in %s\n", n, p.now().Sub(p.start).Round(time.Millisecond))
	}
}
