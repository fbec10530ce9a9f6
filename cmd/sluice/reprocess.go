package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	json "github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/reprocess"
	"github.com/sluicehq/sluice/pipeline/service"
)

// reprocessCmd is `sluice reprocess --aggregation NAME --from T --to T [--dry-run]`:
// it recomputes the windows of one aggregation that start in [from, to) from the
// retained <from>.clean topic, beside the live processor, and rewrites them in
// agg.<name> (docs/OPERATIONS.md#fix-a-wrong-aggregation). With --topic NAME instead it
// re-feeds the raw records of [from, to) that are not clean and pass the current rules to
// the live clean stage (docs/OPERATIONS.md#fix-a-wrong-rule). It prints progress to
// stderr and the summary (JSON) to stdout.
func reprocessCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	agg := fs.String("aggregation", "", "the `name` of the aggregation whose windows are recomputed")
	from := fs.String("from", "", "recompute windows that start at or after this RFC 3339 `time`")
	to := fs.String("to", "", "... and before this RFC 3339 `time`")
	dry := fs.Bool("dry-run", false, "compute the results and print the diff against agg.<name>; write nothing")
	show := fs.Int("show", 10, "list the before/after values of the first `N` changed windows")
	topic := fs.String("topic", "", "instead of --aggregation: re-run the clean stage's rules over the raw records of this `topic` in [from, to)")
	margin := fs.Duration("horizon-margin", reprocess.DefaultHorizonMargin, "--topic: --from must be at least this far inside the dedup horizon (the latest event time in <topic>.clean minus dedup.horizon)")
	return func(ctx context.Context, log *slog.Logger) error {
		if fs.NArg() > 0 {
			return fmt.Errorf("reprocess: unexpected arguments %q", fs.Args())
		}
		if *agg != "" && *topic != "" {
			return errors.New("reprocess: give --aggregation or --topic, not both")
		}
		if *topic != "" {
			return reprocessTopic(ctx, log, svc, out, *topic, *from, *to, *dry, *margin)
		}
		if *agg == "" || *from == "" || *to == "" {
			return errors.New("reprocess: want --aggregation NAME --from RFC3339 --to RFC3339 (or --topic NAME --from RFC3339 --to RFC3339)")
		}
		f, err := time.Parse(time.RFC3339Nano, *from)
		if err != nil {
			return fmt.Errorf("reprocess: --from: want an RFC 3339 time (got %q)", *from)
		}
		t, err := time.Parse(time.RFC3339Nano, *to)
		if err != nil {
			return fmt.Errorf("reprocess: --to: want an RFC 3339 time (got %q)", *to)
		}
		p, err := loadPipeline(svc)
		if err != nil {
			return err
		}
		if _, err := reprocess.Validate(p, *agg, f, t); err != nil {
			return err
		}
		d, sreg, err := service.Setup(ctx, *svc, p, kafka.Config{Brokers: svc.Brokers}, log, newRegistry())
		if err != nil {
			return err
		}
		s, err := reprocess.Run(ctx, reprocess.Options{Pipeline: p, Kafka: d.Kafka, Decoder: sreg, Codec: d.AggCodecs[*agg],
			Aggregation: *agg, From: f, To: t, DryRun: *dry, Show: *show, Progress: os.Stderr})
		if err != nil {
			return err
		}
		verb := "rewrote"
		if s.DryRun {
			verb = "would rewrite"
		}
		fmt.Fprintf(os.Stderr, "reprocess: %s %d windows of %s in [%s, %s): %d changed (%d new); %d records read (%d late in the live job, left out) in %.1f s\n",
			verb, s.Windows, s.Aggregation, *from, *to, s.Changed, s.New, s.Records, s.LateExcluded, s.Seconds)
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
}

// reprocessTopic is `sluice reprocess --topic NAME --from T --to T [--dry-run]
// [--horizon-margin D]` (reprocess.RunTopic).
func reprocessTopic(ctx context.Context, log *slog.Logger, svc *config.Service, out io.Writer, topic, from, to string, dry bool, margin time.Duration) error {
	if from == "" || to == "" {
		return errors.New("reprocess: want --topic NAME --from RFC3339 --to RFC3339")
	}
	f, err := time.Parse(time.RFC3339Nano, from)
	if err != nil {
		return fmt.Errorf("reprocess: --from: want an RFC 3339 time (got %q)", from)
	}
	t, err := time.Parse(time.RFC3339Nano, to)
	if err != nil {
		return fmt.Errorf("reprocess: --to: want an RFC 3339 time (got %q)", to)
	}
	if margin <= 0 {
		return fmt.Errorf("reprocess: --horizon-margin must be > 0 (got %s)", margin)
	}
	p, err := loadPipeline(svc)
	if err != nil {
		return err
	}
	if _, err := reprocess.ValidateTopic(p, topic, f, t); err != nil {
		return err
	}
	d, sreg, err := service.Setup(ctx, *svc, p, kafka.Config{Brokers: svc.Brokers}, log, newRegistry())
	if err != nil {
		return err
	}
	s, err := reprocess.RunTopic(ctx, reprocess.TopicOptions{Pipeline: p, Rules: d.Schemas[topic].Rules, Kafka: d.Kafka,
		Decoder: sreg, Topic: topic, From: f, To: t, DryRun: dry, HorizonMargin: margin, Progress: os.Stderr})
	if err != nil {
		return err
	}
	verb := "re-fed"
	if s.DryRun {
		verb = "would re-feed"
	}
	fmt.Fprintf(os.Stderr, "reprocess: %s %d records of %s in [%s, %s) to the live clean stage; of %d in range %d were already clean, %d still fail the rules, %d do not decode; %d records read in %.1f s\n",
		verb, s.Refed, s.Topic, from, to, s.InRange, s.AlreadyClean, s.StillFail, s.Undecodable, s.Records, s.Seconds)
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// resetCmd is `sluice reset --stage NAME [--to-earliest|--to-latest|--to-time T]
// [--dry-run]`: it deletes a stopped stage's committed offsets, changelog topics and the
// local state under --state-dir, so its next start rebuilds its state from its inputs.
func resetCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	stage := fs.String("stage", "", "the `stage`: clean, retry, repartition.<aggregation> or agg.<aggregation>")
	early := fs.Bool("to-earliest", false, "restart at the start of every input (the default)")
	late := fs.Bool("to-latest", false, "restart at the end of every input (skip what was not processed)")
	at := fs.String("to-time", "", "restart at the first record at or after this RFC 3339 `time`")
	dry := fs.Bool("dry-run", false, "print what would be deleted; delete nothing")
	return func(ctx context.Context, log *slog.Logger) error {
		if fs.NArg() > 0 {
			return fmt.Errorf("reset: unexpected arguments %q", fs.Args())
		}
		if *stage == "" {
			return errors.New("reset: want --stage NAME")
		}
		o := reprocess.ResetOptions{Stage: *stage, To: reprocess.ResetEarliest, DryRun: *dry}
		n := 0
		if *early {
			n++
		}
		if *late {
			n++
			o.To = reprocess.ResetLatest
		}
		if *at != "" {
			n++
			t, err := time.Parse(time.RFC3339Nano, *at)
			if err != nil {
				return fmt.Errorf("reset: --to-time: want an RFC 3339 time (got %q)", *at)
			}
			o.To, o.Time = reprocess.ResetTime, t
		}
		if n > 1 {
			return errors.New("reset: give at most one of --to-earliest, --to-latest, --to-time")
		}
		p, err := loadPipeline(svc)
		if err != nil {
			return err
		}
		kc, err := kafkaConfig(ctx, svc, log)
		if err != nil {
			return err
		}
		o.Pipeline, o.Kafka = p, kc
		if st := svc.State.Resolve(p.State); st.Backend == config.StateBackendPebble {
			o.StateDirs = []string{st.Dir}
		}
		plan, err := reprocess.Reset(ctx, o)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(plan)
	}
}
