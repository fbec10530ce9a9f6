package gen_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pipeline/gen"
)

// ingestStub answers like the ingest API would, checking the request shape.
func ingestStub(t *testing.T, status int, body string, header http.Header, requests *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/api/v1/events/") {
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var events []map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &events); err != nil {
			t.Errorf("body is not a JSON array of objects: %v: %.200s", err, b)
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("stub listens on %s, want 127.0.0.1", srv.URL)
	}
	return srv
}

func TestHTTPTargetSend(t *testing.T) {
	long := strings.Repeat("é", 2000) // 4000 bytes, cut inside a rune at 512
	tests := []struct {
		name       string
		status     int
		body       string
		header     http.Header
		wantStatus int // 0: success
		wantInErr  []string
		maxBody    int
	}{
		{"accepted", 202, `{"accepted":3,"event_ids":["a","b","c"]}`, nil, 0, nil, 0},
		{"ok", 200, ``, nil, 0, nil, 0},
		{"unavailable", 503, `{"title":"kafka unavailable"}`, http.Header{"Retry-After": {"2"}}, 503,
			[]string{"503 Service Unavailable", "kafka unavailable", "/api/v1/events/clicks"}, 0},
		{"invalid", 400, "{\"title\":\"invalid event\",\"errors\":[{\"field\":\"user_id\"}]}\n", nil, 400,
			[]string{"400 Bad Request", `"field":"user_id"`}, 0},
		{"long body is cut", 413, long, nil, 413, []string{"413", "..."}, 512 + 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var requests atomic.Int32
			srv := ingestStub(t, tc.status, tc.body, tc.header, &requests)
			target := &gen.HTTPTarget{BaseURL: srv.URL + "/", Client: srv.Client()}
			events := take(mustNew(t, gen.Clicks, gen.Options{Seed: 1, Now: fixed(t0)}), 3)
			err := target.Send(t.Context(), gen.Clicks, events)
			if requests.Load() != 1 {
				t.Fatalf("%d requests, want 1", requests.Load())
			}
			if tc.wantStatus == 0 {
				if err != nil {
					t.Fatalf("Send() = %v", err)
				}
				return
			}
			var se *gen.StatusError
			if !errors.As(err, &se) || se.StatusCode != tc.wantStatus {
				t.Fatalf("Send() = %v, want a StatusError %d", err, tc.wantStatus)
			}
			for _, s := range tc.wantInErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if se.RetryAfter != tc.header.Get("Retry-After") {
				t.Errorf("RetryAfter %q, want %q", se.RetryAfter, tc.header.Get("Retry-After"))
			}
			if tc.maxBody > 0 && len(se.Body) > tc.maxBody {
				t.Errorf("body head is %d bytes, want <= %d", len(se.Body), tc.maxBody)
			}
			if !strings.HasSuffix(se.Body, "...") && tc.maxBody > 0 {
				t.Errorf("cut body %q does not end in ...", se.Body[len(se.Body)-10:])
			}
		})
	}
}

func TestHTTPTargetRoundTrip(t *testing.T) {
	var got []map[string]any
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.EscapedPath()
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &got); err != nil {
			t.Error(err)
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	events := take(mustNew(t, gen.Purchases, gen.Options{Seed: 2, Now: fixed(t0)}), 5)
	if err := (&gen.HTTPTarget{BaseURL: srv.URL}).Send(t.Context(), "my topic", events); err != nil {
		t.Fatal(err)
	}
	if path != "/api/v1/events/my%20topic" {
		t.Errorf("path %q, want the topic escaped", path)
	}
	if len(got) != 5 || got[0]["event_id"] != events[0]["event_id"] || got[4]["amount"] != events[4]["amount"] {
		t.Fatalf("server got %v, want %v", got, events)
	}
}

func TestHTTPTargetFailures(t *testing.T) {
	t.Run("empty batch sends nothing", func(t *testing.T) {
		var requests atomic.Int32
		srv := ingestStub(t, 202, "", nil, &requests)
		if err := (&gen.HTTPTarget{BaseURL: srv.URL}).Send(t.Context(), gen.Clicks, nil); err != nil {
			t.Fatal(err)
		}
		if requests.Load() != 0 {
			t.Fatalf("%d requests for an empty batch", requests.Load())
		}
	})
	t.Run("server down", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		err := (&gen.HTTPTarget{BaseURL: srv.URL}).Send(t.Context(), gen.Clicks, []map[string]any{{"a": 1}})
		if err == nil || !strings.Contains(err.Error(), "POST") {
			t.Fatalf("Send() = %v, want a POST error", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		var requests atomic.Int32
		srv := ingestStub(t, 202, "", nil, &requests)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := (&gen.HTTPTarget{BaseURL: srv.URL}).Send(ctx, gen.Clicks, []map[string]any{{"a": 1}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Send() = %v, want context.Canceled", err)
		}
	})
	t.Run("unencodable event", func(t *testing.T) {
		err := (&gen.HTTPTarget{BaseURL: "http://127.0.0.1:1"}).Send(t.Context(), gen.Clicks,
			[]map[string]any{{"bad": make(chan int)}})
		if err == nil || !strings.Contains(err.Error(), "encode") {
			t.Fatalf("Send() = %v, want an encode error", err)
		}
	})
}

// TestRunOverHTTP wires Run to HTTPTarget, as `sluice generate` does.
func TestRunOverHTTP(t *testing.T) {
	var requests atomic.Int32
	srv := ingestStub(t, 202, `{"accepted":1}`, nil, &requests)
	target := &gen.HTTPTarget{BaseURL: srv.URL, Client: srv.Client()}
	sent, err := gen.Run(t.Context(), target, gens(t, gen.PageViews, gen.Clicks, gen.Purchases), 0, 25, 250, nil)
	if err != nil || sent != 250 || requests.Load() != 10 {
		t.Fatalf("Run() = %d, %v with %d requests; want 250, nil, 10", sent, err, requests.Load())
	}
}
