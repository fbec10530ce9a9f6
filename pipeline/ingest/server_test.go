package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-json"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/wire"
)

func TestNewValidatesConfig(t *testing.T) {
	schemas := newTestSchemas(t)
	good := schemas.topics()
	tests := []struct {
		name    string
		cfg     ingest.Config
		wantErr string
	}{
		{"no topics", ingest.Config{}, "topics"},
		{"no name", ingest.Config{Topics: []ingest.Topic{{KeyField: "user_id", Codec: schemas.purchases}}}, "name"},
		{"no key field", ingest.Config{Topics: []ingest.Topic{{Name: "purchases", Codec: schemas.purchases}}}, "key_field"},
		{"no codec", ingest.Config{Topics: []ingest.Topic{{Name: "purchases", KeyField: "user_id"}}}, "codec"},
		{"key field not in schema", ingest.Config{Topics: []ingest.Topic{{Name: "purchases", KeyField: "nope", Codec: schemas.purchases}}}, "nope"},
		{"duplicate topic", ingest.Config{Topics: []ingest.Topic{good[0], good[0]}}, "duplicate"},
		{"negative body limit", ingest.Config{Topics: good, MaxBodyBytes: -1}, "max_body_bytes"},
		{"negative ack timeout", ingest.Config{Topics: good, AckTimeout: -time.Second}, "ack_timeout"},
		{"defaults", ingest.Config{Topics: good}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ingest.New(tt.cfg, &fakeProducer{})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New error = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
	if _, err := ingest.New(ingest.Config{Topics: good}, nil); err == nil {
		t.Error("New accepted a nil producer")
	}
}

func TestStatusEndpoints(t *testing.T) {
	notReady := errors.New("broker unreachable")
	tests := []struct {
		name       string
		path       string
		ready      error
		wantStatus int
		wantCT     string
		wantBody   string
	}{
		{"healthz", "/healthz", nil, 200, "application/json", `{"status":"ok"}`},
		{"healthz while not ready", "/healthz", notReady, 200, "application/json", `{"status":"ok"}`},
		{"readyz", "/readyz", nil, 200, "application/json", `"ready"`},
		{"readyz not ready", "/readyz", notReady, 503, ingest.MediaTypeProblem, "broker unreachable"},
		{"metrics", "/metrics", nil, 200, "text/plain", "sluice_ingest_events_total"},
		{"unknown route", "/nope", nil, 404, ingest.MediaTypeProblem, `"status":404`},
		{"wrong method", "/api/v1/topics", nil, 405, ingest.MediaTypeProblem, `"status":405`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, func(c *ingest.Config) {
				c.Ready = func(ctx context.Context) error {
					if _, ok := ctx.Deadline(); !ok {
						t.Error("Ready called without a deadline")
					}
					return tt.ready
				}
			})
			method := "GET"
			if tt.name == "wrong method" {
				method = "DELETE"
			}
			res := s.do(t, method, tt.path, "", "", nil)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantCT) {
				t.Errorf("Content-Type = %q, want %s", ct, tt.wantCT)
			}
			if !strings.Contains(string(res.body), tt.wantBody) {
				t.Errorf("body %s does not contain %s", res.body, tt.wantBody)
			}
		})
	}
}

func TestTopics(t *testing.T) {
	s := newTestServer(t, nil, nil)
	res := s.do(t, "GET", "/api/v1/topics", "", "", nil)
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	var got ingest.Topics
	if err := json.Unmarshal(res.body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Topics) != 2 {
		t.Fatalf("topics = %+v", got.Topics)
	}
	tp := got.Topics[0]
	if tp.Name != "purchases" || tp.KeyField != "user_id" || tp.Subject != "purchases-value" ||
		tp.SchemaID != s.schemas.purchases.ID {
		t.Errorf("topic = %+v", tp)
	}
	var sch struct {
		Type   string `json:"type"`
		Name   string `json:"name"`
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	if err := json.Unmarshal(tp.Schema, &sch); err != nil {
		t.Fatalf("schema %s: %v", tp.Schema, err)
	}
	if sch.Type != "record" || len(sch.Fields) != len(s.schemas.purchases.Schema.Fields()) {
		t.Errorf("schema = %s", tp.Schema)
	}
}

func TestMetrics(t *testing.T) {
	s := newTestServer(t, nil, nil)
	s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, []any{purchase(nil), purchase(nil)}), nil)
	s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, []any{purchase(nil), purchase(map[string]any{"amount": "x"})}), nil)
	s.do(t, "POST", "/api/v1/events/secret-topic-name", ctJSON, "{}", nil)
	s.do(t, "POST", pathBuy, "text/plain", "{}", nil)

	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"accepted events", "sluice_ingest_events_total", map[string]string{"topic": "purchases", "result": "accepted"}, 2},
		{"rejected events", "sluice_ingest_events_total", map[string]string{"topic": "purchases", "result": "rejected"}, 2},
		{"invalid requests", "sluice_ingest_requests_rejected_total", map[string]string{"topic": "purchases", "reason": "invalid"}, 1},
		{"content type", "sluice_ingest_requests_rejected_total", map[string]string{"topic": "purchases", "reason": "content_type"}, 1},
		{"unknown topic", "sluice_ingest_requests_rejected_total", map[string]string{"topic": "_unknown", "reason": "unknown_topic"}, 1},
		{"unavailable", "sluice_ingest_requests_rejected_total", map[string]string{"topic": "purchases", "reason": "unavailable"}, 0},
		{"202 duration", "sluice_http_request_duration_seconds", map[string]string{"route": "/api/v1/events/:topic", "method": "POST", "status": "202"}, 1},
		{"404 duration", "sluice_http_request_duration_seconds", map[string]string{"route": "/api/v1/events/:topic", "method": "POST", "status": "404"}, 1},
		{"produce duration", "sluice_ingest_produce_duration_seconds", map[string]string{"topic": "purchases"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metricValue(t, s.metrics, tt.metric, tt.labels); got != tt.want {
				t.Errorf("%s%v = %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}
	t.Run("no client-chosen label values", func(t *testing.T) {
		mfs, err := s.metrics.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if strings.Contains(l.GetValue(), "secret") {
						t.Errorf("%s has label %s=%s", mf.GetName(), l.GetName(), l.GetValue())
					}
				}
			}
		}
	})
}

// metricValue returns a counter's value or a histogram's sample count.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m, labels) {
				if h := m.GetHistogram(); h != nil {
					return float64(h.GetSampleCount())
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func matchLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// serve runs s on a loopback listener until the test ends.
func serve(t *testing.T, s *testServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func TestBodyLimit(t *testing.T) {
	big := "[" + strings.Repeat(mustJSON(t, purchase(nil))+",", 20) + mustJSON(t, purchase(nil)) + "]"
	tests := []struct {
		name      string
		body      io.Reader
		chunked   bool
		wantTopic string // label of the rejection
	}{
		{"content length above limit", strings.NewReader(big), false, "purchases"},
		// The body is streamed: the topic is known when a chunked body overflows.
		{"chunked body above limit", io.MultiReader(strings.NewReader(big)), true, "purchases"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, func(c *ingest.Config) { c.MaxBodyBytes = 1024 })
			url := serve(t, s)
			req, err := http.NewRequestWithContext(t.Context(), "POST", url+pathBuy, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", ctJSON)
			if tt.chunked {
				req.ContentLength = -1
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			r := response{status: res.StatusCode, header: res.Header, body: b}
			if r.status != 413 {
				t.Fatalf("status = %d, want 413: %s", r.status, b)
			}
			if p := r.problem(t); p.Type != ingest.ProblemTooLarge {
				t.Errorf("type = %q", p.Type)
			}
			if n := len(s.producer.records()); n != 0 {
				t.Errorf("%d records produced", n)
			}
			if got := metricValue(t, s.metrics, "sluice_ingest_requests_rejected_total",
				map[string]string{"topic": tt.wantTopic, "reason": "too_large"}); got != 1 {
				t.Errorf("too_large rejections = %v, want 1", got)
			}
		})
	}
	t.Run("body at the limit is read", func(t *testing.T) {
		s := newTestServer(t, nil, func(c *ingest.Config) { c.MaxBodyBytes = 1024 })
		url := serve(t, s)
		body := mustJSON(t, purchase(nil))
		res, err := http.Post(url+pathBuy, ctJSON, bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 202 {
			t.Fatalf("status = %d, want 202", res.StatusCode)
		}
	})
}

func TestShutdownWaitsForInFlightRequests(t *testing.T) {
	p := &fakeProducer{hang: make(chan struct{}), entered: make(chan struct{}, 1)}
	s := newTestServer(t, p, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	type result struct {
		status int
		err    error
	}
	answered := make(chan result, 1)
	go func() {
		res, err := http.Post("http://"+ln.Addr().String()+pathBuy, ctJSON, strings.NewReader(mustJSON(t, purchase(nil))))
		if err != nil {
			answered <- result{err: err}
			return
		}
		res.Body.Close()
		answered <- result{status: res.StatusCode}
	}()
	<-p.entered // the request is waiting for Kafka

	shutdown := make(chan error, 1)
	go func() { shutdown <- s.Shutdown(t.Context()) }()
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(p.hang) // Kafka acknowledges
	if r := <-answered; r.err != nil || r.status != 202 {
		t.Fatalf("in-flight request: status %d, err %v; want 202", r.status, r.err)
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepts connections after Shutdown")
	}
}

func TestPanicIsAProblem(t *testing.T) {
	s := newTestServer(t, nil, func(c *ingest.Config) {
		c.Ready = func(context.Context) error { panic("boom") }
	})
	res := s.do(t, "GET", "/readyz", "", "", nil)
	if res.status != 500 {
		t.Fatalf("status = %d, want 500: %s", res.status, res.body)
	}
	res.problem(t)
	if got := metricValue(t, s.metrics, "sluice_http_request_duration_seconds",
		map[string]string{"route": "/readyz", "status": "500"}); got != 1 {
		t.Errorf("500 not observed: %v", got)
	}
	// The server keeps serving.
	if res := s.do(t, "GET", "/healthz", "", "", nil); res.status != 200 {
		t.Errorf("healthz after panic: %d", res.status)
	}
}

func TestProducerPanicIsUnavailable(t *testing.T) {
	s := newTestServer(t, nil, nil)
	s2, err := ingest.New(ingest.Config{Topics: s.schemas.topics(), Now: fixedNow}, panicProducer{})
	if err != nil {
		t.Fatal(err)
	}
	s.Server = s2
	res := s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, purchase(nil)), nil)
	if res.status != 503 {
		t.Fatalf("status = %d, want 503: %s", res.status, res.body)
	}
	res.problem(t)
}

type panicProducer struct{}

func (panicProducer) Produce(context.Context, ...*kgo.Record) error { panic("producer bug") }

func TestRawRequests(t *testing.T) {
	tests := []struct {
		name       string
		raw        string
		wantStatus string
	}{
		{"unknown method", "BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405"},
		{"header too large", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 9000) + "\r\n\r\n", "HTTP/1.1 431"},
		{"malformed request", "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n", "HTTP/1.1 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, nil)
			addr := strings.TrimPrefix(serve(t, s), "http://")
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tt.raw); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if !strings.HasPrefix(res.Proto+" "+res.Status, tt.wantStatus) {
				t.Errorf("status = %s, want %s", res.Status, tt.wantStatus)
			}
			r := response{status: res.StatusCode, header: res.Header, body: b}
			r.problem(t)
		})
	}
}

// A client's X-Request-Id is echoed and written to every record of the request; without
// one (or with an unusable one) the server makes one up.
func TestRequestID(t *testing.T) {
	tests := []struct {
		name, sent string
		keep       bool
	}{
		{"client id kept", "req-42", true},
		{"none", "", false},
		{"spaces replaced", "a b", false},
		{"too long replaced", strings.Repeat("x", 129), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, nil)
			hdr := map[string]string{}
			if tt.sent != "" {
				hdr[ingest.HeaderRequestID] = tt.sent
			}
			res := s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, []map[string]any{purchase(nil), purchase(nil)}), hdr)
			if res.status != 202 {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			got := res.header.Get(ingest.HeaderRequestID)
			if got == "" || (tt.keep && got != tt.sent) || (!tt.keep && got == tt.sent) {
				t.Fatalf("X-Request-Id %q (sent %q)", got, tt.sent)
			}
			for _, r := range s.producer.records() {
				if v, _ := header(r, wire.HeaderRequestID); v != got {
					t.Errorf("record header %s = %q, want %q", wire.HeaderRequestID, v, got)
				}
			}
		})
	}
}

// A client that sends its headers and then trickles the body is cut off after
// ReadTimeout instead of holding a connection (and its buffers) forever.
func TestSlowBodyCutOff(t *testing.T) {
	s := newTestServer(t, nil, func(c *ingest.Config) { c.ReadTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(serve(t, s), "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, _ = fmt.Fprintf(conn, "POST /api/v1/events/purchases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, err := conn.Read(buf) // the server answers 408 or closes
	took := time.Since(start)
	if took > 3*time.Second {
		t.Fatalf("connection held %s after the client stalled", took)
	}
	if n > 0 && !strings.Contains(string(buf[:n]), "408") && !strings.Contains(string(buf[:n]), "400") {
		t.Fatalf("answer to a stalled body: %q (err %v)", buf[:n], err)
	}
	if len(s.producer.records()) != 0 {
		t.Fatal("a stalled request produced records")
	}
}
