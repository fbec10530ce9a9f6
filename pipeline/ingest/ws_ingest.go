package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/goccy/go-json"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// WSAck is the frame answering an ingest message whose events Kafka acknowledged.
type WSAck struct {
	// Seq is the message's number on its connection: 1 for the first text or binary
	// message the client sent, 2 for the next, and so on. Answers come in Seq order.
	Seq int64 `json:"seq"`
	// Accepted is the number of events written.
	Accepted int `json:"accepted"`
	// EventIDs are their event ids, in message order.
	EventIDs []string `json:"event_ids"`
}

// WSError is the frame answering an ingest message that was not written (400, 413, 415,
// 429, 500, 503) or whose outcome is unknown (504): the same problem a POST would get.
// The connection stays open.
type WSError struct {
	Seq   int64   `json:"seq"`
	Error Problem `json:"error"`
	// RetryAfter, on a 429 (rate limited), 503 or 504, is the number of seconds to wait
	// before sending the message again, the Retry-After header of HTTP.
	RetryAfter int `json:"retry_after,omitempty"`
}

// ingestSession is what an ingest handshake hands to its connection.
type ingestSession struct {
	enc *Encoder
	rid string
	// extra are the record headers of every event of the connection: the handshake's
	// X-Sluice-Header-* headers and its request id.
	extra []kgo.RecordHeader
	// quota is what the messages count against: the handshake's rate limits and keys.
	quota rateQuota
	// deadline is when the handshake's token stops being accepted (zero: no token).
	deadline time.Time
}

// wsPending is a message read but not yet answered; done receives its answer frame.
type wsPending struct {
	done chan []byte
}

// ingestHandshake is GET /api/v1/ingest/{topic} before the upgrade, once authorized
// (WebSockets.handshake).
func (w *WebSockets) ingestHandshake(c *fiber.Ctx, upgrade fiber.Handler) error {
	s := w.s
	topic := c.Params("topic")
	enc, ok := s.encoders[topic]
	if !ok {
		s.metrics.rejected.WithLabelValues(unknownTopic, reasonUnknownTopic).Inc()
		return newRequestError(fiber.StatusNotFound, ProblemUnknownTopic, reasonUnknownTopic,
			fmt.Sprintf("topic %q does not exist; GET /api/v1/topics lists the topics", truncate(topic)))
	}
	extra, rerr := clientHeaders(&c.Request().Header)
	if rerr != nil {
		s.reject(enc.topic.Name, rerr.reason, 0)
		return rerr
	}
	if err := w.checkOrigin(c); err != nil {
		return err
	}
	if err := requireUpgrade(c); err != nil {
		return err
	}
	rid, _ := c.Locals(localRequestID).(string)
	rid = strings.Clone(rid) // fiber reuses request memory
	if rid != "" {
		extra = append(extra, kgo.RecordHeader{Key: wire.HeaderRequestID, Value: []byte(rid)})
	}
	c.Locals(localWSSession, &ingestSession{enc: enc, rid: rid, extra: extra, quota: s.limits.quota(c),
		deadline: tokenDeadline(c)})
	return upgrade(c)
}

// serveIngest is an upgraded ingest connection. This goroutine reads messages, starts
// their validation and production, and queues them; a writer sends their answers in
// order. Holding a slot from before a message is read until its answer is written
// caps the messages in flight at MaxInFlight: at the cap the socket is not read, and
// TCP pushes back on the client.
func (w *WebSockets) serveIngest(conn *websocket.Conn) {
	ws := conn.Conn
	sess, _ := conn.Locals(localWSSession).(*ingestSession)
	if sess == nil {
		w.closeConn(ws, fws.CloseInternalServerErr, "", nil)
		return
	}
	if !w.enter(ws, routeIngestWS) {
		w.closeConn(ws, fws.CloseGoingAway, "server shutting down", nil)
		return
	}
	reason := wsClosedClient
	defer func() { w.leave(ws, routeIngestWS, reason) }()
	ws.SetReadLimit(w.s.cfg.MaxBodyBytes)
	// Shutdown and the token's expiry interrupt the read; the messages already read are
	// still answered.
	intr := &readInterrupter{ws: ws}
	defer intr.release() // runs last: the callbacks below may still be running
	stopInterrupt := context.AfterFunc(w.ctx, intr.interrupt)
	defer stopInterrupt()
	var expired atomic.Bool
	stopExpiry := w.watchExpiry(sess.deadline, func() {
		expired.Store(true)
		intr.interrupt()
	})
	defer stopExpiry()

	pending := make(chan *wsPending, w.o.MaxInFlight)
	slots := make(chan struct{}, w.o.MaxInFlight)
	written := make(chan struct{})
	go w.ingestWriter(ws, pending, slots, written)
	var (
		seq     int64
		readErr error
	)
	for {
		slots <- struct{}{}
		mt, data, err := ws.ReadMessage()
		if err != nil {
			<-slots
			readErr = err
			break
		}
		if w.expired(sess.deadline) { // before the timer fired: not written either
			<-slots
			expired.Store(true)
			break
		}
		seq++
		pending <- w.ingestMessage(sess, seq, mt, data)
	}
	close(pending)
	<-written
	switch {
	case w.ctx.Err() != nil:
		reason = wsClosedShutdown
		w.closeConn(ws, fws.CloseGoingAway, "server shutting down", nil)
	case expired.Load():
		reason = wsClosedExpired
		w.closeConn(ws, CloseTokenExpired, "token expired", nil)
	case errors.Is(readErr, fws.ErrReadLimit):
		// The library has sent 1009 (message too big).
		reason = wsClosedError
		w.s.cfg.Logger.Debug("ingest: websocket message too large", "request_id", sess.rid,
			"topic", sess.enc.topic.Name, "limit", w.s.cfg.MaxBodyBytes)
	}
	cut(ws)
}

// readInterrupter ends a connection's pending read from other goroutines (shutdown,
// token expiry), but only while its handler runs: fasthttp recycles the connection
// once the handler returns, and a late SetReadDeadline would touch a released one.
type readInterrupter struct {
	mu       sync.Mutex
	ws       *fws.Conn
	released bool
}

func (r *readInterrupter) interrupt() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.released {
		_ = r.ws.SetReadDeadline(time.Now())
	}
}

// release makes interrupt a no-op; the handler calls it before returning.
func (r *readInterrupter) release() {
	r.mu.Lock()
	r.released = true
	r.mu.Unlock()
}

// ingestWriter writes the answers of pending messages in order, freeing a slot per
// answer, and pings the client. After a failed write it closes the connection (which
// ends the reader) and only drains.
func (w *WebSockets) ingestWriter(ws *fws.Conn, pending <-chan *wsPending, slots <-chan struct{}, written chan<- struct{}) {
	defer close(written)
	ping := time.NewTicker(w.o.PingInterval)
	defer ping.Stop()
	broken := false
	for {
		select {
		case p, ok := <-pending:
			if !ok {
				return
			}
			frame := <-p.done // within AckTimeout: Server.produce guarantees it
			if !broken && w.write(ws, frame) != nil {
				broken = true
				cut(ws)
			}
			<-slots
		case <-ping.C:
			if !broken && ws.WriteControl(fws.PingMessage, nil, time.Now().Add(w.o.WriteTimeout)) != nil {
				broken = true
				cut(ws)
			}
		}
	}
}

// ingestMessage validates one message and, if valid, produces its records in the
// background. The returned pending receives the answer frame.
func (w *WebSockets) ingestMessage(sess *ingestSession, seq int64, mt int, data []byte) *wsPending {
	s := w.s
	p := &wsPending{done: make(chan []byte, 1)}
	topic := sess.enc.topic.Name
	if mt != fws.TextMessage {
		if lerr, retry := sess.quota.take(messageCost(0)); lerr != nil {
			p.done <- errorFrame(seq, lerr.problem, retry)
			return p
		}
		s.reject(topic, reasonContentType, 0)
		p.done <- errorFrame(seq, newRequestError(fiber.StatusUnsupportedMediaType, ProblemUnsupportedMediaType,
			reasonContentType, "send events as text messages holding a JSON object or array").problem, 0)
		return p
	}
	recs, ids, n, rerr := s.messageRecords(sess, data, s.cfg.Now())
	// Counted like a request, before its validity matters: the rate limits come first.
	if lerr, retry := sess.quota.take(messageCost(n)); lerr != nil {
		if lerr.reason != "" {
			s.reject(topic, lerr.reason, n)
		}
		p.done <- errorFrame(seq, lerr.problem, retry)
		return p
	}
	if rerr == nil {
		rerr = checkRecordSizes(recs, sess.enc.topic.MaxMessageBytes)
	}
	if rerr != nil {
		s.reject(topic, rerr.reason, n)
		p.done <- errorFrame(seq, rerr.problem, 0)
		return p
	}
	go func() {
		start := time.Now()
		// Not tied to the connection: a client that leaves does not unwrite anything,
		// and shutdown waits for the answer.
		err := s.produce(context.Background(), recs)
		s.metrics.produceDuration.WithLabelValues(topic).Observe(time.Since(start).Seconds())
		if err != nil {
			s.cfg.Logger.Warn("ingest: produce failed", "request_id", sess.rid, "seq", seq, "topic", topic,
				"events", len(recs), "err", err)
			e := produceError(err, ids) // as for POST: only transient failures are worth a retry
			s.reject(topic, e.reason, len(recs))
			retry := 0
			if e.retryAfter {
				retry = 1
			}
			p.done <- errorFrame(seq, e.problem, retry)
			return
		}
		s.metrics.events.WithLabelValues(topic, "accepted").Add(float64(len(recs)))
		s.cfg.Logger.Debug("ingest: accepted", "request_id", sess.rid, "seq", seq, "topic", topic,
			"events", len(recs), "event_ids", firstIDs(ids, 10))
		p.done <- frameJSON(WSAck{Seq: seq, Accepted: len(recs), EventIDs: ids})
	}()
	return p
}

// messageRecords validates one message (an event object or an array of them) exactly
// as POST validates a JSON body, all or nothing, and builds its records. Failures are
// *requestError with the number of events the message held.
func (s *Server) messageRecords(sess *ingestSession, data []byte, recv time.Time) ([]*kgo.Record, []string, int, *requestError) {
	enc := sess.enc
	b, rerr := decodeBody(formatJSON, data)
	if rerr != nil {
		return nil, nil, 0, rerr
	}
	errs := make([]ProblemError, 0, len(b.problems))
	for _, p := range b.problems {
		errs = append(errs, ProblemError{Index: p.index, Field: p.field, Message: p.message})
	}
	invalid := 0
	for _, ev := range b.events {
		if ev == nil {
			invalid++ // listed in b.problems
		}
	}
	recs := make([]*kgo.Record, 0, len(b.events))
	ids := make([]string, 0, len(b.events))
	ts := ingestTS(recv)
	for i, ev := range b.events {
		if ev == nil {
			continue // listed in b.problems
		}
		rec, id, err := enc.record(ev, "", recv, ts)
		if err != nil {
			var ve *schema.ValidationError
			if !errors.As(err, &ve) {
				s.cfg.Logger.Error("ingest: build record", "topic", enc.topic.Name, "request_id", sess.rid, "err", err)
				return nil, nil, len(b.events), newRequestError(fiber.StatusInternalServerError, "about:blank", "",
					"the event could not be encoded")
			}
			invalid++
			for _, f := range ve.Fields {
				errs = append(errs, ProblemError{Index: i, Field: f.Field, Message: f.Message})
			}
			if len(ve.Fields) == 0 {
				errs = append(errs, ProblemError{Index: i, Message: ve.Error()})
			}
			continue
		}
		rec.Headers = append(rec.Headers, sess.extra...)
		recs = append(recs, rec)
		ids = append(ids, id)
	}
	if invalid > 0 {
		slices.SortStableFunc(errs, func(a, b ProblemError) int { return cmp.Compare(a.Index, b.Index) })
		return nil, nil, len(b.events), errInvalidEvents(errs, invalid, len(b.events))
	}
	return recs, ids, len(recs), nil
}

// errorFrame is the WSError frame of message seq; retryAfter in seconds, 0: none.
func errorFrame(seq int64, p Problem, retryAfter int) []byte {
	return frameJSON(WSError{Seq: seq, Error: p, RetryAfter: retryAfter})
}

// frameJSON encodes a frame; the frame types always encode.
func frameJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"error":{"type":"about:blank","title":"Internal Server Error","status":500}}`)
	}
	return b
}
