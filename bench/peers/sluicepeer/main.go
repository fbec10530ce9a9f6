// Command sluicepeer runs Sluice's processor (clean stage with dedup, retry stage, and the
// revenue_by_country_1m aggregation) as its own process on an external broker, for the
// peer comparison of bench/peers.go: the same job as the Kafka Streams and Flink peers in
// bench/peers/kstreams and bench/peers/flink, measured the same way (process CPU time and
// peak RSS of a separate process). The pipeline is the built-in one (pipeline/config/
// default.yaml) cut down to the purchases topic, renamed to --input, and its one
// aggregation, renamed to --agg, so every run gets fresh topics on a shared broker.
//
// It prints "SCHEMA_ID <n>" (the registry id of the raw schema, which the bench frames
// its records with) and then "PEER READY" once the stages run; it stops on SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/service"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sluicepeer:", err)
		os.Exit(1)
	}
}

func run() error {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated Kafka brokers")
	input := flag.String("input", "purchases", "raw purchases topic")
	agg := flag.String("agg", "revenue_by_country_1m", "name of the aggregation (its output topic is agg.<name>)")
	instance := flag.String("instance", "sluicepeer", "instance id (transactional ids)")
	stateDir := flag.String("state-dir", "", "state directory of the process stages (default: a temporary directory, removed at exit)")
	verbose := flag.Bool("v", false, "log warnings to stderr")
	cpuProfile := flag.String("cpuprofile", os.Getenv("SLUICEPEER_CPUPROFILE"), "write a CPU profile of the whole run to this file (env SLUICEPEER_CPUPROFILE: the bench starts this process)")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}

	p, err := Pipeline(*input, *agg)
	if err != nil {
		return err
	}
	emb, err := service.StartEmbedded(service.EmbeddedOptions{})
	if err != nil {
		return err
	}
	defer emb.Close()
	svc := config.DefaultService()
	svc.Brokers = strings.Split(*brokers, ",")
	svc.RegistryURL = emb.RegistryURL()
	svc.InstanceID = *instance
	svc.API.AuthDisabled = true
	svc.IdleAdvance = 0 // as the peers: windows close on event time only
	svc.State.Dir = *stateDir
	if svc.State.Dir == "" { // never ./sluice-state of wherever the bench runs
		dir, err := os.MkdirTemp("", "sluicepeer-state-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		svc.State.Dir = dir
	}

	reg := prometheus.NewRegistry()
	d, sreg, err := service.Setup(ctx, svc, p, kafka.Config{Brokers: svc.Brokers}, log, reg)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	d.ClientMetrics = reg
	fmt.Printf("SCHEMA_ID %d\n", d.Schemas[*input].Raw.ID)
	proc, err := service.NewProcessor(ctx, d, sreg, process.NewMetrics(reg))
	if err != nil {
		return err
	}
	fmt.Println("PEER READY")
	err = proc.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Pipeline is the built-in pipeline cut down to purchases (renamed input) and
// revenue_by_country_1m (renamed agg), with the built-in rules, horizon and window.
func Pipeline(input, agg string) (*config.Pipeline, error) {
	p := config.Default()
	var topics []config.Topic
	for _, t := range p.Topics {
		if t.Name == "purchases" {
			t.Name = input
			t.Schema = "purchases.avsc"
			topics = append(topics, t)
		}
	}
	var aggs []config.Aggregation
	for _, a := range p.Aggregations {
		if a.Name == "revenue_by_country_1m" {
			a.Name, a.From = agg, input
			aggs = append(aggs, a)
		}
	}
	if len(topics) != 1 || len(aggs) != 1 {
		return nil, fmt.Errorf("the built-in pipeline has no purchases topic or revenue_by_country_1m")
	}
	p.Topics, p.Aggregations = topics, aggs
	return p, p.Validate()
}
