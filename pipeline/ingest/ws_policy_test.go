package ingest_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/sluicehq/sluice/pipeline/ingest"
)

// wsClock is a settable clock with timers, for Config.Now and WSOptions.AfterFunc.
type wsClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*wsTimer
}

type wsTimer struct {
	at   time.Time
	f    func()
	done bool // fired or stopped
}

func (c *wsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f for now+d; it runs when Set reaches that time with fire.
func (c *wsClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := &wsTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, tm)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !tm.done
		tm.done = true
		return was
	}
}

// Set moves the clock to now and, with fire, runs the timers that are due (outside
// the lock: they may set new timers). Without fire the timers are late.
func (c *wsClock) Set(now time.Time, fire bool) {
	c.mu.Lock()
	c.now = now
	var due []func()
	if fire {
		for _, tm := range c.timers {
			if !tm.done && !tm.at.After(now) {
				tm.done = true
				due = append(due, tm.f)
			}
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// events is a JSON array of n valid purchases.
func events(t *testing.T, n int) string {
	t.Helper()
	evs := make([]any, n)
	for i := range evs {
		evs[i] = purchase(map[string]any{"event_id": nil})
	}
	return mustJSON(t, evs)
}

// expectAck reads the answer of message seq and fails unless it is an ack.
func expectAck(t *testing.T, c *fws.Conn, seq int64) {
	t.Helper()
	var a wsAnswer
	readJSON(t, c, &a)
	if a.Error != nil || a.Seq != seq {
		t.Fatalf("answer %+v (error %+v), want the ack of message %d", a, a.Error, seq)
	}
}

// wsErrorAnswer is an error frame with its retry hint.
type wsErrorAnswer struct {
	Seq        int64           `json:"seq"`
	Error      *ingest.Problem `json:"error"`
	RetryAfter int             `json:"retry_after"`
}

// expectError reads the answer of message seq and fails unless it is an error frame
// with status.
func expectError(t *testing.T, c *fws.Conn, seq int64, status int) wsErrorAnswer {
	t.Helper()
	var a wsErrorAnswer
	readJSON(t, c, &a)
	if a.Error == nil || a.Seq != seq || a.Error.Status != status {
		t.Fatalf("answer %+v (error %+v), want a %d error frame for message %d", a, a.Error, status, seq)
	}
	return a
}

// TestWSIngestHandshakeRateLimited is issue 15 defect 4: WebSocket handshakes bypassed
// the rate limiter (120 bad-token handshakes got 401, none 429). A handshake is a
// request: the per-IP limit runs before the token is checked, as on HTTP.
func TestWSIngestHandshakeRateLimited(t *testing.T) {
	s := newWSServerWith(t, nil, ingest.WSOptions{}, false, func(c *ingest.Config) {
		withHS256(c)
		c.RateLimit = ingest.RateLimitConfig{Max: 100, MaxPerIP: 3, Window: time.Minute}
	})
	bad := http.Header{"Authorization": {"Bearer not-a-token"}}
	good := http.Header{"Authorization": {"Bearer " + hsToken(t, nil)}}
	for i, want := range []int{401, 401, 401, 429, 429} {
		c, res, err := s.tryDial(t, "/api/v1/ingest/purchases", nil, bad)
		if err == nil {
			c.Close()
			t.Fatalf("bad-token handshake %d succeeded", i+1)
		}
		if res == nil || res.StatusCode != want {
			t.Fatalf("bad-token handshake %d: response %+v, want %d", i+1, res, want)
		}
		if want == 429 {
			if n, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || n < 1 || n > 60 {
				t.Errorf("Retry-After = %q, want 1..60", res.Header.Get("Retry-After"))
			}
		}
	}
	// The address is over its limit: a good token does not help.
	if c, res, err := s.tryDial(t, "/api/v1/ingest/purchases", nil, good); err == nil || res.StatusCode != 429 {
		if c != nil {
			c.Close()
		}
		t.Fatalf("good-token handshake from a limited address: err %v, response %+v; want 429", err, res)
	}
}

// TestWSIngestMessagesRateLimited is issue 15 defect 4: 300 of 300 messages were
// accepted on one connection while HTTP answered 429. Each message counts its events
// against the limits HTTP requests count against; over the limit it gets a 429 error
// frame with a retry hint, and the connection stays open.
func TestWSIngestMessagesRateLimited(t *testing.T) {
	clk := &wsClock{now: receiveTime}
	s := newWSServerWith(t, nil, ingest.WSOptions{}, false, func(c *ingest.Config) {
		c.Now = clk.Now
		c.RateLimit = ingest.RateLimitConfig{MaxPerIP: 6, Window: time.Minute, TrustedProxies: []string{testProxy}}
	})
	c := s.dial(t, "/api/v1/ingest/purchases", nil, nil) // 1 unit
	send(t, c, events(t, 3))                             // 4
	expectAck(t, c, 1)
	send(t, c, events(t, 3)) // 7: over
	if a := expectError(t, c, 2, 429); a.Error.Type != ingest.ProblemRateLimited || a.RetryAfter < 1 || a.RetryAfter > 60 {
		t.Fatalf("429 frame %+v, want type %s and retry_after 1..60", a, ingest.ProblemRateLimited)
	}
	send(t, c, events(t, 1)) // 8: still over
	expectError(t, c, 3, 429)
	// HTTP from the same address shares the count.
	if res := s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, purchase(nil)), from("127.0.0.1", nil)); res.status != 429 {
		t.Fatalf("HTTP POST from the same address: %d, want 429: %s", res.status, res.body)
	}
	if n := len(s.producer.records()); n != 3 {
		t.Fatalf("produced %d records, want only the 3 of the first message", n)
	}

	clk.Set(receiveTime.Add(time.Minute), false) // a new window
	send(t, c, events(t, 1))
	expectAck(t, c, 4)
	send(t, c, events(t, 7)) // can never fit a window of 6: not worth retrying
	if a := expectError(t, c, 5, 413); a.RetryAfter != 0 {
		t.Errorf("413 frame with retry_after %d, want none", a.RetryAfter)
	}
	send(t, c, events(t, 2))
	expectAck(t, c, 6)
}

// TestWSIngestMessagesRateLimitedPerPrincipal: messages also count against the
// token's principal, across its connections, and a principal over its limit cannot
// open another connection.
func TestWSIngestMessagesRateLimitedPerPrincipal(t *testing.T) {
	s := newWSServerWith(t, nil, ingest.WSOptions{}, false, func(c *ingest.Config) {
		withHS256(c)
		c.RateLimit = ingest.RateLimitConfig{Max: 3, MaxPerIP: 100, Window: time.Minute}
	})
	alice := http.Header{"Authorization": {"Bearer " + hsToken(t, map[string]any{"sub": "alice"})}}
	bob := http.Header{"Authorization": {"Bearer " + hsToken(t, map[string]any{"sub": "bob"})}}
	a := s.dial(t, "/api/v1/ingest/purchases", nil, alice) // alice: 1
	send(t, a, events(t, 1))                               // 2
	expectAck(t, a, 1)
	send(t, a, events(t, 2)) // 4: over
	expectError(t, a, 2, 429)
	if c, res, err := s.tryDial(t, "/api/v1/ingest/purchases", nil, alice); err == nil || res.StatusCode != 429 {
		if c != nil {
			c.Close()
		}
		t.Fatalf("second handshake of alice: err %v, response %+v; want 429", err, res)
	}
	b := s.dial(t, "/api/v1/ingest/purchases", nil, bob)
	send(t, b, events(t, 2))
	expectAck(t, b, 1)
}

// expectClose reads until the connection closes and fails unless with code.
func expectClose(t *testing.T, c *fws.Conn, code int) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wsWait))
	_, b, err := c.ReadMessage()
	if !fws.IsCloseError(err, code) {
		t.Fatalf("read: frame %s, err %v; want close %d", b, err, code)
	}
}

// TestWSTokenExpiryCloses is issue 15 defect 9: a WebSocket message 12 s after the
// token expired was accepted while HTTP with the same token got 401. A connection
// now closes with 1008 when its token stops being accepted (JWTLeeway after exp), on
// the server's clock; a message read after that is not written even if the timer
// has not fired yet.
func TestWSTokenExpiryCloses(t *testing.T) {
	exp := receiveTime.Add(time.Minute).Truncate(time.Second)
	deadline := exp.Add(ingest.JWTLeeway) // HTTP answers 401 from here on
	token := func(scope string) http.Header {
		return http.Header{"Authorization": {"Bearer " + hsToken(t, map[string]any{"exp": exp.Unix(), "scope": scope})}}
	}
	newServer := func(t *testing.T) (*wsServer, *wsClock) {
		clk := &wsClock{now: receiveTime}
		s := newWSServerWith(t, nil, ingest.WSOptions{Hub: countingHub{}, AfterFunc: clk.AfterFunc}, false,
			func(c *ingest.Config) {
				withHS256(c)
				c.Now = clk.Now
			})
		return s, clk
	}

	t.Run("ingest closes at expiry", func(t *testing.T) {
		s, clk := newServer(t)
		c := s.dial(t, "/api/v1/ingest/purchases", nil, token(ingest.ScopeEventsWrite))
		send(t, c, events(t, 1))
		expectAck(t, c, 1)
		clk.Set(deadline.Add(-time.Second), true) // still accepted, as on HTTP
		send(t, c, events(t, 1))
		expectAck(t, c, 2)
		clk.Set(deadline, true)
		expectClose(t, c, ingest.CloseTokenExpired)
		if n := len(s.producer.records()); n != 2 {
			t.Fatalf("produced %d records, want 2", n)
		}
		if res := s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, purchase(nil)), map[string]string{
			"Authorization": token(ingest.ScopeEventsWrite).Get("Authorization")}); res.status != 401 {
			t.Fatalf("HTTP with the same token: %d, want 401", res.status)
		}
	})
	t.Run("ingest message after expiry, timer late", func(t *testing.T) {
		s, clk := newServer(t)
		c := s.dial(t, "/api/v1/ingest/purchases", nil, token(ingest.ScopeEventsWrite))
		send(t, c, events(t, 1))
		expectAck(t, c, 1)
		clk.Set(deadline.Add(12*time.Second), false) // the 12 s, no timer fired
		send(t, c, events(t, 1))
		expectClose(t, c, ingest.CloseTokenExpired)
		if n := len(s.producer.records()); n != 1 {
			t.Fatalf("produced %d records, want 1: the message after expiry was written", n)
		}
	})
	t.Run("stream closes at expiry", func(t *testing.T) {
		s, clk := newServer(t)
		c := s.dial(t, "/api/v1/stream/purchases.clean", nil, token(ingest.ScopeEventsRead))
		clk.Set(deadline, true)
		expectClose(t, c, ingest.CloseTokenExpired)
	})
}

// TestWSIngestRecordOverMessageLimit: a WebSocket message is checked against the
// topic's max.message.bytes like a POST (issue 15 defect 5): a 413 frame naming the
// event, without a retry hint, and nothing produced.
func TestWSIngestRecordOverMessageLimit(t *testing.T) {
	const limit = 2000
	s := newWSServerWith(t, nil, ingest.WSOptions{}, false, func(c *ingest.Config) {
		for i := range c.Topics {
			c.Topics[i].MaxMessageBytes = limit
		}
	})
	c := s.dial(t, "/api/v1/ingest/purchases", nil, nil)
	big := purchase(map[string]any{"event_id": nil, "product_id": strings.Repeat("p", limit)})
	send(t, c, mustJSON(t, []any{purchase(map[string]any{"event_id": nil}), big}))
	a := expectError(t, c, 1, 413)
	if a.RetryAfter != 0 || a.Error.Type != ingest.ProblemTooLarge || len(a.Error.Errors) != 1 || a.Error.Errors[0].Index != 1 {
		t.Fatalf("frame %+v (problem %+v), want too-large naming event 1, no retry", a, a.Error)
	}
	if n := len(s.producer.records()); n != 0 {
		t.Fatalf("%d records produced", n)
	}
}
