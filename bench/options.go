package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pipeline/gen"
)

// Modes of --mode: how events are packed into requests.
const (
	ModeSingle = "single" // one JSON object per request
	ModeBatch  = "batch"  // a JSON array of --batch-size events per request
	ModeNDJSON = "ndjson" // --batch-size NDJSON lines per request
)

// Backends of --backend.
const (
	BackendKfake    = "kfake"    // an in-process kfake broker (default)
	BackendExternal = "external" // the brokers of --brokers
)

// Options are the command line of the load generator.
type Options struct {
	// Mode is single, batch or ndjson.
	Mode string
	// BatchSize is the events per request in batch and ndjson modes. Default 100.
	BatchSize int
	// Rate is the offered load in events per second; requests per second are
	// Rate/BatchSize in the batch modes.
	Rate float64
	// Duration is how long the load runs (each step's length in step mode).
	Duration time.Duration
	// Mix weighs the topics the events go to, e.g. purchases=6,page_views=3,clicks=1.
	Mix []TopicWeight
	// Seed seeds the event generators.
	Seed uint64
	// JSON prints one JSON object as the last line instead of a Markdown table.
	JSON bool
	// Plot, if set, is the SVG file the latency-over-time chart is written to.
	Plot string
	// Step, if set, is a step run "from:to:by" in events/s (e.g. 10000:200000:10000).
	Step *Steps
	// SLO is the e2e p95 a step must stay under to count as sustained. Default 100ms.
	SLO time.Duration
	// Backend is kfake or external.
	Backend string
	// Brokers are the Kafka brokers: of --backend external, or of the --target
	// deployment (for the end-to-end consumer).
	Brokers []string
	// Target, if set, is the base URL of a running deployment to load instead of an
	// in-process one.
	Target string
	// Token is the bearer token sent to --target (default $SLUICE_BENCH_TOKEN).
	Token string
	// Drain bounds the wait for the last events to reach .clean after the load ends.
	// Default 15s.
	Drain time.Duration
	// Timeout is the HTTP request timeout. Default 10s.
	Timeout time.Duration
	// Connections caps the open HTTP connections (requests beyond it wait for one,
	// and that wait counts as their latency). Default 512.
	Connections int
	// Bare, if set, measures a bare franz-go produce->consume loop on the same broker
	// at the same rate (acks=all, read_committed) after the pipeline run.
	Bare bool
	// CPUProfile, if set, is the file a CPU profile of the measured runs goes to (the
	// in-process platform included), for go tool pprof.
	CPUProfile string
	// IdempotentIngest makes the in-process ingest write with the plain idempotent
	// producer instead of transactions (to measure what the transactions cost).
	IdempotentIngest bool
	// StateBackend is where the in-process processor keeps its state: pebble (default,
	// in a temporary directory removed at exit) or memory.
	StateBackend string
	// CleanOnly runs the in-process pipeline without its aggregations (ingest, the
	// clean and retry stages only), so ingest->clean capacity can be measured on its own.
	CleanOnly bool
	// Verbose logs the services' warnings to stderr.
	Verbose bool
}

// TopicWeight is one entry of --mix.
type TopicWeight struct {
	Topic  string
	Weight int
}

// Steps is a step run: rates From, From+By, ... up to To (inclusive).
type Steps struct {
	From, To, By float64
}

// Rates lists the step rates, at most 1000 of them.
func (s Steps) Rates() []float64 {
	var out []float64
	for r := s.From; r <= s.To+1e-9 && len(out) < 1000; r += s.By {
		out = append(out, r)
	}
	return out
}

// defaultMix is the event mix when --mix is not given.
var defaultMix = "purchases=6,page_views=3,clicks=1"

// parseOptions reads the command line. Help output goes to w.
func parseOptions(args []string, w io.Writer) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.StringVar(&o.Mode, "mode", ModeSingle, "request shape: single (one event per request), batch (JSON array) or ndjson")
	fs.IntVar(&o.BatchSize, "batch-size", 100, "events per request in batch and ndjson modes")
	fs.Float64Var(&o.Rate, "rate", 10000, "offered load in events/s (requests/s = rate/batch-size in batch modes)")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "how long the load runs (each step's length with --step)")
	mix := fs.String("mix", defaultMix, "topic weights of the synthetic events")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the event generators")
	fs.BoolVar(&o.JSON, "json", false, "print one JSON object as the last line instead of a Markdown table")
	fs.StringVar(&o.Plot, "plot", "", "write a latency-over-time and throughput chart (SVG) to `FILE`")
	step := fs.String("step", "", "step run `from:to:by` in events/s (e.g. 10000:200000:10000); reports the knee")
	fs.DurationVar(&o.SLO, "slo", 100*time.Millisecond, "e2e p95 a step must stay under to count as sustained")
	fs.StringVar(&o.Backend, "backend", BackendKfake, "kfake (in-process broker) or external (--brokers)")
	brokers := fs.String("brokers", "", "comma-separated Kafka brokers (--backend external, or the --target deployment's)")
	fs.StringVar(&o.Target, "target", "", "base `URL` of a running deployment to load (default: start one in-process)")
	fs.StringVar(&o.Token, "token", "", "bearer token for --target (default $SLUICE_BENCH_TOKEN)")
	fs.DurationVar(&o.Drain, "drain", 15*time.Second, "how long to wait for the last events to reach .clean")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "HTTP request timeout")
	fs.IntVar(&o.Connections, "connections", 2000, "most HTTP connections open at once (waiting for one counts as latency)")
	fs.BoolVar(&o.Bare, "bare", false, "also measure a bare franz-go produce->consume loop on the same broker")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured runs to `FILE` (go tool pprof)")
	fs.BoolVar(&o.IdempotentIngest, "idempotent-ingest", false, "in-process ingest writes with the idempotent producer instead of transactions (a 503 may then follow a partial write; for comparison only)")
	fs.StringVar(&o.StateBackend, "state-backend", "pebble", "state backend of the in-process processor: pebble (a temporary directory) or memory")
	fs.BoolVar(&o.CleanOnly, "clean-only", false, "run the in-process pipeline without the aggregations (ingest, clean and retry stages only)")
	fs.BoolVar(&o.Verbose, "v", false, "log the services' warnings to stderr")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.Mix, err = parseMix(*mix); err != nil {
		return Options{}, err
	}
	if *step != "" {
		s, err := parseSteps(*step)
		if err != nil {
			return Options{}, err
		}
		o.Step = &s
	}
	if *brokers != "" {
		o.Brokers = strings.Split(*brokers, ",")
	}
	return o, o.Validate()
}

// Validate checks o and names the bad flag.
func (o *Options) Validate() error {
	var errs []error
	bad := func(f, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", f, fmt.Sprintf(format, args...)))
	}
	if !slices.Contains([]string{ModeSingle, ModeBatch, ModeNDJSON}, o.Mode) {
		bad("mode", "want single, batch or ndjson (got %q)", o.Mode)
	}
	if o.BatchSize < 1 || o.BatchSize > 10000 {
		bad("batch-size", "must be in [1, 10000] (got %d)", o.BatchSize)
	}
	if o.Rate <= 0 && o.Step == nil {
		bad("rate", "must be > 0 (got %g)", o.Rate)
	}
	if o.Duration < time.Second || o.Duration > time.Hour {
		bad("duration", "must be in [1s, 1h] (got %s)", o.Duration)
	}
	if o.Backend != BackendKfake && o.Backend != BackendExternal {
		bad("backend", "want kfake or external (got %q)", o.Backend)
	}
	if o.Backend == BackendExternal && len(o.Brokers) == 0 {
		bad("brokers", "needed with --backend external")
	}
	if o.Target != "" {
		if u, err := url.Parse(o.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("target", "want an http(s) URL (got %q)", o.Target)
		}
		if o.Bare {
			bad("bare", "not with --target (the bare loop runs beside an in-process pipeline)")
		}
		if o.CleanOnly {
			bad("clean-only", "not with --target (it chooses the stages of the in-process pipeline)")
		}
		if o.IdempotentIngest {
			bad("idempotent-ingest", "not with --target (it chooses the producer of the in-process ingest)")
		}
	}
	if o.Drain < 0 || o.Drain > 10*time.Minute {
		bad("drain", "must be in [0, 10m] (got %s)", o.Drain)
	}
	if o.Connections < 1 || o.Connections > 10000 {
		bad("connections", "must be in [1, 10000] (got %d)", o.Connections)
	}
	if o.Timeout <= 0 {
		bad("timeout", "must be > 0 (got %s)", o.Timeout)
	}
	if o.SLO <= 0 {
		bad("slo", "must be > 0 (got %s)", o.SLO)
	}
	return errors.Join(errs...)
}

// eventsPerRequest is how many events one request carries.
func (o *Options) eventsPerRequest() int {
	if o.Mode == ModeSingle {
		return 1
	}
	return o.BatchSize
}

// parseMix reads "topic=weight,..."; each topic must have a generator.
func parseMix(s string) ([]TopicWeight, error) {
	var out []TopicWeight
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		if !ok {
			w = "1"
		}
		n, err := strconv.Atoi(w)
		if err != nil || n < 0 || n > 1000 {
			return nil, fmt.Errorf("--mix: weight of %q must be an integer in [0, 1000] (got %q)", name, w)
		}
		if !slices.Contains(gen.Topics(), name) {
			return nil, fmt.Errorf("--mix: unknown topic %q (want some of %v)", name, gen.Topics())
		}
		if slices.ContainsFunc(out, func(t TopicWeight) bool { return t.Topic == name }) {
			return nil, fmt.Errorf("--mix: topic %q given twice", name)
		}
		if n > 0 {
			out = append(out, TopicWeight{Topic: name, Weight: n})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--mix: needs at least one topic with a weight > 0 (got %q)", s)
	}
	return out, nil
}

// parseSteps reads "from:to:by".
func parseSteps(s string) (Steps, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Steps{}, fmt.Errorf("--step: want from:to:by (got %q)", s)
	}
	var v [3]float64
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f <= 0 {
			return Steps{}, fmt.Errorf("--step: %q: want a positive number", p)
		}
		v[i] = f
	}
	st := Steps{From: v[0], To: v[1], By: v[2]}
	if st.To < st.From {
		return Steps{}, fmt.Errorf("--step: to (%g) is below from (%g)", st.To, st.From)
	}
	if n := (st.To-st.From)/st.By + 1; n > 50 {
		return Steps{}, fmt.Errorf("--step: %.0f steps; at most 50", n)
	}
	return st, nil
}
