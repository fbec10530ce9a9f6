package harness

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/service"
)

// Option configures Start.
type Option func(*options)

type options struct {
	backend   Backend
	pipeline  *config.Pipeline
	svc       func(*config.Service)
	now       func() time.Time
	processor bool
	cleanOnly bool
	logger    *slog.Logger
	// fake, if set, is the clock of every service, timers included.
	fake       *Clock
	transforms map[string]process.Transform
}

// WithCleanOnly runs only the clean stage in processor instances (no aggregations): the
// tests of ingest and the clean stage need nothing else.
func WithCleanOnly() Option { return func(o *options) { o.cleanOnly = true } }

// WithBackend picks the backend (default: SLUICE_TEST_BACKEND, else kfake).
func WithBackend(b Backend) Option { return func(o *options) { o.backend = b } }

// WithPipeline replaces the built-in pipeline file.
func WithPipeline(p *config.Pipeline) Option { return func(o *options) { o.pipeline = p } }

// WithService edits the service configuration before start.
func WithService(fn func(*config.Service)) Option { return func(o *options) { o.svc = fn } }

// WithClock injects the wall clock of every service.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithFakeClock injects c as the clock of every service: its Now, its timers (held
// partitions wake when c passes their time) and its Sleep (in-place backoff advances c).
// Jitter is off, so retry schedules are exact.
func WithFakeClock(c *Clock) Option {
	return func(o *options) { o.now, o.fake = c.Now, c }
}

// WithTransform registers t as the clean stage's transform of topic.
func WithTransform(topic string, t process.Transform) Option {
	return func(o *options) {
		if o.transforms == nil {
			o.transforms = map[string]process.Transform{}
		}
		o.transforms[topic] = t
	}
}

// WithoutProcessor starts no processor instance (start them with StartProcessor).
func WithoutProcessor() Option { return func(o *options) { o.processor = false } }

// WithLogger sends the services' logs to l (default: discarded unless SLUICE_TEST_LOG=1).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Pipeline is a running pipeline under test.
type Pipeline struct {
	t       testing.TB
	backend Backend
	// Deps are the services' shared dependencies (configuration, Kafka, schemas).
	Deps service.Deps
	// Schemas decodes any registered record.
	Schemas *schema.Registry
	// IngestURL is the ingest API's base URL, e.g. http://127.0.0.1:41234.
	IngestURL string
	// Brokers are the backend's brokers.
	Brokers []string
	// Metrics is the registry every service registers on.
	Metrics *prometheus.Registry
	// SinkLatency, if set before StartSink, is called for every row a sink commits with
	// its topic and the time from ingest to the warehouse commit.
	SinkLatency func(topic string, d time.Duration)

	ingest    *service.Ingest
	pm        *process.Metrics
	cl        *kgo.Client
	adm       *kadm.Client
	mu        sync.Mutex
	procs     []*Processor
	nextIID   int
	cleanOnly bool
	// stateRoot holds one state directory per processor instance id (StateDir), as one
	// disk per machine would: a restart under the same id finds its local state.
	stateRoot string
}

// StateDir is the state directory of the processor instance id (used unless the
// service configuration names one, or keeps state in memory).
func (p *Pipeline) StateDir(id string) string { return filepath.Join(p.stateRoot, id) }

// Start runs the pipeline (ingest and one clean-stage processor) on a backend and stops
// it when the test ends.
func Start(t testing.TB, opts ...Option) *Pipeline {
	t.Helper()
	o := options{processor: true, now: time.Now}
	for _, fn := range opts {
		fn(&o)
	}
	if o.backend == nil {
		o.backend = BackendFromEnv(t)
	}
	if o.pipeline == nil {
		o.pipeline = config.Default()
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
		if os.Getenv("SLUICE_TEST_LOG") != "" {
			o.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	brokers, regURL := o.backend.Start(t)
	if r, ok := o.backend.(Resetter); ok {
		r.Reset(t, o.pipeline)
	}
	svc := config.DefaultService()
	svc.Brokers = brokers
	svc.RegistryURL = regURL
	svc.HTTPAddr = "127.0.0.1:0"
	svc.InstanceID = "test"
	svc.TxnTimeout = 10 * time.Second
	if o.svc != nil {
		o.svc(&svc)
	}
	kc := kafka.Config{
		Brokers: brokers,
		// Without a low metadata age an injected leader error costs seconds of backoff.
		MetadataMinAge: 50 * time.Millisecond,
		// A killed instance holds its partitions for a session timeout.
		SessionTimeout: 2 * time.Second,
	}
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	d, sreg, err := service.Setup(ctx, svc, o.pipeline, kc, o.logger, reg)
	if err != nil {
		t.Fatalf("harness setup: %v", err)
	}
	d.Now = o.now
	d.Transforms = o.transforms
	if o.fake != nil {
		d.AfterFunc, d.Sleep = o.fake.AfterFunc, o.fake.Sleep
		d.Rand = func() float64 { return 0 }
	}
	p := &Pipeline{t: t, backend: o.backend, Deps: d, Schemas: sreg, Brokers: brokers, Metrics: reg,
		pm: process.NewMetrics(reg), cleanOnly: o.cleanOnly, stateRoot: t.TempDir()}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in, err := service.StartIngest(d, ln)
	if err != nil {
		t.Fatalf("harness ingest: %v", err)
	}
	p.ingest = in
	p.IngestURL = "http://" + in.Addr()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = in.Shutdown(sctx)
	})

	cl, err := kgo.NewClient(append(kc.Opts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	p.cl = cl
	p.adm = kadm.NewClient(cl)
	t.Cleanup(cl.Close)

	if o.processor {
		p.StartProcessor()
	}
	return p
}

// Cluster is the kfake cluster for fault injection, or nil on backends without one.
func (p *Pipeline) Cluster() *kfake.Cluster { return p.backend.Cluster() }

// FaultCluster is the kfake cluster for fault injection; it skips the test on a backend
// without BrokerFaults.
func (p *Pipeline) FaultCluster() *kfake.Cluster {
	p.t.Helper()
	Require(p.t, p.backend, BrokerFaults)
	return p.backend.Cluster()
}

// Post sends body to POST /api/v1/events/{topic} and returns the status, headers and body.
func (p *Pipeline) Post(topic, contentType string, body []byte, headers ...string) (int, http.Header, []byte) {
	p.t.Helper()
	req, err := http.NewRequestWithContext(p.t.Context(), http.MethodPost, p.IngestURL+"/api/v1/events/"+topic, bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("POST %s: %v", topic, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// Get fetches path from the ingest API.
func (p *Pipeline) Get(path string) (int, []byte) {
	p.t.Helper()
	resp, err := http.Get(p.IngestURL + path)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// Produce writes records straight to Kafka (acks=all), bypassing the API. A record
// without a partition goes to partition 0.
func (p *Pipeline) Produce(recs ...*kgo.Record) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.t.Context(), 10*time.Second)
	defer cancel()
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		p.t.Fatalf("produce: %v", err)
	}
}

// Metric returns the value of a counter or gauge (the sum over series whose labels
// include every given name=value pair), or the sample count of a histogram.
func (p *Pipeline) Metric(name string, labels ...string) float64 {
	p.t.Helper()
	mfs, err := p.Metrics.Gather()
	if err != nil {
		p.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, lp := range m.Label {
			if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// RestartIngest stops the ingest API gracefully (in-flight requests finish) and starts
// a new one on a new port; IngestURL changes.
func (p *Pipeline) RestartIngest() {
	p.t.Helper()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.ingest.Shutdown(sctx); err != nil {
		p.t.Fatalf("stop ingest: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.t.Fatal(err)
	}
	in, err := service.StartIngest(p.Deps, ln)
	if err != nil {
		p.t.Fatalf("restart ingest: %v", err)
	}
	p.ingest = in
	p.IngestURL = "http://" + in.Addr()
}
