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

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/wire"
)

func generateCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	rate := fs.Float64("rate", 100, "events per `second`, all topics together")
	count := fs.Int("count", 1000, "stop after `N` events (0: run until interrupted)")
	seed := fs.Uint64("seed", 1, "generator seed: the same seed gives the same events")
	to := fs.String("to", "rest", "where to send: rest (the ingest API) or kafka (straight to the raw topics)")
	url := fs.String("url", "http://127.0.0.1:8080", "ingest API base `URL` (--to rest)")
	topics := fs.String("topics", "", "comma-separated topics (default: every topic with a generator)")
	batch := fs.Int("batch", 100, "events per request or produce call")
	return func(ctx context.Context, log *slog.Logger) error {
		p, err := loadPipeline(svc)
		if err != nil {
			return err
		}
		gens := map[string]*gen.Generator{}
		for i, t := range p.Topics {
			if *topics != "" && !contains(strings.Split(*topics, ","), t.Name) {
				continue
			}
			g, err := gen.New(t.Name, gen.Options{Seed: *seed + uint64(i)})
			if err != nil {
				continue
			}
			gens[t.Name] = g
		}
		if len(gens) == 0 {
			return errors.New("no topic to generate for")
		}
		var target gen.Target
		switch *to {
		case "rest":
			target = &gen.HTTPTarget{BaseURL: *url}
		case "kafka":
			d, _, err := service.Setup(ctx, *svc, p, kafka.Config{Brokers: svc.Brokers}, log, newRegistry())
			if err != nil {
				return err
			}
			prod, err := kafka.NewProducer(d.Kafka, kafka.ProducerOptions{MaxBufferedBytes: svc.MaxBufferedBytes})
			if err != nil {
				return err
			}
			defer prod.Close(context.WithoutCancel(ctx))
			kt := &kafkaTarget{prod: prod, enc: map[string]*ingest.Encoder{}, timeout: svc.AckTimeout}
			for _, t := range p.Topics {
				ts := d.Schemas[t.Name]
				kt.enc[t.Name] = ingest.NewEncoder(ingest.Topic{Name: t.Name, KeyField: t.KeyField, Subject: wire.Subject(t.Name), Codec: ts.Raw}, time.Now, svc.MaxFuture)
			}
			target = kt
		default:
			return fmt.Errorf("--to: must be rest or kafka (got %q)", *to)
		}
		start := time.Now()
		sent, err := gen.Run(ctx, target, gens, *rate, *batch, *count, time.Now)
		fmt.Fprintf(out, "sent %d events in %s\n", sent, time.Since(start).Round(time.Millisecond))
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	}
}

// kafkaTarget writes generated events straight to the raw topics, encoded exactly as the
// ingest API would.
type kafkaTarget struct {
	prod    *kafka.Producer
	enc     map[string]*ingest.Encoder
	timeout time.Duration
}

func (k *kafkaTarget) Send(ctx context.Context, topic string, events []map[string]any) error {
	e, ok := k.enc[topic]
	if !ok {
		return fmt.Errorf("unknown topic %s", topic)
	}
	recs := make([]*kgo.Record, 0, len(events))
	for _, ev := range events {
		r, _, err := e.Record(ev, "")
		if err != nil {
			return fmt.Errorf("%s: %w", topic, err)
		}
		recs = append(recs, r)
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	return k.prod.Produce(ctx, recs...)
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if strings.TrimSpace(s) == x {
			return true
		}
	}
	return false
}
