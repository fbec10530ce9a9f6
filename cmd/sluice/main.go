// Command sluice is the Sluice event-streaming platform: one binary, one subcommand per
// service. `sluice dev` runs the whole platform in one process.
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
	"syscall"

	"github.com/sluicehq/sluice/pipeline/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}

const usage = `usage: sluice <command> [flags]

commands:
  dev        the whole platform in one process (embedded Kafka, registry, API, processor)
  ingest     the ingest HTTP API
  process    the stream processor (clean stage, windows, retries)
  sink       the warehouse sink: clean events and window results into DuckDB or Snowflake
  query      run SQL on the embedded DuckDB warehouse (of a running dev, or a file)
  consume    print a topic's records as JSON lines, Avro decoded
  generate   send synthetic events to the API or straight to Kafka
  topics     create or describe the pipeline's topics
  health     GET a service's /healthz; exit 0 on 2xx (the container health check)
  dlq        inspect a dead-letter topic, or replay its records to their topics
  console    the operator console in the browser (pipeline, dead letters, windows, events)
  reprocess  recompute an aggregation's windows over a time range and rewrite them, or
             (--topic) re-feed a topic's raw records after a rule fix
  reset      delete a stopped stage's offsets, changelogs and local state (rebuild it)

Every flag can also be set as SLUICE_<FLAG_IN_UPPER_SNAKE>. Each command takes only the
flags it honours: run 'sluice <command> -h'.
`

// command is one subcommand: it registers its flags on fs and returns the function that
// runs once they are parsed.
type command func(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(ctx context.Context, log *slog.Logger) error

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := map[string]command{
		"dev":       devCmd,
		"ingest":    ingestCmd,
		"process":   processCmd,
		"consume":   consumeCmd,
		"generate":  generateCmd,
		"topics":    topicsCmd,
		"dlq":       dlqCmd,
		"reprocess": reprocessCmd,
		"reset":     resetCmd,
		"sink":      sinkCmd,
		"query":     queryCmd,
		"health":    healthCmd,
		"console":   consoleCmd,
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return errors.New("no command")
		}
		return nil
	}
	mk, ok := cmds[args[0]]
	if !ok {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
	fs := flag.NewFlagSet("sluice "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var svc config.Service
	bindServiceFlags(args[0], fs, &svc)
	runFn := mk(fs, &svc, stdout)
	if err := fs.Parse(args[1:]); err != nil {
		return notHonoured(args[0], err)
	}
	if err := config.ApplyEnv(fs, os.LookupEnv); err != nil {
		return err
	}
	if err := svc.Validate(); err != nil {
		return err
	}
	opts := &slog.HandlerOptions{Level: svc.SlogLevel()}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if svc.LogFormat == "json" {
		h = slog.NewJSONHandler(stderr, opts)
	}
	log := slog.New(h)
	return runFn(ctx, log)
}

// loadPipeline loads and validates the pipeline file named by --config.
func loadPipeline(svc *config.Service) (*config.Pipeline, error) {
	p, err := config.Load(svc.Config)
	if err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}
