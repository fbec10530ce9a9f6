package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/schema"
)

const dlqUsage = "usage: sluice dlq inspect [--samples N] DLQ_TOPIC\n" +
	"       sluice dlq replay [--to TOPIC] [--filter class=a,stage=b] [--since RFC3339] [--until RFC3339] [--max N] DLQ_TOPIC"

// inspected is what `sluice dlq inspect` prints.
type inspected struct {
	Topic     string         `json:"topic"`
	Total     int            `json:"total"`
	ByClass   map[string]int `json:"by_class"`
	ByStage   map[string]int `json:"by_stage"`
	ByReason  map[string]int `json:"by_reason"`
	Oldest    string         `json:"oldest_first_failure,omitempty"`
	OldestAge string         `json:"oldest_age,omitempty"`
	Samples   []consumed     `json:"samples"`
}

// replayed is what `sluice dlq replay` prints.
type replayed struct {
	Topic    string `json:"topic"`
	Read     int    `json:"read"`
	Replayed int    `json:"replayed"`
}

// dlqCmd is `sluice dlq inspect|replay`: it reads a dead-letter topic from its start to
// its current end (read_committed) and summarizes it or re-publishes its dead letters.
// Flags may follow the subcommand and the topic.
func dlqCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	samples := fs.Int("samples", 3, "inspect: print up to `N` sample dead letters")
	to := fs.String("to", "", "replay: publish to this `topic` (default: each record's sluice-original-topic)")
	filter := fs.String("filter", "", "replay: only dead letters matching `class=a,stage=b` (a key may repeat: class=a,class=b)")
	since := fs.String("since", "", "replay: only dead letters that first failed at or after this RFC3339 `time`")
	until := fs.String("until", "", "replay: only dead letters that first failed before this RFC3339 `time`")
	maxN := fs.Int("max", 0, "replay: re-publish at most `N` dead letters (0: no limit)")
	timeout := fs.Duration("read-timeout", 30*time.Second, "give up reading the topic to its end after this long")
	return func(ctx context.Context, log *slog.Logger) error {
		args, err := parseInterspersed(fs)
		if err != nil {
			return err
		}
		if len(args) != 2 || (args[0] != "inspect" && args[0] != "replay") {
			return errors.New(dlqUsage)
		}
		sub, topic := args[0], args[1]
		kc, err := kafkaConfig(ctx, svc, log)
		if err != nil {
			return err
		}
		var f dlq.Filter
		if sub == "replay" {
			if f, err = parseFilter(*filter, *since, *until, *maxN); err != nil {
				return err
			}
		}
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		recs, err := readToEnd(rctx, kc, topic)
		cancel()
		if err != nil {
			return err
		}
		enc := json.NewEncoder(out)
		if sub == "inspect" {
			src, err := schema.NewClient(svc.RegistryURL, svc.Registry)
			if err != nil {
				return err
			}
			return enc.Encode(inspect(ctx, schema.NewRegistry(src), topic, recs, time.Now(), *samples))
		}
		p, err := kafka.NewProducer(kc, kafka.ProducerOptions{})
		if err != nil {
			return err
		}
		n, err := dlq.Replay(ctx, p, recs, *to, f)
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer ccancel()
		if cerr := p.Close(cctx); err == nil && cerr != nil {
			err = fmt.Errorf("replay: close producer: %w", cerr)
		}
		if err != nil {
			return err
		}
		log.Info("replayed dead letters", "topic", topic, "read", len(recs), "replayed", n)
		return enc.Encode(replayed{Topic: topic, Read: len(recs), Replayed: n})
	}
}

// inspect summarizes dead letters recs of topic, samples decoded through reg.
func inspect(ctx context.Context, reg *schema.Registry, topic string, recs []*kgo.Record, now time.Time, samples int) inspected {
	s := dlq.Summarize(recs, now, samples)
	in := inspected{Topic: topic, Total: s.Total, ByClass: s.ByClass, ByStage: s.ByStage, ByReason: s.ByReason,
		Samples: make([]consumed, 0, len(s.Samples))}
	if !s.Oldest.IsZero() {
		in.Oldest = s.Oldest.Format(time.RFC3339Nano)
		in.OldestAge = s.OldestAge.Round(time.Millisecond).String()
	}
	for _, r := range s.Samples {
		in.Samples = append(in.Samples, decodeRecord(ctx, reg, r))
	}
	return in
}

// parseInterspersed parses the flags that follow positional arguments (the flag package
// stops at the first one) and returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet) ([]string, error) {
	var pos []string
	for fs.NArg() > 0 {
		pos = append(pos, fs.Arg(0))
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return nil, err
		}
	}
	return pos, nil
}

// parseFilter builds a replay filter from the --filter, --since, --until and --max flags.
func parseFilter(filter, since, until string, maxN int) (dlq.Filter, error) {
	f := dlq.Filter{Max: maxN}
	if maxN < 0 {
		return f, fmt.Errorf("--max: must be >= 0 (got %d)", maxN)
	}
	if filter != "" {
		for kv := range strings.SplitSeq(filter, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || v == "" {
				return f, fmt.Errorf("--filter: %q is not key=value", kv)
			}
			switch k {
			case "class":
				f.Classes = append(f.Classes, v)
			case "stage":
				f.Stages = append(f.Stages, v)
			default:
				return f, fmt.Errorf("--filter: unknown key %q (want class or stage)", k)
			}
		}
	}
	var err error
	if since != "" {
		if f.Since, err = time.Parse(time.RFC3339, since); err != nil {
			return f, fmt.Errorf("--since: %w", err)
		}
	}
	if until != "" {
		if f.Until, err = time.Parse(time.RFC3339, until); err != nil {
			return f, fmt.Errorf("--until: %w", err)
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return f, fmt.Errorf("--since: must be before --until (got %s, %s)", since, until)
	}
	return f, nil
}

// readToEnd reads topic from its start to its current end as a read_committed consumer
// sees it, in partition order.
func readToEnd(ctx context.Context, kc kafka.Config, topic string) ([]*kgo.Record, error) {
	var out []*kgo.Record
	err := kafka.ReadCommitted(ctx, kc, topic, nil, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	})
	return out, err
}
