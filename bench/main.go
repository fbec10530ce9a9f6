// Command bench is Sluice's open-model load generator (`go run ./bench`): it offers a
// constant arrival rate of synthetic events to the ingest API with vegeta's attacker
// (requests leave on schedule whatever the answers do, so slow answers cannot hide
// latency: no coordinated omission), records HTTP latency and true end-to-end latency
// (sluice-ingest-ts to the record's arrival on <topic>.clean, read_committed) in HDR
// histograms, and prints a Markdown table or, with --json, one JSON object as its last
// line. By default it starts the production pipeline in this process on an in-process
// kfake broker; --backend external --brokers uses a real broker, --target a running
// deployment. --step finds the knee; --bare measures a bare franz-go
// produce->consume loop on the same broker as the floor; --plot draws the run.
// See docs/BENCHMARKS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// warmup is the load before the measured run: connections, metadata, producer ids and
// the first transactions are set up before the clock starts.
const warmup = 2 * time.Second

// warmupDrain bounds the wait, after the warm-up load, until every warm-up event has
// reached .clean. On a fresh real broker the stages' consumer groups take seconds to get
// their partitions (group.initial.rebalance.delay.ms, then one join per stage), and a
// measured run that starts behind that backlog measures the start-up, not the pipeline.
const warmupDrain = 60 * time.Second

// run parses args, runs the load and writes the report to stdout (progress to stderr).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if wantsPeers(args) { // --peer/--peers: Sluice vs Kafka Streams vs Flink (peers.go)
		return runPeersCommand(ctx, args, stdout, stderr)
	}
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	if o.Token == "" {
		o.Token = os.Getenv("SLUICE_BENCH_TOKEN")
	}
	out, err := measure(ctx, o, stderr)
	if err != nil {
		return err
	}
	if o.Plot != "" {
		if err := savePlot(o, out); err != nil {
			return err
		}
	}
	if o.JSON {
		return writeJSON(stdout, out)
	}
	return writeMarkdown(stdout, out)
}

// measure runs the load described by o and returns what it measured.
func measure(ctx context.Context, o Options, progress io.Writer) (Output, error) {
	bs, err := newBodies(o)
	if err != nil {
		return Output{}, err
	}
	r := &runner{o: o, bodies: bs, backend: o.Backend, stages: "full"}
	if o.CleanOnly {
		r.stages = "clean-only"
	}
	if o.IdempotentIngest {
		r.stages += ", idempotent ingest"
	}
	if o.Target == "" && o.StateBackend != "" {
		r.stages += ", state " + o.StateBackend
	}
	if o.Target != "" {
		r.base, r.brokers, r.backend, r.stages = o.Target, o.Brokers, "target", ""
		r.cpu = scrapeCPU(o.Target, o.Token)
	} else {
		log := slog.New(slog.DiscardHandler)
		if o.Verbose {
			log = slog.New(slog.NewTextHandler(progress, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		var brokers []string
		if o.Backend == BackendExternal {
			brokers = o.Brokers
		}
		instance := "bench-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		p, err := StartPlatform(ctx, brokers, instance, o.CleanOnly, o.IdempotentIngest, o.StateBackend, log)
		if err != nil {
			return Output{}, err
		}
		defer p.Close()
		r.base, r.brokers, r.cpu, r.txns = p.URL, p.Brokers, processCPU, p.Transactions
	}

	rates := []float64{o.Rate}
	if o.Step != nil {
		rates = o.Step.Rates()
	}
	// Warm up at the first rate (bounded at 10k/s) without measuring.
	wo := *r
	wo.o.Duration = warmup
	wo.o.Drain = warmupDrain
	fmt.Fprintf(progress, "bench: warming up %s at %.0f events/s against %s\n", warmup, min(rates[0], 10000), r.base)
	wres, err := wo.run(ctx, min(rates[0], 10000))
	if err != nil {
		return Output{}, fmt.Errorf("warm-up: %w", err)
	}
	if wres.E2EMeasured && wres.Clean < wres.Accepted {
		fmt.Fprintf(progress, "bench: warning: only %d of %d warm-up events reached .clean within %s\n",
			wres.Clean, wres.Accepted, warmupDrain)
	}

	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return Output{}, fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return Output{}, fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	out := Output{SLOms: float64(o.SLO) / float64(time.Millisecond)}
	var results []Result
	misses := 0
	for i, rate := range rates {
		fmt.Fprintf(progress, "bench: %s mode, %.0f events/s for %s (%d/%d)\n", o.Mode, rate, o.Duration, i+1, len(rates))
		res, err := r.run(ctx, rate)
		if err != nil {
			return Output{}, err
		}
		fmt.Fprintf(progress, "bench:   achieved %.0f events/s, errors %d, e2e p95 %.1f ms, p99 %.1f ms, sustained %v\n",
			res.AchievedRate, res.Errors, res.E2EP95, res.E2EP99, res.Sustained)
		results = append(results, res)
		if res.Sustained {
			misses = 0
			out.KneeRate = rate
			out.Result = res
		} else if misses++; o.Step != nil && misses == 2 {
			fmt.Fprintln(progress, "bench: two steps in a row not sustained; stopping")
			break
		}
	}
	if o.Step != nil {
		out.Steps = results
		if out.KneeRate == 0 {
			out.Result = results[0]
		}
	} else {
		out.Result = results[0]
		out.KneeRate = 0
	}
	if o.Bare && len(r.brokers) > 0 {
		rate := out.OfferedRate
		fmt.Fprintf(progress, "bench: bare franz-go produce->consume loop, %.0f records/s for %s\n", rate, o.Duration)
		b, err := runBare(ctx, r.brokers, rate, o.Duration, o.Drain)
		if err != nil {
			return Output{}, err
		}
		out.withBare(b)
	}
	for i := range results {
		out.timelineParts = append(out.timelineParts, results[i].timeline...)
	}
	return out, nil
}

// savePlot writes the run's chart to o.Plot.
func savePlot(o Options, out Output) error {
	title := fmt.Sprintf("sluice bench: %s mode, %s, %.0f events/s offered, e2e p95 %.1f ms, p99 %.1f ms",
		o.Mode, out.Backend, out.OfferedRate, out.E2EP95, out.E2EP99)
	if o.Step != nil {
		title = fmt.Sprintf("sluice bench: %s mode, %s, steps %.0f..%.0f events/s, knee %.0f events/s",
			o.Mode, out.Backend, o.Step.From, o.Step.To, out.KneeRate)
	}
	f, err := os.Create(o.Plot)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := writePlot(f, title, out.timelineParts); err != nil {
		f.Close()
		return fmt.Errorf("plot: %w", err)
	}
	return f.Close()
}
