package ingest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/pipeline/ingest"
)

// app.Test connections come from 0.0.0.0; trusting that "proxy" lets each test pick the
// client address with X-Forwarded-For.
const testProxy = "0.0.0.0"

// from sets the client address a request is forwarded for.
func from(ip string, extra map[string]string) map[string]string {
	h := map[string]string{"X-Forwarded-For": ip}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

// checkLimitHeaders checks the RateLimit-* headers of res.
func checkLimitHeaders(t *testing.T, res response, limit, remaining int, window time.Duration) {
	t.Helper()
	if got := res.header.Get(ingest.HeaderRateLimitLimit); got != strconv.Itoa(limit) {
		t.Errorf("%s = %q, want %d", ingest.HeaderRateLimitLimit, got, limit)
	}
	if got := res.header.Get(ingest.HeaderRateLimitRemaining); got != strconv.Itoa(remaining) {
		t.Errorf("%s = %q, want %d", ingest.HeaderRateLimitRemaining, got, remaining)
	}
	reset, err := strconv.Atoi(res.header.Get(ingest.HeaderRateLimitReset))
	if err != nil || reset < 1 || reset > int(window/time.Second) {
		t.Errorf("%s = %q, want 1..%d", ingest.HeaderRateLimitReset, res.header.Get(ingest.HeaderRateLimitReset), int(window/time.Second))
	}
	for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if res.header.Get(h) != "" {
			t.Errorf("legacy header %s sent", h)
		}
	}
}

// checkLimited checks a 429 answer.
func checkLimited(t *testing.T, res response, limit int, window time.Duration) {
	t.Helper()
	if res.status != 429 {
		t.Fatalf("status = %d, want 429: %s", res.status, res.body)
	}
	if p := res.problem(t); p.Type != ingest.ProblemRateLimited {
		t.Errorf("problem type = %s", p.Type)
	}
	retry := res.header.Get("Retry-After")
	if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > int(window/time.Second) {
		t.Errorf("Retry-After = %q, want 1..%d", retry, int(window/time.Second))
	}
	if got := res.header.Get(ingest.HeaderRateLimitReset); got != retry {
		t.Errorf("%s = %q, want Retry-After %q", ingest.HeaderRateLimitReset, got, retry)
	}
	checkLimitHeaders(t, res, limit, 0, window)
}

func TestRateLimitPerIP(t *testing.T) {
	const window = time.Minute
	s := newTestServer(t, nil, func(c *ingest.Config) {
		c.RateLimit = ingest.RateLimitConfig{Max: 2, Window: window, TrustedProxies: []string{testProxy}}
	})
	post := func(ip string) response {
		return s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, purchase(nil)), from(ip, nil))
	}
	res := post("203.0.113.7")
	if res.status != 202 {
		t.Fatalf("first request: %d %s", res.status, res.body)
	}
	checkLimitHeaders(t, res, 2, 1, window)
	res = post("203.0.113.7")
	if res.status != 202 {
		t.Fatalf("second request: %d %s", res.status, res.body)
	}
	checkLimitHeaders(t, res, 2, 0, window)
	checkLimited(t, post("203.0.113.7"), 2, window)
	checkLimited(t, s.do(t, "GET", "/api/v1/topics", "", "", from("203.0.113.7", nil)), 2, window)

	if res := post("203.0.113.8"); res.status != 202 {
		t.Errorf("another client: status %d %s", res.status, res.body)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		for range 3 {
			res := s.do(t, "GET", path, "", "", from("203.0.113.7", nil))
			if res.status != 200 || res.header.Get(ingest.HeaderRateLimitLimit) != "" {
				t.Fatalf("GET %s by a limited client: %d, %s %q", path, res.status,
					ingest.HeaderRateLimitLimit, res.header.Get(ingest.HeaderRateLimitLimit))
			}
		}
	}
	if n := len(s.producer.records()); n != 3 {
		t.Errorf("%d records produced, want 3", n)
	}
}

func TestRateLimitClientIP(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		first   string // X-Forwarded-For of the first request
		second  string // and of the second
		// shared: the two requests count against the same client.
		shared bool
	}{
		{"same client", []string{testProxy}, "203.0.113.7", "203.0.113.7", true},
		{"two clients", []string{testProxy}, "203.0.113.7", "203.0.113.8", false},
		{"untrusted peer: header ignored", nil, "203.0.113.7", "203.0.113.8", true},
		{"spoofed left part ignored", []string{testProxy}, "198.51.100.1, 203.0.113.7", "198.51.100.2, 203.0.113.7", true},
		{"chain of trusted proxies", []string{testProxy, "10.0.0.0/8"}, "203.0.113.7, 10.1.2.3", "203.0.113.8, 10.1.2.3", false},
		{"chain through one trusted proxy", []string{testProxy, "10.0.0.0/8"}, "198.51.100.1, 203.0.113.7, 10.1.2.3", "198.51.100.2, 203.0.113.7, 10.9.9.9", true},
		{"untrusted hop in between", []string{testProxy}, "203.0.113.7, 10.1.2.3", "203.0.113.8, 10.1.2.3", true},
		{"garbage counts as the proxy", []string{testProxy}, "garbage", "also garbage", true},
		{"IPv6 per /64", []string{testProxy}, "2001:db8::1", "2001:db8::2", true},
		{"IPv6 other /64", []string{testProxy}, "2001:db8::1", "2001:db8:0:1::1", false},
		{"IPv4-mapped IPv6", []string{testProxy}, "::ffff:203.0.113.7", "203.0.113.7", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, func(c *ingest.Config) {
				c.RateLimit = ingest.RateLimitConfig{Max: 1, TrustedProxies: tt.trusted}
			})
			if res := s.do(t, "GET", "/api/v1/topics", "", "", from(tt.first, nil)); res.status != 200 {
				t.Fatalf("first request: %d %s", res.status, res.body)
			}
			res := s.do(t, "GET", "/api/v1/topics", "", "", from(tt.second, nil))
			if got := res.status == 429; got != tt.shared {
				t.Errorf("second request status %d; shared = %v, want %v", res.status, got, tt.shared)
			}
		})
	}
}

func TestRateLimitPerPrincipal(t *testing.T) {
	const window = time.Minute
	s := newTestServer(t, nil, func(c *ingest.Config) {
		withHS256(c)
		c.RateLimit = ingest.RateLimitConfig{Max: 2, MaxPerIP: 100, Window: window, TrustedProxies: []string{testProxy}}
	})
	alice := bearer(hsToken(t, map[string]any{"sub": "alice"}))
	bob := bearer(hsToken(t, map[string]any{"sub": "bob"}))
	post := func(ip string, h map[string]string) response {
		return s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, purchase(nil)), from(ip, h))
	}
	res := post("203.0.113.7", alice)
	if res.status != 202 {
		t.Fatalf("alice 1: %d %s", res.status, res.body)
	}
	checkLimitHeaders(t, res, 2, 1, window) // the tighter of the two limits
	if res := post("198.51.100.9", alice); res.status != 202 {
		t.Fatalf("alice 2 from elsewhere: %d %s", res.status, res.body)
	}
	checkLimited(t, post("192.0.2.1", alice), 2, window)
	res = post("203.0.113.7", bob)
	if res.status != 202 {
		t.Fatalf("bob from alice's address: %d %s", res.status, res.body)
	}
	checkLimitHeaders(t, res, 2, 1, window)
}

func TestRateLimitBeforeAuth(t *testing.T) {
	// A flood of bad tokens is refused by the per-IP limit without verifying them.
	const window = time.Minute
	s := newTestServer(t, nil, func(c *ingest.Config) {
		withHS256(c)
		c.RateLimit = ingest.RateLimitConfig{Max: 100, MaxPerIP: 2, Window: window, TrustedProxies: []string{testProxy}}
	})
	bad := bearer("bad.token.here")
	for i, want := range []int{401, 401, 429} {
		res := s.do(t, "POST", pathBuy, ctJSON, "{}", from("203.0.113.7", bad))
		if res.status != want {
			t.Fatalf("request %d: status %d, want %d: %s", i, res.status, want, res.body)
		}
		if want == 401 {
			checkLimitHeaders(t, res, 2, 1-i, window)
		}
	}
	res := s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, purchase(nil)), from("203.0.113.8", bearer(hsToken(t, nil))))
	if res.status != 202 {
		t.Errorf("good client: %d %s", res.status, res.body)
	}
}

// countingStorage is a fiber.Storage in a map that remembers the keys it saw.
type countingStorage struct {
	mu   sync.Mutex
	data map[string][]byte
	keys map[string]bool
}

func (s *countingStorage) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = true
	return s.data[key], nil
}

func (s *countingStorage) Set(key string, val []byte, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = append([]byte(nil), val...)
	return nil
}

func (s *countingStorage) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.data, key)
	return nil
}

func (s *countingStorage) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = map[string][]byte{}
	return nil
}

func (s *countingStorage) Close() error { return nil }

func TestRateLimitStorage(t *testing.T) {
	store := &countingStorage{data: map[string][]byte{}, keys: map[string]bool{}}
	// Two servers on one store share the limit, as instances sharing Redis would.
	cfg := func(c *ingest.Config) {
		withHS256(c)
		c.RateLimit = ingest.RateLimitConfig{Max: 1, MaxPerIP: 5, Storage: store, TrustedProxies: []string{testProxy}}
	}
	a, b := newTestServer(t, nil, cfg), newTestServer(t, nil, cfg)
	tok := bearer(hsToken(t, map[string]any{"sub": "alice"}))
	if res := a.do(t, "POST", pathBuy, ctJSON, mustJSON(t, purchase(nil)), from("203.0.113.7", tok)); res.status != 202 {
		t.Fatalf("on a: %d %s", res.status, res.body)
	}
	if res := b.do(t, "POST", pathBuy, ctJSON, mustJSON(t, purchase(nil)), from("203.0.113.7", tok)); res.status != 429 {
		t.Fatalf("on b: %d, want 429 (the limit is shared): %s", res.status, res.body)
	}
	for _, want := range []string{"sluice:ratelimit:ip:203.0.113.7", "sluice:ratelimit:sub:alice"} {
		if !store.keys[want] {
			t.Errorf("store never saw key %q; saw %v", want, store.keys)
		}
	}
}

func TestRateLimitConfigValidation(t *testing.T) {
	schemas := newTestSchemas(t)
	tests := []struct {
		name    string
		rl      ingest.RateLimitConfig
		wantErr string
	}{
		{"zero is off", ingest.RateLimitConfig{}, ""},
		{"per IP only", ingest.RateLimitConfig{MaxPerIP: 10}, ""},
		{"proxies", ingest.RateLimitConfig{Max: 10, TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"}}, ""},
		{"negative max", ingest.RateLimitConfig{Max: -1}, "max"},
		{"negative max per IP", ingest.RateLimitConfig{MaxPerIP: -1}, "max_per_ip"},
		{"negative window", ingest.RateLimitConfig{Max: 1, Window: -time.Second}, "window"},
		{"sub-second window", ingest.RateLimitConfig{Max: 1, Window: 500 * time.Millisecond}, "window"},
		{"bad proxy", ingest.RateLimitConfig{Max: 1, TrustedProxies: []string{"proxy.internal"}}, "trusted_proxies"},
		{"bad prefix", ingest.RateLimitConfig{Max: 1, TrustedProxies: []string{"10.0.0.0/99"}}, "trusted_proxies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ingest.New(ingest.Config{Topics: schemas.topics(), RateLimit: tt.rl}, &fakeProducer{})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), "rate_limit: "+tt.wantErr)):
				t.Fatalf("New error = %v, want one naming rate_limit: %s", err, tt.wantErr)
			}
		})
	}
}

// fakeRedis is a RESP2 server with just the commands the limiter's store uses (PING,
// GET, SET, DEL, FLUSHDB); everything else, HELLO included, is an unknown command, so
// clients fall back to RESP2.
type fakeRedis struct {
	addr string
	mu   sync.Mutex
	data map[string]string
	sets []string // keys written, in order
}

func newFakeRedis(t *testing.T) *fakeRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{addr: ln.Addr().String(), data: map[string]string{}}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				f.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return f
}

func (f *fakeRedis) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		args, err := readRESP(r)
		if err != nil {
			return
		}
		f.mu.Lock()
		var reply string
		switch strings.ToUpper(args[0]) {
		case "PING":
			reply = "+PONG\r\n"
		case "GET":
			if v, ok := f.data[args[1]]; ok {
				reply = fmt.Sprintf("$%d\r\n%s\r\n", len(v), v)
			} else {
				reply = "$-1\r\n"
			}
		case "SET":
			f.data[args[1]] = args[2]
			f.sets = append(f.sets, args[1])
			reply = "+OK\r\n"
		case "DEL":
			delete(f.data, args[1])
			reply = ":1\r\n"
		case "FLUSHDB":
			clear(f.data)
			reply = "+OK\r\n"
		default:
			reply = "-ERR unknown command '" + args[0] + "'\r\n"
		}
		f.mu.Unlock()
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
	}
}

// readRESP reads one command: an array of bulk strings.
func readRESP(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil || n < 1 || !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("bad command header %q", line)
	}
	args := make([]string, n)
	for i := range args {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil || size < 0 {
			return nil, fmt.Errorf("bad bulk header %q", line)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

func (f *fakeRedis) keysSet() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sets...)
}

func TestRateLimitRedis(t *testing.T) {
	redis := newFakeRedis(t)
	store, err := ingest.NewRedisStorage(t.Context(), "redis://"+redis.addr+"/0")
	if err != nil {
		t.Fatalf("NewRedisStorage: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	cfg := func(c *ingest.Config) {
		c.RateLimit = ingest.RateLimitConfig{Max: 1, Storage: store, TrustedProxies: []string{testProxy}}
	}
	a, b := newTestServer(t, nil, cfg), newTestServer(t, nil, cfg)
	if res := a.do(t, "GET", "/api/v1/topics", "", "", from("203.0.113.7", nil)); res.status != 200 {
		t.Fatalf("on a: %d %s", res.status, res.body)
	}
	checkLimited(t, b.do(t, "GET", "/api/v1/topics", "", "", from("203.0.113.7", nil)), 1, time.Minute)
	if res := b.do(t, "GET", "/api/v1/topics", "", "", from("203.0.113.8", nil)); res.status != 200 {
		t.Fatalf("other client on b: %d %s", res.status, res.body)
	}
	want := []string{"sluice:ratelimit:ip:203.0.113.7", "sluice:ratelimit:ip:203.0.113.7", "sluice:ratelimit:ip:203.0.113.8"}
	if got := redis.keysSet(); !slices.Equal(got, want) {
		t.Errorf("keys written = %q, want %q", got, want)
	}
}

func TestNewRedisStorageErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{"not a redis URL", "http://127.0.0.1:6379", "invalid URL"},
		{"bad port keeps the password secret", "redis://u:s3cret@127.0.0.1:notaport", "invalid URL"},
		{"nobody listening", "redis://" + closed, closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond) // go-redis retries dialing
			defer cancel()
			st, err := ingest.NewRedisStorage(ctx, tt.url)
			if err == nil {
				_ = st.Close()
				t.Fatal("NewRedisStorage succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error = %v, want one containing %q and no password", err, tt.wantErr)
			}
		})
	}
}

// BenchmarkRateLimitedRequest measures GET /api/v1/topics through the per-IP limit
// (never reached), in memory: the cost the limiter adds to every API request.
func BenchmarkRateLimitedRequest(b *testing.B) {
	for _, bc := range []struct {
		name string
		rl   ingest.RateLimitConfig
	}{
		{"off", ingest.RateLimitConfig{}},
		{"per_ip", ingest.RateLimitConfig{MaxPerIP: 1 << 30, Window: time.Hour}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newTestServer(b, &fakeProducer{discard: true}, func(c *ingest.Config) { c.RateLimit = bc.rl })
			h := s.App().Handler()
			req := &fasthttp.Request{}
			req.Header.SetMethod("GET")
			req.SetRequestURI("/api/v1/topics")
			var ctx fasthttp.RequestCtx
			b.ReportAllocs()
			for b.Loop() {
				ctx.Init(req, nil, nil)
				h(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
