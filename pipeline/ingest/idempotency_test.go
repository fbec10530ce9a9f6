package ingest_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/rules"
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func batchOf(t *testing.T, users ...string) string {
	t.Helper()
	evs := make([]any, len(users))
	for i, u := range users {
		evs[i] = purchase(map[string]any{"event_id": nil, "user_id": u})
	}
	return mustJSON(t, evs)
}

// A batch retried with the same Idempotency-Key gets the same event ids, key-index.
func TestIdempotencyKeyBatchIDsDeterministic(t *testing.T) {
	s := newTestServer(t, nil, nil)
	body := batchOf(t, "u-1", "u-2", "u-3")
	key := map[string]string{ingest.HeaderIdempotencyKey: "order-9"}
	var first []string
	for try := range 2 {
		res := s.do(t, "POST", pathBuy, ctJSON, body, key)
		if res.status != 202 {
			t.Fatalf("try %d: status %d: %s", try, res.status, res.body)
		}
		var a ingest.Accepted
		if err := json.Unmarshal(res.body, &a); err != nil {
			t.Fatal(err)
		}
		if want := []string{"order-9-0", "order-9-1", "order-9-2"}; strings.Join(a.EventIDs, ",") != strings.Join(want, ",") {
			t.Fatalf("try %d: event ids %q, want %q", try, a.EventIDs, want)
		}
		if first == nil {
			first = a.EventIDs
		}
	}
}

// The same key with another body answers 422 while the key is remembered, and nothing of
// the second body is produced; after IdempotencyTTL the key is free again.
func TestIdempotencyKeyReusedWithOtherBody(t *testing.T) {
	clk := &clock{now: receiveTime}
	const ttl = time.Hour
	s := newTestServer(t, nil, func(c *ingest.Config) { c.Now = clk.Now; c.IdempotencyTTL = ttl })
	key := map[string]string{ingest.HeaderIdempotencyKey: "k-reused"}
	if res := s.do(t, "POST", pathBuy, ctJSON, batchOf(t, "u-1", "u-2"), key); res.status != 202 {
		t.Fatalf("first: status %d: %s", res.status, res.body)
	}
	// The same body again (a retry) is fine.
	if res := s.do(t, "POST", pathBuy, ctJSON, batchOf(t, "u-1", "u-2"), key); res.status != 202 {
		t.Fatalf("retry: status %d: %s", res.status, res.body)
	}
	clk.Add(ttl - time.Second)
	res := s.do(t, "POST", pathBuy, ctJSON, batchOf(t, "u-1", "u-3"), key)
	if res.status != 422 {
		t.Fatalf("other body, same key: status %d, want 422: %s", res.status, res.body)
	}
	if p := res.problem(t); p.Type != ingest.ProblemIdempotencyKeyReused {
		t.Errorf("type %q, want %s", p.Type, ingest.ProblemIdempotencyKeyReused)
	}
	if n := len(s.producer.records()); n != 4 {
		t.Errorf("%d records produced, want the 4 of the first body and its retry", n)
	}
	clk.Add(time.Second)
	if res := s.do(t, "POST", pathBuy, ctJSON, batchOf(t, "u-1", "u-3"), key); res.status != 202 {
		t.Fatalf("after the TTL: status %d, want 202: %s", res.status, res.body)
	}
}

// The record of keys is bounded: past IdempotencyKeys the oldest key is forgotten.
func TestIdempotencyKeysBounded(t *testing.T) {
	s := newTestServer(t, nil, func(c *ingest.Config) { c.IdempotencyKeys = 2 })
	post := func(key string, user string) int {
		return s.do(t, "POST", pathBuy, ctJSON, batchOf(t, user), map[string]string{ingest.HeaderIdempotencyKey: key}).status
	}
	for _, k := range []string{"a", "b", "c"} {
		if st := post(k, "u-1"); st != 202 {
			t.Fatalf("key %s: status %d", k, st)
		}
	}
	if st := post("c", "u-2"); st != 422 {
		t.Errorf("a remembered key with another body: status %d, want 422", st)
	}
	if st := post("a", "u-2"); st != 202 {
		t.Errorf("the oldest key (forgotten, 2 kept) with another body: status %d, want 202", st)
	}
}

// A key that cannot make a valid event_id (the topic's rules on event_id refuse it, or it
// holds control characters) answers 400 up front, with nothing produced.
func TestIdempotencyKeyInvalidID(t *testing.T) {
	rs, err := rules.Compile([]config.Rule{{Field: "event_id", Required: true, MaxLen: 128}})
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, nil, func(c *ingest.Config) {
		for i := range c.Topics {
			c.Topics[i].Rules = rs
		}
	})
	k126 := strings.Repeat("k", 126)
	for _, c := range []struct {
		name   string
		key    string
		body   string
		status int
	}{
		{"129 bytes", strings.Repeat("k", 129), batchOf(t, "u-1"), 400},
		{"128 bytes", strings.Repeat("k", 128), batchOf(t, "u-1"), 202},
		{"126 bytes, 10 events: ids up to 128 bytes", k126, batchOf(t, strings.Split("a b c d e f g h i j", " ")...), 202},
		{"126 bytes, 11 events: id 10 is 129 bytes", strings.Repeat("m", 126), batchOf(t, strings.Split("a b c d e f g h i j k", " ")...), 400},
		// HTTP itself refuses C0 controls in a header value (fasthttp answers 400 before
		// any handler); a C1 control (U+0085, bytes C2 85) is legal obs-text in HTTP but
		// would make an event_id with a control character, so ingest refuses it.
		{"control character", "k\u0085", batchOf(t, "u-1"), 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(s.producer.records())
			res := s.do(t, "POST", pathBuy, ctJSON, c.body, map[string]string{ingest.HeaderIdempotencyKey: c.key})
			if res.status != c.status {
				t.Fatalf("status %d, want %d: %s", res.status, c.status, res.body)
			}
			if c.status != 400 {
				return
			}
			p := res.problem(t)
			if p.Type != ingest.ProblemInvalid || !strings.Contains(p.Detail, ingest.HeaderIdempotencyKey) {
				t.Errorf("problem %+v, want an invalid-request problem naming the header", p)
			}
			if n := len(s.producer.records()) - before; n != 0 {
				t.Errorf("%d records produced", n)
			}
		})
	}
}
