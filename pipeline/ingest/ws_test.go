package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/pipeline/fanout"
	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// wsWait bounds every wait for a frame.
const wsWait = 5 * time.Second

// aggTopic is an aggregate topic the stream tests allow.
const aggTopic = "agg.revenue_by_country_1m"

// wsServer is a test server with the WebSocket routes, serving on a loopback port.
type wsServer struct {
	*testServer
	ws   *ingest.WebSockets
	addr string
}

// newWSServer starts a server on 127.0.0.1:0. Accepted connections get a small socket
// send buffer when smallSendBuffer is set (slow-client tests).
func newWSServer(t *testing.T, p *fakeProducer, o ingest.WSOptions, smallSendBuffer bool) *wsServer {
	t.Helper()
	return newWSServerWith(t, p, o, smallSendBuffer, nil)
}

// newWSServerWith is newWSServer with edit applied to the server's Config.
func newWSServerWith(t *testing.T, p *fakeProducer, o ingest.WSOptions, smallSendBuffer bool, edit func(*ingest.Config)) *wsServer {
	t.Helper()
	ts := newTestServer(t, p, edit)
	if o.Authorize == nil {
		o.Authorize = ts.Authorize // allows all unless edit turns authentication on
	}
	ws := ts.RegisterWebSockets(ts.App(), o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if smallSendBuffer {
		ln = smallBufListener{ln}
	}
	served := make(chan error, 1)
	go func() { served <- ts.Serve(ln) }()
	// One request through the listener: once answered, Serve has registered it, and
	// Shutdown will close it (a Shutdown that runs first would miss it).
	res, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	_ = res.Body.Close()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wsWait)
		defer cancel()
		if err := ws.Shutdown(ctx); err != nil {
			t.Errorf("WebSockets.Shutdown: %v", err)
		}
		if err := ts.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-served
	})
	return &wsServer{testServer: ts, ws: ws, addr: ln.Addr().String()}
}

// smallBufListener shrinks the kernel send buffer of accepted connections so that a
// client that does not read blocks the server after a few KiB.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// dial opens a WebSocket to path, failing the test unless the handshake succeeds.
func (s *wsServer) dial(t *testing.T, path string, d *fws.Dialer, h http.Header) *fws.Conn {
	t.Helper()
	c, res, err := s.tryDial(t, path, d, h)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (s *wsServer) tryDial(t *testing.T, path string, d *fws.Dialer, h http.Header) (*fws.Conn, *http.Response, error) {
	t.Helper()
	if d == nil {
		d = &fws.Dialer{HandshakeTimeout: wsWait}
	}
	return d.DialContext(t.Context(), "ws://"+s.addr+path, h)
}

// readJSON reads one text frame into v within wsWait.
func readJSON(t *testing.T, c *fws.Conn, v any) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wsWait))
	mt, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if mt != fws.TextMessage {
		t.Fatalf("frame type %d, want text", mt)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
}

func send(t *testing.T, c *fws.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(fws.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// ---- ingest ----

// wsAnswer holds either frame of an ingest answer.
type wsAnswer struct {
	Seq      int64           `json:"seq"`
	Accepted int             `json:"accepted"`
	EventIDs []string        `json:"event_ids"`
	Error    *ingest.Problem `json:"error"`
}

func TestWSIngestAcksInOrder(t *testing.T) {
	s := newWSServer(t, nil, ingest.WSOptions{}, false)
	c := s.dial(t, "/api/v1/ingest/purchases", nil, http.Header{"X-Sluice-Header-Tenant": {"acme"}})
	msgs := []struct {
		name string
		body string
		ids  []string
	}{
		{"one event", mustJSON(t, purchase(map[string]any{"event_id": "e-1"})), []string{"e-1"}},
		{"array", mustJSON(t, []any{purchase(map[string]any{"event_id": "e-2"}), purchase(map[string]any{"event_id": "e-3"})}),
			[]string{"e-2", "e-3"}},
		{"one event without id", mustJSON(t, purchase(map[string]any{"event_id": nil})), nil},
	}
	for _, m := range msgs {
		send(t, c, m.body)
	}
	for i, m := range msgs {
		var a wsAnswer
		readJSON(t, c, &a)
		if a.Error != nil || a.Seq != int64(i+1) {
			t.Fatalf("%s: answer %+v, want ack seq %d", m.name, a, i+1)
		}
		if m.ids != nil && !equalStrings(a.EventIDs, m.ids) {
			t.Errorf("%s: event_ids %v, want %v", m.name, a.EventIDs, m.ids)
		}
		if a.Accepted != len(a.EventIDs) || a.Accepted == 0 {
			t.Errorf("%s: accepted %d with ids %v", m.name, a.Accepted, a.EventIDs)
		}
	}
	recs := s.producer.records()
	if len(recs) != 4 {
		t.Fatalf("produced %d records, want 4", len(recs))
	}
	for _, r := range recs {
		if v, _ := header(r, "tenant"); v != "acme" || r.Topic != "purchases" {
			t.Errorf("record %s: tenant header %q, topic %q", r.Key, v, r.Topic)
		}
		if _, ok := header(r, wire.HeaderRequestID); !ok {
			t.Errorf("record %s has no request id header", r.Key)
		}
	}
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

func TestWSIngestErrorFrameKeepsConnection(t *testing.T) {
	s := newWSServer(t, nil, ingest.WSOptions{}, false)
	c := s.dial(t, "/api/v1/ingest/purchases", nil, nil)
	tests := []struct {
		name   string
		msg    string
		binary bool
		status int
		field  string
	}{
		{"invalid field", mustJSON(t, purchase(map[string]any{"amount": "lots"})), false, 400, "amount"},
		{"missing key field", mustJSON(t, purchase(map[string]any{"user_id": nil})), false, 400, "user_id"},
		{"not JSON", `{"event_id":`, false, 400, ""},
		{"not an object", `42`, false, 400, ""},
		{"binary message", mustJSON(t, purchase(nil)), true, 415, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mt := fws.TextMessage
			if tt.binary {
				mt = fws.BinaryMessage
			}
			if err := c.WriteMessage(mt, []byte(tt.msg)); err != nil {
				t.Fatal(err)
			}
			var a wsAnswer
			readJSON(t, c, &a)
			if a.Seq != int64(i+1) || a.Error == nil || a.Error.Status != tt.status {
				t.Fatalf("answer %+v, want error %d for seq %d", a, tt.status, i+1)
			}
			if tt.field != "" && (len(a.Error.Errors) == 0 || a.Error.Errors[0].Field != tt.field) {
				t.Errorf("problem errors %+v, want field %s", a.Error.Errors, tt.field)
			}
		})
	}
	// Still open, still accepting.
	send(t, c, mustJSON(t, purchase(nil)))
	var a wsAnswer
	readJSON(t, c, &a)
	if a.Error != nil || a.Accepted != 1 || a.Seq != int64(len(tests)+1) {
		t.Fatalf("after errors: %+v, want an ack", a)
	}
	if n := len(s.producer.records()); n != 1 {
		t.Fatalf("produced %d records, want only the valid one", n)
	}
}

func TestWSIngestUnavailable(t *testing.T) {
	s := newWSServer(t, &fakeProducer{fail: errKafkaDown}, ingest.WSOptions{}, false)
	c := s.dial(t, "/api/v1/ingest/purchases", nil, nil)
	send(t, c, mustJSON(t, purchase(nil)))
	var a wsAnswer
	readJSON(t, c, &a)
	if a.Error == nil || a.Error.Status != 503 || a.Error.Type != ingest.ProblemUnavailable {
		t.Fatalf("answer %+v, want a 503 problem", a)
	}
}

func TestWSIngestInFlightLimit(t *testing.T) {
	p := &fakeProducer{entered: make(chan struct{}), hang: make(chan struct{})}
	s := newWSServer(t, p, ingest.WSOptions{MaxInFlight: 2}, false)
	c := s.dial(t, "/api/v1/ingest/purchases", nil, nil)
	for i := range 3 {
		send(t, c, mustJSON(t, purchase(map[string]any{"event_id": fmt.Sprintf("e-%d", i+1)})))
	}
	for i := range 2 {
		select {
		case <-p.entered:
		case <-time.After(wsWait):
			t.Fatalf("message %d never reached the producer", i+1)
		}
	}
	// Two messages are in flight: the third must not even be read. Absence can only be
	// checked over a window.
	select {
	case <-p.entered:
		t.Fatal("a third message reached the producer with MaxInFlight=2 and none answered")
	case <-time.After(200 * time.Millisecond):
	}
	// Releasing the producer answers the first two; only then is the third read.
	close(p.hang)
	for seq := int64(1); seq <= 3; seq++ {
		if seq == 3 {
			select {
			case <-p.entered:
			case <-time.After(wsWait):
				t.Fatal("the third message was not read after the first two were answered")
			}
		}
		var a wsAnswer
		readJSON(t, c, &a)
		if a.Error != nil || a.Seq != seq {
			t.Fatalf("answer %+v, want ack %d", a, seq)
		}
	}
}

func TestWSIngestHandshake(t *testing.T) {
	authorize := func(c *fiber.Ctx, scope string) error {
		switch {
		case c.Get(fiber.HeaderAuthorization) != "Bearer good":
			return fiber.NewError(fiber.StatusUnauthorized, "bad token")
		case !strings.HasPrefix(scope, "events:write:") && scope != "events:read":
			return fiber.NewError(fiber.StatusForbidden, "scope "+scope)
		}
		return nil
	}
	s := newWSServer(t, nil, ingest.WSOptions{Authorize: authorize, Hub: noHub{}}, false)
	tests := []struct {
		name         string
		path         string
		header       http.Header
		subprotocols []string
		status       int
	}{
		{"token in Authorization", "/api/v1/ingest/purchases", http.Header{"Authorization": {"Bearer good"}}, nil, 101},
		{"token as subprotocol", "/api/v1/ingest/purchases", nil, []string{"bearer", "good"}, 101},
		{"no token", "/api/v1/ingest/purchases", nil, nil, 401},
		{"bad subprotocol token", "/api/v1/ingest/purchases", nil, []string{"bearer", "bad"}, 401},
		{"unknown topic", "/api/v1/ingest/nope", http.Header{"Authorization": {"Bearer good"}}, nil, 404},
		{"reserved client header", "/api/v1/ingest/purchases",
			http.Header{"Authorization": {"Bearer good"}, "X-Sluice-Header-Sluice-X": {"1"}}, nil, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fws.Dialer{HandshakeTimeout: wsWait, Subprotocols: tt.subprotocols}
			c, res, err := s.tryDial(t, tt.path, d, tt.header)
			if tt.status == 101 {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer c.Close()
				if tt.subprotocols != nil && c.Subprotocol() != "bearer" {
					t.Errorf("subprotocol %q, want bearer", c.Subprotocol())
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("handshake succeeded, want %d", tt.status)
			}
			if res == nil || res.StatusCode != tt.status || res.Header.Get("Content-Type") != ingest.MediaTypeProblem {
				t.Fatalf("response %+v, want %d problem", res, tt.status)
			}
		})
	}
}

func TestWSNotUpgradeRequests(t *testing.T) {
	s := newWSServer(t, nil, ingest.WSOptions{Hub: noHub{}}, false)
	for _, path := range []string{"/api/v1/ingest/purchases", "/api/v1/stream/purchases.clean"} {
		t.Run(path, func(t *testing.T) {
			r := s.do(t, "GET", path, "", "", nil)
			if r.status != fiber.StatusUpgradeRequired || r.header.Get("Upgrade") != "websocket" {
				t.Fatalf("status %d, Upgrade %q; want 426 with Upgrade: websocket", r.status, r.header.Get("Upgrade"))
			}
			r.problem(t)
		})
	}
}

// noHub is a StreamHub for tests that must not subscribe.
type noHub struct{}

func (noHub) Subscribe(context.Context, string, fanout.Limits) (<-chan fanout.Message, func(), error) {
	return nil, nil, errors.New("noHub: unexpected Subscribe")
}

func TestWSShutdownAnswersInFlight(t *testing.T) {
	p := &fakeProducer{entered: make(chan struct{}), hang: make(chan struct{})}
	s := newWSServer(t, p, ingest.WSOptions{}, false)
	c := s.dial(t, "/api/v1/ingest/purchases", nil, nil)
	send(t, c, mustJSON(t, purchase(nil)))
	<-p.entered
	shut := make(chan error, 1)
	go func() { shut <- s.ws.Shutdown(t.Context()) }()
	close(p.hang)
	var a wsAnswer
	readJSON(t, c, &a)
	if a.Error != nil || a.Seq != 1 {
		t.Fatalf("answer %+v, want the ack of the in-flight message", a)
	}
	_, _, err := c.ReadMessage()
	if !fws.IsCloseError(err, fws.CloseGoingAway) {
		t.Fatalf("after the ack: %v, want close 1001", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// ---- stream ----

// streamEnv is a kfake cluster holding purchases.clean and an aggregate topic, and a
// hub decoding JSON values.
type streamEnv struct {
	prod *kgo.Client
	hub  *fanout.Hub
}

func newStreamEnv(t *testing.T) *streamEnv {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(1, "purchases.clean", aggTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg := kafka.Config{Brokers: c.ListenAddrs()}
	prod, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	hub := fanout.New(cfg, func(_ context.Context, r *kgo.Record) (any, error) {
		var v map[string]any
		err := json.Unmarshal(r.Value, &v)
		return v, err
	})
	t.Cleanup(hub.Close)
	return &streamEnv{prod: prod, hub: hub}
}

func (e *streamEnv) produce(t *testing.T, topic string, values ...map[string]any) {
	t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(v["user_id"])), Value: []byte(mustJSON(t, v)),
			Headers: []kgo.RecordHeader{{Key: wire.HeaderEventID, Value: []byte(fmt.Sprint(v["event_id"]))}}}
	}
	if err := e.prod.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func (e *streamEnv) options(o ingest.WSOptions) ingest.WSOptions {
	o.Hub = e.hub
	o.AllowStream = func(topic string) bool { return strings.HasPrefix(topic, "agg.") }
	return o
}

func TestWSStreamRecords(t *testing.T) {
	e := newStreamEnv(t)
	s := newWSServer(t, nil, e.options(ingest.WSOptions{}), false)
	all := s.dial(t, "/api/v1/stream/purchases.clean", nil, nil)
	de := s.dial(t, "/api/v1/stream/purchases.clean?filter=country=DE&filter=items=2", nil, nil)
	agg := s.dial(t, "/api/v1/stream/"+aggTopic, nil, nil)
	evs := []map[string]any{
		{"event_id": "e-1", "user_id": "u-1", "country": "DE", "items": 2},
		{"event_id": "e-2", "user_id": "u-2", "country": "FR", "items": 2},
		{"event_id": "e-3", "user_id": "u-3", "country": "DE", "items": 3},
		{"event_id": "e-4", "user_id": "u-4", "country": "DE", "items": 2},
	}
	e.produce(t, "purchases.clean", evs...)
	e.produce(t, aggTopic, map[string]any{"event_id": "w-1", "user_id": "DE", "revenue": 19.99})

	tests := []struct {
		name string
		conn *fws.Conn
		want []string // event ids
	}{
		{"no filter", all, []string{"e-1", "e-2", "e-3", "e-4"}},
		{"filter country=DE and items=2", de, []string{"e-1", "e-4"}},
		{"aggregate topic", agg, []string{"w-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, id := range tt.want {
				var r ingest.StreamRecord
				readJSON(t, tt.conn, &r)
				v, _ := r.Value.(map[string]any)
				if v["event_id"] != id || r.Headers[wire.HeaderEventID] != id {
					t.Fatalf("record %+v, want event %s", r, id)
				}
				if r.Key != v["user_id"] || r.Timestamp == "" || (r.Topic != "purchases.clean" && r.Topic != aggTopic) {
					t.Errorf("record %+v: wrong key, timestamp or topic", r)
				}
			}
		})
	}
}

func TestWSStreamRefused(t *testing.T) {
	e := newStreamEnv(t)
	s := newWSServer(t, nil, e.options(ingest.WSOptions{}), false)
	tests := []struct {
		name   string
		path   string
		status int
	}{
		{"raw topic", "/api/v1/stream/purchases", 404},
		{"clean topic of an unknown topic", "/api/v1/stream/nope.clean", 404},
		{"not allowed", "/api/v1/stream/_sluice.internal", 404},
		{"allowed but not in Kafka", "/api/v1/stream/agg.missing", 404},
		{"filter without =", "/api/v1/stream/purchases.clean?filter=country", 400},
		{"filter without field", "/api/v1/stream/purchases.clean?filter==DE", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, res, err := s.tryDial(t, tt.path, nil, nil)
			if err == nil {
				c.Close()
				t.Fatalf("handshake succeeded, want %d", tt.status)
			}
			if res == nil || res.StatusCode != tt.status || res.Header.Get("Content-Type") != ingest.MediaTypeProblem {
				t.Fatalf("response %+v, want a %d problem", res, tt.status)
			}
		})
	}
	if n := e.hub.Consumers(); n != 0 {
		t.Errorf("Consumers() = %d after refused handshakes, want 0", n)
	}
}

func TestWSStreamSlowClientClosed(t *testing.T) {
	e := newStreamEnv(t)
	const buffer = 64 // records of about 1 KiB
	s := newWSServer(t, nil, e.options(ingest.WSOptions{SendBufferBytes: buffer << 10}), true)
	fast := s.dial(t, "/api/v1/stream/purchases.clean", nil, nil)
	// The slow client never reads until the end, through a small receive buffer.
	slowDialer := &fws.Dialer{HandshakeTimeout: wsWait, ReadBufferSize: 1024,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			return c, err
		}}
	slow := s.dial(t, "/api/v1/stream/purchases.clean", slowDialer, nil)

	// 1 MiB in chunks of half the buffer, each read by the fast client before the next
	// is produced: the fast client never falls behind, the slow one must.
	pad := strings.Repeat("x", 1000)
	const chunk, total = buffer / 2, 1024
	for sent := 0; sent < total; sent += chunk {
		evs := make([]map[string]any, chunk)
		for i := range evs {
			evs[i] = map[string]any{"event_id": fmt.Sprintf("e-%d", sent+i), "user_id": "u", "pad": pad}
		}
		e.produce(t, "purchases.clean", evs...)
		for i := range chunk {
			var r ingest.StreamRecord
			readJSON(t, fast, &r)
			if v, _ := r.Value.(map[string]any); v["event_id"] != fmt.Sprintf("e-%d", sent+i) {
				t.Fatalf("fast client: got %v, want e-%d", v["event_id"], sent+i)
			}
		}
	}

	got := 0
	for {
		_ = slow.SetReadDeadline(time.Now().Add(wsWait))
		_, _, err := slow.ReadMessage()
		if err != nil {
			if !fws.IsCloseError(err, ingest.CloseSlowConsumer) {
				t.Fatalf("slow client after %d records: %v, want close %d", got, err, ingest.CloseSlowConsumer)
			}
			break
		}
		got++
	}
	if got >= total {
		t.Fatalf("slow client received all %d records; it should have been dropped", got)
	}
	// The fast client keeps receiving.
	e.produce(t, "purchases.clean", map[string]any{"event_id": "after", "user_id": "u"})
	var r ingest.StreamRecord
	readJSON(t, fast, &r)
	if v, _ := r.Value.(map[string]any); v["event_id"] != "after" {
		t.Fatalf("fast client after the drop: %v", r.Value)
	}
}

// TestWSStreamHealthyReaderSurvivesBurst is issue 15 defect 8: the records of one
// maximum-size batch (10,000 events) reach the stream at once; a lone reader that
// reads as fast as it can receives all of them with the default options (the send
// buffer used to hold 256 records, and the reader was closed with 4008 after ~300).
func TestWSStreamHealthyReaderSurvivesBurst(t *testing.T) {
	e := newStreamEnv(t)
	s := newWSServer(t, nil, e.options(ingest.WSOptions{}), false)
	c := s.dial(t, "/api/v1/stream/purchases.clean", nil, nil)
	const burst = 10_000
	evs := make([]map[string]any, burst)
	for i := range evs {
		evs[i] = map[string]any{"event_id": fmt.Sprintf("e-%d", i), "user_id": "u", "country": "DE"}
	}
	e.produce(t, "purchases.clean", evs...)
	for i := range burst {
		_ = c.SetReadDeadline(time.Now().Add(wsWait))
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %d of %d records: %v", i, burst, err)
		}
		var r ingest.StreamRecord
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if v, _ := r.Value.(map[string]any); v["event_id"] != fmt.Sprintf("e-%d", i) {
			t.Fatalf("record %d: got %v", i, v["event_id"])
		}
	}
}

func TestWSStreamShutdown(t *testing.T) {
	e := newStreamEnv(t)
	s := newWSServer(t, nil, e.options(ingest.WSOptions{}), false)
	c := s.dial(t, "/api/v1/stream/purchases.clean", nil, nil)
	shut := make(chan error, 1)
	go func() { shut <- s.ws.Shutdown(t.Context()) }()
	_ = c.SetReadDeadline(time.Now().Add(wsWait))
	if _, _, err := c.ReadMessage(); !fws.IsCloseError(err, fws.CloseGoingAway) {
		t.Fatalf("read after Shutdown: %v, want close 1001", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := e.hub.Consumers(); n != 0 {
		t.Errorf("Consumers() = %d after Shutdown, want 0", n)
	}
}

// ---- fuzz ----

// countingHub hands out empty subscriptions.
type countingHub struct{}

func (countingHub) Subscribe(context.Context, string, fanout.Limits) (<-chan fanout.Message, func(), error) {
	return make(chan fanout.Message), func() {}, nil
}

// FuzzWSHandshake sends arbitrary topics, query strings and Sec-WebSocket-Protocol
// headers to both WebSocket routes: the answer is never a 5xx, and anything but a 101
// is problem+json.
func FuzzWSHandshake(f *testing.F) {
	seeds := []struct{ topic, query, protocol string }{
		{"purchases.clean", "filter=country=DE", "bearer, good"},
		{"purchases.clean", "filter=country&filter==x", "bearer"},
		{"purchases", "filter=%zz", ", bearer, , good,"},
		{"agg.x", strings.Repeat("filter=a=b&", 20), "Bearer,good"},
		{"%00", "filter=\xff=\xfe", "bearer, \x00"},
	}
	for _, s := range seeds {
		f.Add(s.topic, s.query, s.protocol, true)
		f.Add(s.topic, s.query, s.protocol, false)
	}
	ts := newTestServer(f, &fakeProducer{discard: true}, nil)
	ts.RegisterWebSockets(ts.App(), ingest.WSOptions{
		Hub:         countingHub{},
		AllowStream: func(topic string) bool { return strings.HasPrefix(topic, "agg.") },
		Authorize: func(c *fiber.Ctx, _ string) error {
			if c.Get(fiber.HeaderAuthorization) != "Bearer good" {
				return fiber.NewError(fiber.StatusUnauthorized, "bad token")
			}
			return nil
		},
	})
	h := ts.App().Handler()
	f.Fuzz(func(t *testing.T, topic, query, protocol string, upgrade bool) {
		for _, route := range []string{"/api/v1/stream/", "/api/v1/ingest/"} {
			req := &fasthttp.Request{}
			req.Header.SetMethod("GET")
			req.SetRequestURI(route + topic + "?" + query)
			req.Header.Set(fiber.HeaderSecWebSocketProtocol, protocol)
			if upgrade {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "websocket")
				req.Header.Set("Sec-WebSocket-Version", "13")
				req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			}
			res := handle(h, req)
			status := res.StatusCode()
			if status >= 500 {
				t.Fatalf("%s%s?%s (protocol %q): status %d: %s", route, topic, query, protocol, status, res.Body())
			}
			if status != fiber.StatusSwitchingProtocols && string(res.Header.ContentType()) != ingest.MediaTypeProblem {
				t.Fatalf("%s%s?%s: status %d with Content-Type %q", route, topic, query, status, res.Header.ContentType())
			}
		}
	})
}
