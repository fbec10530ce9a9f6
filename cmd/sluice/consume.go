package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/schema"
)

// consumed is one printed record.
type consumed struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp string            `json:"timestamp"`
	Key       string            `json:"key"`
	Headers   map[string]string `json:"headers"`
	Value     any               `json:"value"`
	Error     string            `json:"decode_error,omitempty"`
}

func consumeCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	fromStart := fs.Bool("from-beginning", false, "read from the start of the topic (default: only new records)")
	maxN := fs.Int("max", 0, "stop after `N` records (0: no limit)")
	timeout := fs.Duration("timeout", 0, "stop after this long without a record (0: never)")
	return func(ctx context.Context, log *slog.Logger) error {
		if fs.NArg() != 1 {
			return errors.New("usage: sluice consume [flags] TOPIC")
		}
		topic := fs.Arg(0)
		src, err := schema.NewClient(svc.RegistryURL, svc.Registry)
		if err != nil {
			return err
		}
		reg := schema.NewRegistry(src)
		start := kgo.NewOffset().AtEnd()
		if *fromStart {
			start = kgo.NewOffset().AtStart()
		}
		kc, err := kafkaConfig(ctx, svc, log)
		if err != nil {
			return err
		}
		cl, err := kgo.NewClient(append(kc.Opts(),
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(start),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		)...)
		if err != nil {
			return err
		}
		defer cl.Close()
		enc := json.NewEncoder(out)
		n := 0
		for *maxN == 0 || n < *maxN {
			pctx, cancel := ctx, context.CancelFunc(func() {})
			if *timeout > 0 {
				pctx, cancel = context.WithTimeout(ctx, *timeout)
			}
			fetches := cl.PollRecords(pctx, max(0, *maxN-n))
			cancel()
			if ctx.Err() != nil || fetches.IsClientClosed() {
				return nil
			}
			if pctx.Err() != nil && fetches.NumRecords() == 0 {
				return nil // idle for --timeout
			}
			var ferr error
			fetches.EachError(func(t string, p int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
				}
			})
			if ferr != nil {
				return ferr
			}
			for _, r := range fetches.Records() {
				if *maxN > 0 && n >= *maxN {
					break
				}
				if err := enc.Encode(decodeRecord(ctx, reg, r)); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	}
}

// decodeRecord turns a record into its printed form: Avro values decoded through the
// registry, anything else as a UTF-8 string or base64.
func decodeRecord(ctx context.Context, reg *schema.Registry, r *kgo.Record) consumed {
	c := consumed{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano),
		Key:       string(r.Key),
		Headers:   make(map[string]string, len(r.Headers)),
	}
	for _, h := range r.Headers {
		c.Headers[h.Key] = string(h.Value)
	}
	if r.Value == nil {
		return c
	}
	v, _, err := reg.Decode(ctx, r.Value)
	if err == nil {
		c.Value = schema.ToJSON(v)
		return c
	}
	c.Error = err.Error()
	if utf8.Valid(r.Value) {
		c.Value = string(r.Value)
	} else {
		c.Value = base64.StdEncoding.EncodeToString(r.Value)
	}
	return c
}
