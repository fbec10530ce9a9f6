package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-json"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/schema"
)

// receiveTime is the fixed clock of the tests.
var receiveTime = time.Date(2026, 11, 27, 10, 0, 0, 123_000_000, time.UTC)

func fixedNow() time.Time { return receiveTime }

// fakeProducer captures produced records. With fail set it returns that error; with
// block set it waits for its context; with hang set it waits for hang to close,
// ignoring the context; with discard set it acknowledges and forgets.
type fakeProducer struct {
	mu      sync.Mutex
	recs    []*kgo.Record
	fail    error
	block   bool
	hang    chan struct{}
	entered chan struct{} // if set, receives once per call before waiting
	discard bool          // acknowledge without keeping the records (benchmarks)
}

func (p *fakeProducer) Produce(ctx context.Context, recs ...*kgo.Record) error {
	if p.entered != nil {
		p.entered <- struct{}{}
	}
	switch {
	case p.fail != nil:
		return p.fail
	case p.block:
		<-ctx.Done()
		return ctx.Err()
	case p.hang != nil:
		<-p.hang
	case p.discard:
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recs = append(p.recs, recs...)
	return nil
}

func (p *fakeProducer) records() []*kgo.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*kgo.Record(nil), p.recs...)
}

// testSchemas registers the built-in schemas on a fake registry.
type testSchemas struct {
	reg       *schema.Registry
	purchases *schema.Codec
	clicks    *schema.Codec
}

func newTestSchemas(t testing.TB) *testSchemas {
	t.Helper()
	fake := srfake.New()
	t.Cleanup(fake.Close)
	cl, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	s := &testSchemas{reg: schema.NewRegistry(cl)}
	s.purchases = s.register(t, "purchases")
	s.clicks = s.register(t, "clicks")
	return s
}

func (s *testSchemas) register(t testing.TB, topic string) *schema.Codec {
	t.Helper()
	avsc, ok := schema.Builtin(topic + ".avsc")
	if !ok {
		t.Fatalf("no built-in schema %s.avsc", topic)
	}
	c, err := s.reg.Register(context.Background(), topic+"-value", avsc)
	if err != nil {
		t.Fatalf("register %s: %v", topic, err)
	}
	return c
}

func (s *testSchemas) topics() []ingest.Topic {
	return []ingest.Topic{
		{Name: "purchases", KeyField: "user_id", Codec: s.purchases},
		{Name: "clicks", KeyField: "user_id", Codec: s.clicks},
	}
}

// testServer is a Server on a fake producer, a fixed clock and its own registry.
type testServer struct {
	*ingest.Server
	schemas  *testSchemas
	producer *fakeProducer
	metrics  *prometheus.Registry
}

func newTestServer(t testing.TB, p *fakeProducer, edit func(*ingest.Config)) *testServer {
	t.Helper()
	schemas := newTestSchemas(t)
	reg := prometheus.NewRegistry()
	cfg := ingest.Config{Topics: schemas.topics(), Now: fixedNow, Registerer: reg, Gatherer: reg}
	if edit != nil {
		edit(&cfg)
	}
	if p == nil {
		p = &fakeProducer{}
	}
	s, err := ingest.New(cfg, p)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &testServer{Server: s, schemas: schemas, producer: p, metrics: reg}
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request through app.Test.
func (s *testServer) do(t testing.TB, method, path, contentType, body string, header map[string]string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewBufferString(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := s.App().Test(req, 5000)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// problem decodes a problem+json answer, failing the test if it is not one.
func (r response) problem(t testing.TB) ingest.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != ingest.MediaTypeProblem {
		t.Fatalf("Content-Type = %q, want %s (body %s)", ct, ingest.MediaTypeProblem, r.body)
	}
	var p ingest.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if p.Status != r.status || p.Type == "" || p.Title == "" {
		t.Fatalf("problem %+v does not match status %d", p, r.status)
	}
	return p
}

// purchase returns a valid purchase event as JSON, with fields overridden or removed
// (nil value) by edits.
func purchase(edits map[string]any) map[string]any {
	ev := map[string]any{
		"event_id":   "01JDPURCHASE0000000000000A",
		"event_time": "2026-11-27T09:59:00.500Z",
		"user_id":    "u-42",
		"session_id": "s-1",
		"country":    "DE",
		"device":     "mobile",
		"order_id":   "o-7",
		"amount":     19.99,
		"currency":   "EUR",
		"items":      2,
		"product_id": "p-3",
	}
	for k, v := range edits {
		if v == nil {
			delete(ev, k)
			continue
		}
		ev[k] = v
	}
	return ev
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ndjson renders events one per line.
func ndjson(t testing.TB, evs ...map[string]any) string {
	t.Helper()
	var b bytes.Buffer
	for _, ev := range evs {
		b.WriteString(mustJSON(t, ev))
		b.WriteByte('\n')
	}
	return b.String()
}

// header returns the value of the record header key.
func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

var errKafkaDown = errors.New("kafka: all brokers down")
