package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/console"
	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/service"
)

// testSecret signs the test tokens (HS256, the ingest API's and the console's).
const testSecret = "console-test-secret-0123456789abcdef"

// poisonMarker makes the test transform refuse a purchase until fixed is set.
const poisonMarker = "<script>"

// platform is `sluice dev` running in the test process on kfake, with a console.
type platform struct {
	p          *config.Pipeline
	kc         kafka.Config
	api        string // http://host:port of the ingest API
	console    string // http://host:port of the console
	registry   string
	fixed      *atomic.Bool // the transform accepts poison records once set
	con        *console.Console
	consoleOpt console.Options
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPlatform runs the built-in pipeline (service.Dev: embedded kfake broker and
// registry, ingest with JWT auth, processor, sink) and a loopback console on it.
func startPlatform(t *testing.T) *platform {
	t.Helper()
	var svc config.Service
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	svc.BindFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	svc.HTTPAddr = "127.0.0.1:0"
	svc.Sink.QueryAddr = ""
	svc.API.JWTHS256Secret = testSecret
	svc.IdleAdvance = 2 * time.Second
	p := config.Default()
	fixed := &atomic.Bool{}
	ctx, cancel := context.WithCancel(context.Background())
	type addrs struct {
		brokers       []string
		registry, api string
	}
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- service.Dev(ctx, service.DevOptions{
			Service: svc, Pipeline: p, KafkaPort: freePort(t), RegistryAddr: "127.0.0.1:0",
			Transforms: map[string]process.Transform{"purchases": process.TransformFunc("catalog",
				func(_ context.Context, _ string, ev map[string]any) error {
					pid, _ := ev["product_id"].(string)
					if strings.Contains(pid, poisonMarker) && !fixed.Load() {
						return dlq.AsPermanent(fmt.Errorf("unknown product %q", pid))
					}
					return nil
				})},
			Ready: func(b []string, reg, http string) { ready <- addrs{b, reg, http} },
		})
	}()
	var a addrs
	select {
	case a = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("sluice dev did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("sluice dev did not start within 60s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Logf("sluice dev ended: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("sluice dev did not drain within 30s")
		}
	})
	pl := &platform{p: p, kc: kafka.Config{Brokers: a.brokers}, api: "http://" + a.api, registry: a.registry, fixed: fixed}
	src, err := sr.NewClient(sr.URLs(a.registry))
	if err != nil {
		t.Fatal(err)
	}
	pl.consoleOpt = console.Options{Pipeline: p, Kafka: pl.kc, Registry: schema.NewRegistry(src),
		Groups: service.Groups(p), MetricsURLs: []string{pl.api + "/metrics"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	pl.con, pl.console = serveConsole(t, pl.consoleOpt)
	return pl
}

// serveConsole serves a console with o on a free loopback port until the test ends.
func serveConsole(t *testing.T, o console.Options) (*console.Console, string) {
	t.Helper()
	c, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		c.Close()
	})
	return c, "http://" + ln.Addr().String()
}

// token signs an HS256 JWT with scopes, valid for an hour.
func token(t *testing.T, scopes ...string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "console-test", "scope": strings.Join(scopes, " "), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// purchase is a valid purchases event.
func purchase(id, user, country, product string, at time.Time, amount float64) map[string]any {
	return map[string]any{"event_id": id, "event_time": at.UTC().Format(time.RFC3339Nano), "user_id": user,
		"session_id": "s-" + user, "country": country, "device": "desktop", "order_id": "o-" + id,
		"amount": amount, "currency": "EUR", "items": 1, "product_id": product}
}

// post sends events to the ingest API and fails unless they are accepted.
func (pl *platform) post(t *testing.T, topic string, evs ...map[string]any) {
	t.Helper()
	body, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, pl.api+"/api/v1/events/"+topic, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token(t, "events:write"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s", topic, resp.StatusCode, b)
	}
}

// records reads topic to its end (read_committed).
func (pl *platform) records(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	if err := kafka.ReadCommitted(ctx, pl.kc, topic, nil, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatalf("read %s: %v", topic, err)
	}
	return out
}

// eventIDs counts the event ids of topic's records (the decoded values).
func (pl *platform) eventIDs(t *testing.T, topic string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, r := range pl.records(t, topic) {
		v, _, err := pl.consoleOpt.Registry.Decode(context.Background(), r.Value)
		if err != nil {
			continue
		}
		if id, ok := v["event_id"].(string); ok {
			ids[id]++
		}
	}
	return ids
}

// eventually polls cond every 100 ms until it holds or within passes.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		<-tick.C
	}
}

// headerValue is r's last header named key.
func headerValue(r *kgo.Record, key string) string {
	v := ""
	for _, h := range r.Headers {
		if h.Key == key {
			v = string(h.Value)
		}
	}
	return v
}

// chromium returns the path of a Chromium or Chrome binary, or "".
func chromium() string {
	if p := os.Getenv("SLUICE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// cleanLag is the clean stage's uncommitted records on purchases, summed over
// partitions, or -1 when it cannot be read.
func (pl *platform) cleanLag(t *testing.T) int64 {
	t.Helper()
	cl, err := kgo.NewClient(pl.kc.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lags, err := kadm.NewClient(cl).Lag(ctx, "sluice.clean")
	if err != nil {
		return -1
	}
	var sum int64
	for _, l := range lags["sluice.clean"].Lag["purchases"] {
		if l.Err != nil {
			return -1
		}
		sum += l.Lag
	}
	return sum
}
