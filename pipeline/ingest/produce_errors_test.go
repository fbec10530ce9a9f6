package ingest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/kafka"
)

// An event whose record is larger than the topic's max.message.bytes answers 413 naming
// the event and the limit, before anything is produced (it used to be produced, fail
// with MESSAGE_TOO_LARGE and answer 503 + Retry-After: a retry loop).
func TestPostEventsRecordOverMessageLimit(t *testing.T) {
	const limit = 2000
	p := &fakeProducer{}
	s := newTestServer(t, p, func(c *ingest.Config) {
		for i := range c.Topics {
			c.Topics[i].MaxMessageBytes = limit
		}
	})
	big := purchase(map[string]any{"event_id": nil, "product_id": strings.Repeat("p", limit)})
	res := s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, []any{purchase(map[string]any{"event_id": nil}), big}), nil)
	if res.status != 413 {
		t.Fatalf("status %d, want 413: %s", res.status, res.body)
	}
	if res.header.Get("Retry-After") != "" {
		t.Error("413 with Retry-After")
	}
	prob := res.problem(t)
	if prob.Type != ingest.ProblemTooLarge || len(prob.Errors) != 1 || prob.Errors[0].Index != 1 ||
		!strings.Contains(prob.Errors[0].Message, fmt.Sprint(limit)) {
		t.Errorf("problem %+v, want too-large naming event 1 and the limit %d", prob, limit)
	}
	if n := len(p.records()); n != 0 {
		t.Errorf("%d records produced", n)
	}
	// Just under the limit is fine.
	ok := purchase(map[string]any{"event_id": nil, "product_id": strings.Repeat("p", limit-400)})
	if res := s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, ok), nil); res.status != 202 {
		t.Errorf("an event under the limit: status %d: %s", res.status, res.body)
	}
}

// Each produce failure gets the status that says what the client can do: only a
// transient one is retryable (503 + Retry-After); Kafka's permanent errors never are;
// an unknown commit outcome is 504 with the event ids.
func TestPostEventsProduceErrorStatus(t *testing.T) {
	for _, c := range []struct {
		name       string
		err        error
		status     int
		typ        string
		retryAfter bool
	}{
		{"buffer full", fmt.Errorf("%w: 1 MiB waits", kafka.ErrBufferFull), 503, ingest.ProblemUnavailable, true},
		{"transaction aborted", fmt.Errorf("%w: NOT_ENOUGH_REPLICAS", kafka.ErrAborted), 503, ingest.ProblemUnavailable, true},
		{"message too large", fmt.Errorf("kafka produce: %w", kerr.MessageTooLarge), 413, ingest.ProblemTooLarge, false},
		{"larger than the buffer", fmt.Errorf("%w: 2 MiB", kafka.ErrTooLarge), 413, ingest.ProblemTooLarge, false},
		{"topic authorization", fmt.Errorf("kafka produce: %w", kerr.TopicAuthorizationFailed), 500, ingest.ProblemKafkaRejected, false},
		{"outcome unknown", fmt.Errorf("%w: EOF", kafka.ErrOutcomeUnknown), 504, ingest.ProblemOutcomeUnknown, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t, &fakeProducer{fail: c.err}, nil)
			res := s.do(t, "POST", pathBuy, ctJSON, batchOf(t, "u-1", "u-2"), map[string]string{ingest.HeaderIdempotencyKey: "k"})
			if res.status != c.status {
				t.Fatalf("status %d, want %d: %s", res.status, c.status, res.body)
			}
			if got := res.header.Get("Retry-After") != ""; got != c.retryAfter {
				t.Errorf("Retry-After present = %v, want %v", got, c.retryAfter)
			}
			p := res.problem(t)
			if p.Type != c.typ {
				t.Errorf("type %q, want %q", p.Type, c.typ)
			}
			if c.status == 504 && strings.Join(p.EventIDs, ",") != "k-0,k-1" {
				t.Errorf("504 event_ids %q, want the ids to retry with", p.EventIDs)
			}
		})
	}
}

// A producer that does not answer within AckTimeout plus CommitGrace leaves the outcome
// unknown: 504, never a 503 that would claim nothing was written.
func TestPostEventsProducerHangsIsOutcomeUnknown(t *testing.T) {
	p := &fakeProducer{hang: make(chan struct{})}
	t.Cleanup(func() { close(p.hang) })
	s := newTestServer(t, p, func(c *ingest.Config) { c.AckTimeout = 50 * time.Millisecond; c.CommitGrace = 50 * time.Millisecond })
	start := time.Now()
	res := s.do(t, "POST", pathBuy, ctJSON, batchOf(t, "u-1"), nil)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("answer took %s", d)
	}
	if res.status != 504 {
		t.Fatalf("status %d, want 504: %s", res.status, res.body)
	}
	if prob := res.problem(t); prob.Type != ingest.ProblemOutcomeUnknown || len(prob.EventIDs) != 1 {
		t.Errorf("problem %+v", prob)
	}
}
