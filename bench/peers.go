package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The peer comparison of issue 20 (`go run ./bench --peer sluice|kstreams|flink|all
// --backend external --brokers ...`): the same job (decode, rules, dedup by event_id,
// revenue_by_country_1m) on Sluice, Kafka Streams and Flink, one after another on the same
// broker, from the same preloaded input, each as its own process. It measures the drain
// (events/s from "ready" to the last window result visible to a read_committed
// consumer), CPU seconds per 1,000 events and peak RSS, and, in an open-model run at a
// fixed rate on a fresh topic, the produce -> visible latency of the dedup output and of
// the window results; and it compares every system's window results with the harness
// oracle and fails loudly when one differs. See docs/BENCHMARKS.md.

// The systems of --peer.
const (
	peerSluice   = "sluice"
	peerKStreams = "kstreams"
	peerFlink    = "flink"
)

// Versions, as pinned in bench/peers/*/pom.xml.
const (
	kstreamsVersion = "Kafka Streams 4.1.1"
	flinkVersion    = "Flink 2.2.0, flink-connector-kafka 5.0.0-2.2"
)

// peerOptions are the command line of a peer comparison.
type peerOptions struct {
	// Peers are the systems, in run order.
	Peers []string
	// Brokers of the (real) broker all systems share.
	Brokers []string
	// Events is N, the preloaded events (duplicates, late and invalid ones included in
	// the generated mix; the flush tail and the duplicates' copies come on top).
	Events int
	// Seed seeds the input.
	Seed uint64
	// EventRate is the input's density: events per second of event time.
	EventRate float64
	// Rate is the open-model rate of the latency runs, events/s; Latency their measured
	// length (0 skips them) and LatencyWarmup the unmeasured lead-in.
	Rate          float64
	Latency       time.Duration
	LatencyWarmup time.Duration
	// FlinkCheckpoints are the checkpoint intervals Flink runs with, each a separate
	// entry ("flink" for the first, "flink_<interval>" for the others).
	FlinkCheckpoints []time.Duration
	// Heap is the JVMs' -Xmx.
	Heap string
	// KStreamsThreads is Kafka Streams' num.stream.threads.
	KStreamsThreads int
	// DrainTimeout bounds one system's drain.
	DrainTimeout time.Duration
	// JSON prints one JSON object as the last line.
	JSON bool
	// WorkDir keeps the peers' logs and state (default: a new temporary directory).
	WorkDir string
	// Plot, if set, is the SVG file the comparison's chart is written to (peers_plot.go);
	// PlotFrom redraws the chart from a saved --json report instead of running anything.
	Plot     string
	PlotFrom string
}

// parsePeerOptions reads the flags of a peer comparison. bench/main.go hands it the
// command line when --peer is given.
func parsePeerOptions(args []string, w io.Writer) (peerOptions, error) {
	o := peerOptions{}
	fs := flag.NewFlagSet("bench --peer", flag.ContinueOnError)
	fs.SetOutput(w)
	peers := fs.String("peer", "all", "systems to compare: sluice, kstreams, flink or all (comma-separated)")
	backend := fs.String("backend", BackendExternal, "must be external: the peers need a real broker")
	brokers := fs.String("brokers", "", "comma-separated Kafka brokers (a real broker, e.g. from make kafka-up)")
	fs.IntVar(&o.Events, "events", 1_000_000, "events preloaded for the drain runs")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the input")
	fs.Float64Var(&o.EventRate, "event-rate", 2000, "density of the input: events per second of event time")
	fs.Float64Var(&o.Rate, "rate", 5000, "open-model rate of the latency runs, events/s")
	fs.DurationVar(&o.Latency, "latency", 90*time.Second, "measured length of each latency run (0: no latency runs)")
	fs.DurationVar(&o.LatencyWarmup, "latency-warmup", 15*time.Second, "unmeasured lead-in of each latency run")
	cps := fs.String("flink-checkpoints", "1s,100ms", "Flink checkpoint intervals, each run separately")
	fs.StringVar(&o.Heap, "heap", "1g", "the JVMs' -Xmx")
	fs.IntVar(&o.KStreamsThreads, "kstreams-threads", peerPartitions, "Kafka Streams num.stream.threads")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 15*time.Minute, "longest one system may take to drain")
	fs.BoolVar(&o.JSON, "json", false, "print one JSON object as the last line")
	fs.StringVar(&o.WorkDir, "workdir", "", "directory for the peers' logs and state (default: a new temporary one)")
	fs.StringVar(&o.Plot, "plot", "", "write the comparison's chart (SVG) to this file")
	fs.StringVar(&o.PlotFrom, "plot-from", "", "redraw the chart from a saved --json report (needs --plot; runs nothing)")
	if err := fs.Parse(args); err != nil {
		return peerOptions{}, err
	}
	if fs.NArg() > 0 {
		return peerOptions{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for p := range strings.SplitSeq(*peers, ",") {
		switch p = strings.TrimSpace(p); p {
		case "all":
			o.Peers = append(o.Peers, peerSluice, peerKStreams, peerFlink)
		case peerSluice, peerKStreams, peerFlink:
			o.Peers = append(o.Peers, p)
		default:
			return peerOptions{}, fmt.Errorf("--peer: want sluice, kstreams, flink or all (got %q)", p)
		}
	}
	slices.Sort(o.Peers)
	o.Peers = slices.Compact(o.Peers)
	// Run order: Sluice first, then the JVMs.
	slices.SortFunc(o.Peers, func(a, b string) int { return peerOrder(a) - peerOrder(b) })
	for c := range strings.SplitSeq(*cps, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(c))
		if err != nil || d < 10*time.Millisecond {
			return peerOptions{}, fmt.Errorf("--flink-checkpoints: %q: want durations >= 10ms", c)
		}
		o.FlinkCheckpoints = append(o.FlinkCheckpoints, d)
	}
	if *brokers != "" {
		o.Brokers = strings.Split(*brokers, ",")
	}
	var errs []error
	if o.PlotFrom != "" {
		if o.Plot == "" {
			return peerOptions{}, errors.New("--plot-from needs --plot FILE.svg")
		}
		return o, nil
	}
	if *backend != BackendExternal || len(o.Brokers) == 0 {
		errs = append(errs, errors.New("--peer needs --backend external --brokers HOST:PORT (a real broker)"))
	}
	if o.Events < 1000 || o.Events > 3_000_000 {
		errs = append(errs, fmt.Errorf("--events: must be in [1000, 3000000] (got %d)", o.Events))
	}
	if o.EventRate <= 0 || o.EventRate > 100_000 {
		errs = append(errs, fmt.Errorf("--event-rate: must be in (0, 100000] (got %g)", o.EventRate))
	}
	if o.Rate <= 0 || o.Rate > 200_000 {
		errs = append(errs, fmt.Errorf("--rate: must be in (0, 200000] (got %g)", o.Rate))
	}
	if o.Latency < 0 || o.Latency > 30*time.Minute || o.LatencyWarmup < 0 {
		errs = append(errs, fmt.Errorf("--latency: must be in [0, 30m] (got %s)", o.Latency))
	}
	return o, errors.Join(errs...)
}

func peerOrder(s string) int { return map[string]int{peerSluice: 0, peerKStreams: 1, peerFlink: 2}[s] }

// peerResult is one system's measurements.
type peerResult struct {
	System  string `json:"system"`
	Version string `json:"version"`
	Config  string `json:"config"`
	// The drain: N preloaded events from "ready" to the last window result visible.
	DrainEvents     int     `json:"drain_events"`
	DrainSeconds    float64 `json:"drain_s"`
	DrainEventsPerS float64 `json:"drain_events_per_s"`
	CPUSPer1k       float64 `json:"cpu_s_per_1k_events"`
	RSSPeakMB       float64 `json:"rss_peak_mb"`
	StartupSeconds  float64 `json:"startup_s"`
	// Windows are the window results it emitted for the input (start before the flush).
	Windows       int      `json:"windows"`
	MatchesOracle bool     `json:"matches_oracle"`
	Differences   int      `json:"differences"`
	FirstDiffs    []string `json:"first_differences,omitempty"`
	// The open-model run on a fresh topic.
	LatencyRate          float64 `json:"latency_rate,omitempty"`
	DedupLatencyP50      float64 `json:"dedup_latency_p50_ms,omitempty"`
	DedupLatencyP95      float64 `json:"dedup_latency_p95_ms,omitempty"`
	DedupLatencyP99      float64 `json:"dedup_latency_p99_ms,omitempty"`
	DedupSamples         int     `json:"dedup_samples,omitempty"`
	WindowLatencyP50     float64 `json:"window_latency_p50_ms,omitempty"`
	WindowLatencyP95     float64 `json:"window_latency_p95_ms"`
	WindowLatencyP99     float64 `json:"window_latency_p99_ms,omitempty"`
	WindowSamples        int     `json:"window_samples,omitempty"`
	LatencyCPUSPer1k     float64 `json:"latency_cpu_s_per_1k_events,omitempty"`
	LatencyRSSPeakMB     float64 `json:"latency_rss_peak_mb,omitempty"`
	LatencyProducedTotal int     `json:"latency_produced,omitempty"`
	LatencyError         string  `json:"latency_error,omitempty"`
}

// peersReport is the whole comparison; with --json it is the last line.
type peersReport struct {
	Peers            map[string]*peerResult `json:"peers"`
	Order            []string               `json:"order"`
	ResultsIdentical bool                   `json:"results_identical"`
	OracleWindows    int                    `json:"oracle_windows"`
	Input            map[string]int         `json:"input"`
	Machine          string                 `json:"machine"`
}

// peerRun is one system in one configuration.
type peerRun struct {
	key, system string
	checkpoint  time.Duration // Flink
}

func (o peerOptions) runs() []peerRun {
	var rs []peerRun
	for _, p := range o.Peers {
		if p != peerFlink {
			rs = append(rs, peerRun{key: p, system: p})
			continue
		}
		for i, cp := range o.FlinkCheckpoints {
			k := peerFlink
			if i > 0 {
				k = peerFlink + "_" + cp.String()
			}
			rs = append(rs, peerRun{key: k, system: peerFlink, checkpoint: cp})
		}
	}
	return rs
}

// runPeers runs the comparison and writes the report (a table, or with o.JSON one JSON
// object as the last line) to stdout. It fails when a system's window results differ from
// the oracle's, after writing the report.
func runPeers(ctx context.Context, o peerOptions, stdout, progress io.Writer) error {
	if o.PlotFrom != "" {
		rep, err := readPeersReport(o.PlotFrom)
		if err != nil {
			return err
		}
		return savePeersPlot(o.Plot, rep)
	}
	rep, err := measurePeers(ctx, o, progress)
	if err != nil {
		return err
	}
	if o.Plot != "" {
		if err := savePeersPlot(o.Plot, rep); err != nil {
			return err
		}
	}
	if o.JSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		writePeersMarkdown(stdout, rep)
	}
	if !rep.ResultsIdentical {
		var bad []string
		for _, k := range rep.Order {
			if r := rep.Peers[k]; !r.MatchesOracle {
				bad = append(bad, fmt.Sprintf("%s (%d differences, first: %s)", k, r.Differences, strings.Join(r.FirstDiffs, "; ")))
			}
		}
		return fmt.Errorf("peers: WINDOW RESULTS DIFFER from the harness oracle: %s", strings.Join(bad, " | "))
	}
	return nil
}

// measurePeers runs every system's drain and latency runs and compares their results.
func measurePeers(ctx context.Context, o peerOptions, progress io.Writer) (*peersReport, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	work := o.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "sluice-peers-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	if err := buildPeers(ctx, root, work, o.Peers, progress); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	runID := strconv.FormatInt(time.Now().Unix()%1_000_000_000, 36)

	t0 := time.Now()
	in, err := genPeerInput(o.Events, o.Seed, o.EventRate, time.Now())
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "peers: %d records (%d duplicates, %d breaking a rule), then %d late and %d flush; oracle: %d windows, %d late (%.1fs)\n",
		len(in.Events), in.Duplicates, in.Invalid, len(in.LateTail), len(in.Flush), len(in.Expected), in.OracleLate,
		time.Since(t0).Seconds())

	rep := &peersReport{Peers: map[string]*peerResult{}, OracleWindows: len(in.Expected), Machine: machine(),
		Input: map[string]int{"events": o.Events, "records": len(in.Events) + len(in.Tail()), "duplicates": in.Duplicates, "late": in.Late,
			"invalid": in.Invalid, "oracle_late": in.OracleLate}}
	// Every run gets its own copy of the input (the flush tail is written into it once
	// that run has consumed the input). Sluice's embedded registry gives the raw schema
	// id 1 (sluicepeer prints it; checked before its drain); the JVM peers skip the
	// 5-byte framing.
	const drainSchemaID = 1
	enc, err := newPeerEncoder("peers", drainSchemaID)
	if err != nil {
		return nil, err
	}
	recs := make([]*kgo.Record, len(in.Events))
	for i := range in.Events {
		if recs[i], err = enc.record(&in.Events[i]); err != nil {
			return nil, err
		}
	}
	raws := map[string]string{}
	for _, r := range o.runs() {
		raw := "peers_" + runID + "_" + strings.ReplaceAll(r.key, ".", "") + "_raw"
		if err := createTopics(ctx, adm, raw); err != nil {
			return nil, err
		}
		if err := preload(ctx, cl, raw, recs, progress); err != nil {
			return nil, err
		}
		raws[r.key] = raw
	}

	rep.ResultsIdentical = true
	for _, r := range o.runs() {
		res := &peerResult{System: r.system}
		rep.Peers[r.key] = res
		rep.Order = append(rep.Order, r.key)
		if err := drainRun(ctx, o, root, work, runID, raws[r.key], r, in, res, cl, progress); err != nil {
			return nil, fmt.Errorf("%s drain: %w", r.key, err)
		}
		if !res.MatchesOracle {
			rep.ResultsIdentical = false
		}
		if o.Latency > 0 {
			// A latency run that fails is reported, not fatal: the drain's comparison stands.
			if err := latencyRun(ctx, o, root, work, runID, r, res, cl, progress); err != nil {
				res.LatencyError = err.Error()
				fmt.Fprintf(progress, "peers: %s: latency run failed: %v\n", r.key, err)
			}
		}
	}
	return rep, nil
}

// machine describes this machine in one line.
func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return fmt.Sprintf("%d cores (%s), %s/%s, load average %s at the start", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, load)
}

// createTopics creates topics with the peers' partition count.
func createTopics(ctx context.Context, adm *kadm.Client, topics ...string) error {
	res, err := adm.CreateTopics(ctx, peerPartitions, -1, nil, topics...)
	if err != nil {
		return err
	}
	for _, r := range res.Sorted() {
		if r.Err != nil {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// preload writes copies of recs to topic, in order per partition.
func preload(ctx context.Context, cl *kgo.Client, topic string, recs []*kgo.Record, progress io.Writer) error {
	t0 := time.Now()
	const chunk = 5000
	batch := make([]*kgo.Record, 0, chunk)
	for i, r := range recs {
		batch = append(batch, &kgo.Record{Topic: topic, Partition: r.Partition, Key: r.Key, Value: r.Value,
			Headers: r.Headers, Timestamp: r.Timestamp})
		if len(batch) == chunk || i == len(recs)-1 {
			if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
				return fmt.Errorf("preload: %w", err)
			}
			batch = batch[:0]
		}
	}
	fmt.Fprintf(progress, "peers: preloaded %d records into %s in %.1fs\n", len(recs), topic, time.Since(t0).Seconds())
	return nil
}

// writePeersMarkdown prints the comparison as a table.
func writePeersMarkdown(w io.Writer, rep *peersReport) {
	fmt.Fprintf(w, "Machine: %s\n\nInput: %v; oracle windows %d; results identical: %v\n\n", rep.Machine, rep.Input, rep.OracleWindows, rep.ResultsIdentical)
	fmt.Fprintln(w, "| system | drain events/s | CPU s / 1k events | RSS peak MiB | startup s | windows | = oracle | dedup p50/p95/p99 ms | window p50/p95/p99 ms (samples) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, k := range rep.Order {
		r := rep.Peers[k]
		fmt.Fprintf(w, "| %s | %.0f | %.4f | %.0f | %.1f | %d | %v | %.0f / %.0f / %.0f | %.0f / %.0f / %.0f (%d) |\n",
			k, r.DrainEventsPerS, r.CPUSPer1k, r.RSSPeakMB, r.StartupSeconds, r.Windows, r.MatchesOracle,
			r.DedupLatencyP50, r.DedupLatencyP95, r.DedupLatencyP99, r.WindowLatencyP50, r.WindowLatencyP95, r.WindowLatencyP99, r.WindowSamples)
	}
}

// wantsPeers reports whether the command line asks for the peer comparison (--peer).
// bench/main.go's run checks it first and hands the whole command line to runPeersCommand.
func wantsPeers(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "peer" || name == "peers") {
			return true
		}
	}
	return false
}

// runPeersCommand is `go run ./bench --peer ...`: it parses args and runs the comparison.
// --peers is accepted as a spelling of --peer.
func runPeersCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	args = slices.Clone(args)
	for i, a := range args {
		if name, v, ok := strings.Cut(strings.TrimLeft(a, "-"), "="); name == "peers" && strings.HasPrefix(a, "-") {
			args[i] = "--peer"
			if ok {
				args[i] += "=" + v
			}
		}
	}
	o, err := parsePeerOptions(args, stderr)
	if err != nil {
		return err
	}
	return runPeers(ctx, o, stdout, stderr)
}
