package process_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/rules"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// benchNow is the fixed wall clock of the benchmarks; events are 1 ms apart from it.
var benchNow = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// purchases returns n raw purchase records encoded exactly as ingest writes them, with
// distinct event ids (a producer with the default partitioner spreads them by key).
func purchases(b *testing.B, raw *schema.Codec, n int) []*kgo.Record {
	b.Helper()
	at := benchNow
	clock := func() time.Time { return at }
	g, err := gen.New(gen.Purchases, gen.Options{Seed: 1, Now: clock})
	if err != nil {
		b.Fatal(err)
	}
	enc := ingest.NewEncoder(ingest.Topic{Name: gen.Purchases, KeyField: "user_id", Subject: wire.Subject(gen.Purchases), Codec: raw}, clock, 0)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		at = at.Add(time.Millisecond)
		r, _, err := enc.Record(g.Next(), "")
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = r
	}
	return recs
}

// BenchmarkCleanStage measures the clean stage's work per record without Kafka: decode
// (schema id known), rules, deduplication, re-encoding with processed_at, and, once per
// 5000 records (the default transaction size), the changelog records and the store
// commit. "unique" sees every event id once (the store grows to 20000 ids, then a new
// task starts); "duplicates" sees only ids it already holds.
func BenchmarkCleanStage(b *testing.B) {
	const (
		distinct = 20000
		txnSize  = 5000
	)
	fake := srfake.New()
	b.Cleanup(fake.Close)
	src, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		b.Fatal(err)
	}
	reg := schema.NewRegistry(src)
	avsc, _ := schema.Builtin("purchases.avsc")
	raw, err := reg.Register(b.Context(), wire.Subject(gen.Purchases), avsc)
	if err != nil {
		b.Fatal(err)
	}
	cleanAvsc, err := schema.Clean(avsc)
	if err != nil {
		b.Fatal(err)
	}
	clean, err := reg.Register(b.Context(), wire.Subject(wire.CleanTopic(gen.Purchases)), cleanAvsc)
	if err != nil {
		b.Fatal(err)
	}
	topic, ok := config.Default().Topic(gen.Purchases)
	if !ok {
		b.Fatal("no purchases topic in the built-in pipeline")
	}
	rs, err := rules.Compile(topic.Rules)
	if err != nil {
		b.Fatal(err)
	}
	c := &process.Clean{
		Topics:  map[string]process.CleanTopic{gen.Purchases: {Name: gen.Purchases, Codec: clean, Rules: rs}},
		Decoder: reg,
		Horizon: 24 * time.Hour,
		Now:     func() time.Time { return benchNow },
		Metrics: process.NewMetrics(prometheus.NewRegistry()),
	}
	recs := purchases(b, raw, distinct)

	// The store's backend: memory, or pebble in a new directory per task (with
	// SLUICE_BENCH_STATE=pebble).
	var state func() process.State
	switch os.Getenv("SLUICE_BENCH_STATE") {
	case "", "memory":
		state = func() process.State { return process.State{} }
	case "pebble":
		state = func() process.State { return process.State{Dir: b.TempDir()} }
	default:
		b.Fatalf("SLUICE_BENCH_STATE=%q: want memory or pebble", os.Getenv("SLUICE_BENCH_STATE"))
	}
	var last process.Task
	newTask := func() process.Task {
		if last != nil {
			for _, st := range last.Stores() {
				_ = st.Close()
			}
		}
		cfg := c.StageConfig(process.StageConfig{State: state()})
		t, err := cfg.NewTask(process.TaskID{Topic: gen.Purchases, Partition: 0})
		if err != nil {
			b.Fatal(err)
		}
		last = t
		return t
	}
	b.Cleanup(func() {
		if last != nil {
			for _, st := range last.Stores() {
				_ = st.Close()
			}
		}
	})
	var outputs, letters int
	cleanTopic := wire.CleanTopic(gen.Purchases)
	emit := func(r *kgo.Record) {
		if r.Topic == cleanTopic {
			outputs++
		} else {
			letters++
		}
	}
	// commit is what the stage does per transaction besides Kafka.
	commit := func(t process.Task) {
		for _, st := range t.Stores() {
			st.Changes(func(string, []byte) {})
			_ = st.CommitAt(stream.NoCheckpoint)
		}
		t.Done(true)
	}
	ctx := b.Context()

	for _, bc := range []struct {
		name       string
		duplicates bool
	}{{"unique", false}, {"duplicates", true}} {
		b.Run(bc.name, func(b *testing.B) {
			task := newTask()
			if bc.duplicates {
				for _, r := range recs {
					if err := task.Handle(ctx, r, emit); err != nil {
						b.Fatal(err)
					}
				}
				commit(task)
			}
			outputs, letters = 0, 0
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				if err := task.Handle(ctx, recs[i], emit); err != nil {
					b.Fatal(err)
				}
				i++
				if i%txnSize == 0 {
					commit(task)
				}
				if i == len(recs) {
					i = 0
					if !bc.duplicates {
						task = newTask()
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if letters > 0 {
				b.Fatalf("%d dead letters: the benchmark records should all be valid", letters)
			}
			if want := b.N; !bc.duplicates && outputs != want {
				b.Fatalf("%d outputs for %d unique records", outputs, want)
			}
			if bc.duplicates && outputs != 0 {
				b.Fatalf("%d outputs for duplicates", outputs)
			}
		})
	}
}

// BenchmarkCleanStageKfake measures the clean stage end to end on kfake: 20000 purchases
// wait in the raw topic (3 partitions); the timer runs from NewStage until the group's
// committed offsets reach the end of the topic. One iteration takes a few seconds; run
// it with -benchtime=1x..3x.
func BenchmarkCleanStageKfake(b *testing.B) {
	const n = 20000
	var txns float64
	for b.Loop() {
		b.StopTimer()
		env := startKfakeEnv(b, n)
		b.StartTimer()

		stage, err := service.NewCleanStage(b.Context(), env.deps, env.sreg, env.metrics, process.State{})
		if err != nil {
			b.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- stage.Run(ctx) }()
		env.waitCommitted(b, 30*time.Second)

		b.StopTimer()
		stop()
		if err := <-done; err != nil {
			b.Fatalf("stage: %v", err)
		}
		txns += counter(b, env.reg, "sluice_stage_transactions_total", "result", "commit")
		env.checkOutputs(b, n)
		env.close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(txns/float64(b.N), "txns/op")
	b.ReportMetric(float64(n)*float64(b.N)/txns, "records/txn")
}

// kfakeEnv is a broker and registry with the pipeline set up and the raw topic filled.
type kfakeEnv struct {
	cluster *kfake.Cluster
	fake    *srfake.Registry
	deps    service.Deps
	sreg    *schema.Registry
	reg     *prometheus.Registry
	metrics *process.Metrics
	adm     *kadm.Client
	ends    kadm.ListedOffsets
}

func startKfakeEnv(b *testing.B, n int) *kfakeEnv {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.DefaultNumPartitions(3))
	if err != nil {
		b.Fatal(err)
	}
	e := &kfakeEnv{cluster: c, fake: srfake.New(), reg: prometheus.NewRegistry()}
	svc := config.DefaultService()
	svc.Brokers = c.ListenAddrs()
	svc.RegistryURL = e.fake.URL()
	svc.InstanceID = "bench"
	svc.TxnTimeout = 10 * time.Second
	p := config.Default()
	p.Aggregations = nil // the clean stage alone
	kc := kafka.Config{Brokers: svc.Brokers}
	e.deps, e.sreg, err = service.Setup(b.Context(), svc, p, kc, nil, e.reg)
	if err != nil {
		b.Fatal(err)
	}
	e.metrics = process.NewMetrics(e.reg)

	cl, err := kgo.NewClient(append(kc.Opts(), kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		b.Fatal(err)
	}
	e.adm = kadm.NewClient(cl)
	recs := purchases(b, e.deps.Schemas[gen.Purchases].Raw, n)
	if err := cl.ProduceSync(b.Context(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	e.ends, err = e.adm.ListEndOffsets(b.Context(), gen.Purchases)
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	e.ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != int64(n) {
		b.Fatalf("raw topic holds %d records, want %d", total, n)
	}
	return e
}

// waitCommitted polls the group's committed offsets every 5 ms until they reach the
// topic's end.
func (e *kfakeEnv) waitCommitted(b *testing.B, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		offs, err := e.adm.FetchOffsets(b.Context(), "sluice."+wire.StageClean)
		if err == nil {
			caughtUp := true
			e.ends.Each(func(o kadm.ListedOffset) {
				c, ok := offs.Lookup(o.Topic, o.Partition)
				if !ok || c.Err != nil || c.At < o.Offset {
					caughtUp = false
				}
			})
			if caughtUp {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("clean stage not caught up after %s (last error %v)", timeout, err)
		}
		<-tick.C
	}
}

// checkOutputs fails unless every record went to the clean topic, none to the DLQ, and
// no transaction aborted.
func (e *kfakeEnv) checkOutputs(b *testing.B, n int) {
	b.Helper()
	out := func(topic string) float64 {
		return counter(b, e.reg, "sluice_stage_records_out_total", "stage", wire.StageClean, "topic", topic)
	}
	if got := out(wire.CleanTopic(gen.Purchases)); got != float64(n) {
		b.Fatalf("%v clean records, want %d", got, n)
	}
	if got := out(wire.DLQTopic(gen.Purchases)); got != 0 {
		b.Fatalf("%v dead letters, want 0", got)
	}
	if got := counter(b, e.reg, "sluice_stage_transactions_total", "result", "abort"); got != 0 {
		b.Fatalf("%v transactions aborted, want 0", got)
	}
}

func (e *kfakeEnv) close() {
	e.adm.Close()
	e.fake.Close()
	e.cluster.Close()
}

// counter sums a counter's series whose labels include the given name=value pairs.
func counter(b *testing.B, reg *prometheus.Registry, name string, labels ...string) float64 {
	b.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
