package e2e

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/gen"
)

// Invalid requests get the right 4xx with a problem document, and nothing reaches Kafka.
func TestInvalidRequestsProduceNothing(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly(), harness.WithService(func(s *config.Service) { s.MaxBodyBytes = 64 << 10 }))
	good := events(t, "purchases", 1, 2)
	now := fixedNow()
	g, _ := gen.New("purchases", gen.Options{Seed: 2, Now: func() time.Time { return now }})
	bad, what := g.NextInvalid()
	for _, c := range []struct {
		name, topic, ct string
		body            []byte
		hdrs            []string
		status          int
	}{
		{"schema violation (" + what + ")", "purchases", "application/json", mustJSON(t, bad), nil, 400},
		{"one bad event fails the batch", "purchases", "application/json", mustJSON(t, []any{good[0], bad, good[1]}), nil, 400},
		{"bad event in NDJSON", "purchases", "application/x-ndjson", append(ndjson(t, good), mustJSON(t, bad)...), nil, 400},
		{"not JSON", "purchases", "application/json", []byte(`{"event_id":`), nil, 400},
		{"empty body", "purchases", "application/json", nil, nil, 400},
		{"empty array", "purchases", "application/json", []byte(`[]`), nil, 400},
		{"unknown field", "purchases", "application/json", mustJSON(t, merge(good[0], map[string]any{"colour": "red"})), nil, 400},
		{"event far in the future", "purchases", "application/json", mustJSON(t, merge(good[0], map[string]any{"event_time": now.Add(time.Hour).Format(time.RFC3339)})), nil, 400},
		{"idempotency key contradicts event_id", "purchases", "application/json", mustJSON(t, good[0]), []string{"Idempotency-Key", "other"}, 400},
		{"unknown topic", "orders", "application/json", mustJSON(t, good[0]), nil, 404},
		{"too large", "purchases", "application/json", bytes.Repeat([]byte(" "), 65<<10), nil, 413},
		{"content type", "purchases", "text/plain", mustJSON(t, good[0]), nil, 415},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, h, body := p.Post(c.topic, c.ct, c.body, c.hdrs...)
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, body)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
			var prob struct {
				Title  string `json:"title"`
				Status int    `json:"status"`
			}
			if err := json.Unmarshal(body, &prob); err != nil || prob.Status != c.status || prob.Title == "" {
				t.Errorf("problem document %s (%v)", body, err)
			}
		})
	}
	if n := len(p.ReadAll("purchases")); n != 0 {
		t.Fatalf("%d records reached Kafka from invalid requests", n)
	}
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// With Kafka refusing writes, ingest answers 503 with Retry-After within the ack
// deadline, never a 202; once Kafka is back every 202 is in .clean exactly once.
func TestKafkaUnavailableNever202(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly(), harness.WithService(func(s *config.Service) { s.AckTimeout = 500 * time.Millisecond }))
	c := p.FaultCluster()
	var want []string
	want = append(want, post202(t, p, "page_views", "application/json", mustJSON(t, events(t, "page_views", 1, 5))).EventIDs...)

	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "page_views", Err: kerr.NotEnoughReplicas, Count: -1})
	for i := range 3 {
		start := time.Now()
		code, hdr, body := p.Post("page_views", "application/json", mustJSON(t, events(t, "page_views", uint64(50+i), 3)))
		took := time.Since(start)
		if code != 503 {
			t.Fatalf("status %d while Kafka refuses writes, want 503: %s", code, body)
		}
		if hdr.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		if took > 3*time.Second {
			t.Errorf("503 took %s: not fast", took)
		}
	}
	h.Remove()
	// A client retries a 503 with the same body; once Kafka is back it gets its 202.
	body := mustJSON(t, events(t, "page_views", 2, 5))
	for try := 1; ; try++ {
		code, _, b := p.Post("page_views", "application/json", body)
		if code == 202 {
			var a accepted
			if err := json.Unmarshal(b, &a); err != nil {
				t.Fatal(err)
			}
			want = append(want, a.EventIDs...)
			break
		}
		if code != 503 || try == 50 {
			t.Fatalf("after Kafka recovered: try %d: status %d: %s", try, code, b)
		}
	}
	settle(t, p)
	got := idsOf(t, p.ReadAll("page_views.clean"))
	// Records of a 503 may still land (the client retries them; dedup keeps one), but
	// every 202 must be there exactly once.
	for _, id := range want {
		if got[id] != 1 {
			t.Errorf("accepted event %s appears %d times", id, got[id])
		}
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("event %s appears %d times", id, n)
		}
	}
}
