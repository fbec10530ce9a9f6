package ingest_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline/ingest"
)

// streamPrefetch is how much of a body the server reads before its handlers run: one
// byte (its HeaderReceived hook caps fasthttp's stream prefetch, 8 KiB by default).
const streamPrefetch = 1

// heapInUse returns the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// rssBytes is the resident set size of the process (0 where /proc is missing).
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

func gaugeValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("gauge %s not found", name)
	return 0
}

// readStatus reads one HTTP response from br and returns its status and headers.
func readStatus(t *testing.T, br *bufio.Reader) (int, http.Header) {
	t.Helper()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, res.Header
}

// The slow-body attack of issue 15: many connections declare a 10 MiB body without a
// token and send only the first byte of it. Before bodies were streamed, fasthttp
// allocated each declared body before auth ran (64 connections: 640 MiB) and answered
// nothing until the read timeout; with streaming but fasthttp's 8 KiB prefetch, nothing
// was answered until 8 KiB had arrived. Now each is answered 401 (or 429 once the per-IP
// rate limit is spent) as soon as its first body byte arrives, and the heap stays small.
func TestSlowBodyAttackAnsweredFromHeaders(t *testing.T) {
	const (
		conns    = 64
		declared = 10 << 20
		budget   = 32 << 20 // heap growth allowed; without streaming it is conns x 10 MiB
	)
	s := newTestServer(t, nil, func(c *ingest.Config) {
		withHS256(c)
		c.RateLimit = ingest.RateLimitConfig{Max: 10}
	})
	addr := strings.TrimPrefix(serve(t, s), "http://")
	heapBefore, rssBefore := heapInUse(), rssBytes()
	deadline := time.Now().Add(20 * time.Second)
	prefix := bytes.Repeat([]byte(" "), streamPrefetch) // JSON whitespace: the start of a valid body

	clients := make([]net.Conn, 0, conns)
	t.Cleanup(func() {
		for _, c := range clients {
			_ = c.Close()
		}
	})
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		_ = c.SetDeadline(deadline)
		if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
			pathBuy, ctJSON, declared); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(prefix); err != nil {
			t.Fatal(err)
		}
	}
	counts := map[int]int{}
	for _, c := range clients {
		status, _ := readStatus(t, bufio.NewReader(c)) // the body is still unsent
		counts[status]++
	}
	heapAfter, rssAfter := heapInUse(), rssBytes()
	growth := int64(heapAfter) - int64(heapBefore)
	t.Logf("%d connections declaring %d bytes: answers %v; heap in use %d -> %d MiB, RSS %d -> %d MiB",
		conns, declared, counts, heapBefore>>20, heapAfter>>20, rssBefore>>20, rssAfter>>20)
	if counts[401]+counts[429] != conns || counts[401] == 0 {
		t.Errorf("answers %v, want only 401 and 429", counts)
	}
	if growth > budget {
		t.Errorf("heap grew %d MiB during the attack, budget %d MiB", growth>>20, budget>>20)
	}
	if n := len(s.producer.records()); n != 0 {
		t.Errorf("%d records produced", n)
	}
}

// Concurrent valid batches beyond MaxInflightBytes: the ones that fit are read and
// accepted, the others are refused at once with 503 and Retry-After before their body is
// read, and the heap holds only what the budget admits. Before the budget every batch
// was read and held at once (40 concurrent 9.85 MB batches: 2.97 GB RSS).
func TestInflightBytesBound(t *testing.T) {
	const (
		batches  = 24
		maxBody  = 1 << 20
		inflight = 4 << 20
	)
	ev := mustJSON(t, purchase(nil))
	n := (maxBody - 2) / (len(ev) + 1)
	body := []byte("[" + strings.Repeat(ev+",", n-1) + ev + "]")
	admitted := inflight / len(body)
	p := &fakeProducer{hang: make(chan struct{}), entered: make(chan struct{}, batches)}
	s := newTestServer(t, p, func(c *ingest.Config) {
		c.MaxBodyBytes = maxBody
		c.MaxInflightBytes = inflight
	})
	url := serve(t, s)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	heapBefore := heapInUse()

	type result struct {
		status     int
		retryAfter string
		problem    string
		err        error
	}
	results := make(chan result, batches)
	var wg sync.WaitGroup
	for range batches {
		wg.Go(func() {
			res, err := client.Post(url+pathBuy, ctJSON, bytes.NewReader(body))
			if err != nil {
				results <- result{err: err}
				return
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			results <- result{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"), problem: string(b)}
		})
	}
	// Every batch past the budget is refused while the admitted ones wait for Kafka.
	for range batches - admitted {
		r := <-results
		switch {
		case r.err != nil:
			t.Fatalf("post: %v", r.err)
		case r.status != 503 || r.retryAfter == "" || !strings.Contains(r.problem, ingest.ProblemOverloaded):
			t.Fatalf("refused batch: status %d, Retry-After %q: %.300s", r.status, r.retryAfter, r.problem)
		}
	}
	for range admitted {
		select {
		case <-p.entered:
		case <-time.After(20 * time.Second):
			t.Fatal("an admitted batch did not reach the producer")
		}
	}
	heapHeld := heapInUse()
	if got := gaugeValue(t, s.metrics, "sluice_ingest_inflight_bytes"); got != float64(admitted*len(body)) {
		t.Errorf("sluice_ingest_inflight_bytes = %v, want %d", got, admitted*len(body))
	}
	close(p.hang)
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || r.status != 202 {
			t.Errorf("admitted batch: status %d, err %v: %.200s", r.status, r.err, r.problem)
		}
	}
	growth := int64(heapHeld) - int64(heapBefore)
	t.Logf("%d batches of %d bytes, budget %d: %d admitted; heap in use %d -> %d MiB while they waited",
		batches, len(body), inflight, admitted, heapBefore>>20, heapHeld>>20)
	if limit := int64(16 * inflight); growth > limit {
		t.Errorf("heap grew %d MiB with %d batches admitted, want < %d MiB", growth>>20, admitted, limit>>20)
	}
	if got := metricValue(t, s.metrics, "sluice_ingest_requests_rejected_total",
		map[string]string{"topic": "purchases", "reason": "inflight_bytes"}); got != float64(batches-admitted) {
		t.Errorf("inflight_bytes rejections = %v, want %d", got, batches-admitted)
	}
	if got := gaugeValue(t, s.metrics, "sluice_ingest_inflight_bytes"); got != 0 {
		t.Errorf("sluice_ingest_inflight_bytes = %v after the requests, want 0", got)
	}
}

// A request is refused from its headers, before its body is read: Content-Type (415),
// a declared length above the limit (413); the connection closes after the answer,
// since the body is still on the wire.
func TestRefusedFromHeaders(t *testing.T) {
	tests := []struct {
		name, contentType string
		declared          int
		wantStatus        int
	}{
		{"unsupported content type", "text/plain", 1 << 20, 415},
		{"declared length above the limit", ctJSON, 2 << 20, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, func(c *ingest.Config) { c.MaxBodyBytes = 1 << 20 })
			addr := strings.TrimPrefix(serve(t, s), "http://")
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
				pathBuy, tt.contentType, tt.declared, bytes.Repeat([]byte(" "), streamPrefetch))
			br := bufio.NewReader(c)
			status, h := readStatus(t, br)
			if status != tt.wantStatus || h.Get("Content-Type") != ingest.MediaTypeProblem {
				t.Fatalf("status %d (%s), want %d problem+json", status, h.Get("Content-Type"), tt.wantStatus)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("connection still open after the answer (read: %v)", err)
			}
		})
	}
}

// Serve caps the open connections: past MaxConnections a new one is answered 503 with
// Retry-After and closed; past MaxConnectionsPerIP, 429. A closed connection frees its
// place.
func TestConnectionCap(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(*ingest.Config)
		wantStatus int
		reason     string
	}{
		{"global", func(c *ingest.Config) { c.MaxConnections = 3 }, 503, "max_connections"},
		{"per address", func(c *ingest.Config) { c.MaxConnectionsPerIP = 3 }, 429, "max_connections_per_ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, tt.edit)
			addr := strings.TrimPrefix(serve(t, s), "http://")
			deadline := time.Now().Add(10 * time.Second)
			tryGet := func(c net.Conn) (int, error) {
				_ = c.SetDeadline(deadline)
				_, _ = fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					return 0, err
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				return res.StatusCode, nil
			}
			var open []net.Conn
			t.Cleanup(func() {
				for _, c := range open {
					_ = c.Close()
				}
			})
			for range 3 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				open = append(open, c)
				if st, err := tryGet(c); st != 200 {
					t.Fatalf("connection within the cap: status %d, err %v", st, err)
				}
			}
			if got := gaugeValue(t, s.metrics, "sluice_http_connections"); got != 3 {
				t.Errorf("sluice_http_connections = %v, want 3", got)
			}
			extra, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = extra.SetDeadline(deadline)
			res, err := http.ReadResponse(bufio.NewReader(extra), nil)
			if err != nil {
				t.Fatalf("connection past the cap: %v", err)
			}
			b, _ := io.ReadAll(res.Body)
			_ = extra.Close()
			if res.StatusCode != tt.wantStatus || res.Header.Get("Retry-After") == "" ||
				res.Header.Get("Content-Type") != ingest.MediaTypeProblem {
				t.Fatalf("connection past the cap: status %d, headers %v: %s", res.StatusCode, res.Header, b)
			}
			if got := metricValue(t, s.metrics, "sluice_http_connections_rejected_total",
				map[string]string{"reason": tt.reason}); got != 1 {
				t.Errorf("rejected connections (%s) = %v, want 1", tt.reason, got)
			}
			// Closing one frees a place (the server notices the close asynchronously).
			_ = open[0].Close()
			open = open[1:]
			for {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				st, err := tryGet(c)
				if st == 200 {
					open = append(open, c)
					break
				}
				_ = c.Close()
				if time.Now().After(deadline) {
					t.Fatalf("no place freed after a close: status %d, err %v", st, err)
				}
				time.Sleep(20 * time.Millisecond) // polling the server's view of a closed socket
			}
		})
	}
}

// A compressed or chunked body reserves the most it could take (the body limit for the
// decompressed copy, or for an unknown length) only until it is read: the request then
// holds its real size while it waits for Kafka, so two such requests fit in a budget of
// two body limits.
func TestReservationShrinksToBodySize(t *testing.T) {
	const maxBody = 64 << 10
	ev := []byte(mustJSON(t, []map[string]any{purchase(nil), purchase(nil)}))
	tests := []struct {
		name     string
		body     []byte
		encoding string
		chunked  bool
	}{
		{"gzip", gzipped(t, ev), "gzip", false},
		{"chunked", ev, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakeProducer{hang: make(chan struct{}), entered: make(chan struct{}, 2)}
			s := newTestServer(t, p, func(c *ingest.Config) {
				c.MaxBodyBytes = maxBody
				c.MaxInflightBytes = 2 * maxBody
			})
			url := serve(t, s)
			statuses := make(chan int, 2)
			post := func() {
				req, err := http.NewRequestWithContext(t.Context(), "POST", url+pathBuy, bytes.NewReader(tt.body))
				if err != nil {
					t.Error(err)
					statuses <- 0
					return
				}
				req.Header.Set("Content-Type", ctJSON)
				if tt.encoding != "" {
					req.Header.Set("Content-Encoding", tt.encoding)
				}
				if tt.chunked {
					req.ContentLength = -1
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					statuses <- 0
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				statuses <- res.StatusCode
			}
			for range 2 {
				go post()
				select {
				case <-p.entered: // admitted and waiting for Kafka, holding its body
				case st := <-statuses:
					t.Fatalf("status %d while another request waits for Kafka, want it admitted", st)
				case <-time.After(10 * time.Second):
					t.Fatal("request not admitted")
				}
			}
			if got := gaugeValue(t, s.metrics, "sluice_ingest_inflight_bytes"); got != float64(2*len(ev)) {
				t.Errorf("sluice_ingest_inflight_bytes = %v, want %d (two decoded bodies)", got, 2*len(ev))
			}
			close(p.hang)
			for range 2 {
				if st := <-statuses; st != 202 {
					t.Errorf("status %d, want 202", st)
				}
			}
		})
	}
}
