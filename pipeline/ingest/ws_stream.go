package ingest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	fws "github.com/fasthttp/websocket"
	"github.com/goccy/go-json"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/sluicehq/sluice/pipeline/fanout"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// StreamRecord is one text frame of GET /api/v1/stream/{topic}: a live record of the
// topic, in the shape of a line of `sluice consume`.
type StreamRecord struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	// Timestamp is the record timestamp, RFC 3339 in UTC.
	Timestamp string            `json:"timestamp"`
	Key       string            `json:"key"`
	Headers   map[string]string `json:"headers"`
	// Value is the decoded value; when it could not be decoded, the raw value as a
	// string (base64 if it is not UTF-8) and DecodeError says why.
	Value       any    `json:"value"`
	DecodeError string `json:"decode_error,omitempty"`
}

// maxStreamFilters bounds the filter parameters of one stream request.
const maxStreamFilters = 16

// streamSession is a stream handshake's subscription, handed to the connection
// handler. Whoever claims it first owns the subscription: the handler, or the timer
// that ends a subscription whose connection never started.
type streamSession struct {
	topic   string
	filter  streamFilter
	ch      <-chan fanout.Message
	stop    func()
	claimed atomic.Bool
	timer   *time.Timer
	// deadline is when the handshake's token stops being accepted (zero: no token).
	deadline time.Time
}

func (s *streamSession) claim() bool {
	if !s.claimed.CompareAndSwap(false, true) {
		return false
	}
	s.timer.Stop()
	return true
}

// streamHandshake is GET /api/v1/stream/{topic} before the upgrade, once authorized
// (WebSockets.handshake): check the topic and filter, subscribe (so that a failure is
// still an HTTP answer), upgrade.
func (w *WebSockets) streamHandshake(c *fiber.Ctx, upgrade fiber.Handler) error {
	topic := strings.Clone(c.Params("topic"))
	if !w.streamable(topic) {
		return errNoStream(topic)
	}
	filter, rerr := parseStreamFilter(c.Context().QueryArgs().PeekMulti("filter"))
	if rerr != nil {
		return rerr
	}
	if err := w.checkOrigin(c); err != nil {
		return err
	}
	if err := requireUpgrade(c); err != nil {
		return err
	}
	ch, stop, err := w.o.Hub.Subscribe(w.ctx, topic, fanout.Limits{Bytes: w.o.SendBufferBytes, Lag: w.o.StreamMaxLag})
	switch {
	case errors.Is(err, fanout.ErrUnknownTopic):
		return errNoStream(topic)
	case err != nil:
		w.s.cfg.Logger.Warn("ingest: stream subscribe failed", "topic", topic, "request_id", c.Locals(localRequestID), "err", err)
		return errStreamUnavailable(topic)
	}
	sess := &streamSession{topic: topic, filter: filter, ch: ch, stop: stop, deadline: tokenDeadline(c)}
	sess.timer = time.AfterFunc(wsHandshakeTimeout, func() {
		if sess.claimed.CompareAndSwap(false, true) {
			stop()
		}
	})
	c.Locals(localWSSession, sess)
	if err := upgrade(c); err != nil {
		if sess.claim() {
			stop()
		}
		return err
	}
	return nil
}

// serveStream is an upgraded stream connection: it writes the subscription's records
// until the client leaves, is too slow, or the server shuts down.
func (w *WebSockets) serveStream(conn *websocket.Conn) {
	ws := conn.Conn
	sess, _ := conn.Locals(localWSSession).(*streamSession)
	if sess == nil || !sess.claim() {
		w.closeConn(ws, fws.CloseTryAgainLater, "handshake expired", nil)
		return
	}
	if !w.enter(ws, routeStream) {
		sess.stop()
		w.closeConn(ws, fws.CloseGoingAway, "server shutting down", nil)
		return
	}
	reason := wsClosedClient
	defer func() { w.leave(ws, routeStream, reason) }()
	defer sess.stop() // before leave: Shutdown returns with every subscription ended

	// The reader handles pings and the client's close frame; the client has nothing
	// else to say.
	ws.SetReadLimit(wsStreamReadLimit)
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	defer func() {
		cut(ws)
		<-gone
	}()
	expired := make(chan struct{})
	stopExpiry := w.watchExpiry(sess.deadline, func() { close(expired) })
	defer stopExpiry()
	ping := time.NewTicker(w.o.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-expired:
			reason = wsClosedExpired
			w.closeConn(ws, CloseTokenExpired, "token expired", gone)
			return
		case m, ok := <-sess.ch:
			if !ok || errors.Is(m.Err, fanout.ErrClosed) {
				reason = wsClosedShutdown
				w.closeConn(ws, fws.CloseGoingAway, "server shutting down", gone)
				return
			}
			if errors.Is(m.Err, fanout.ErrSlowSubscriber) {
				reason = wsClosedSlow
				w.closeConn(ws, CloseSlowConsumer, "slow consumer: fell behind the live records", gone)
				return
			}
			if m.Err != nil {
				reason = wsClosedError
				w.s.cfg.Logger.Warn("ingest: stream ended", "topic", sess.topic, "err", m.Err)
				w.closeConn(ws, fws.CloseInternalServerErr, "stream failed", gone)
				return
			}
			if w.expired(sess.deadline) { // before the timer fired: not sent either
				reason = wsClosedExpired
				w.closeConn(ws, CloseTokenExpired, "token expired", gone)
				return
			}
			if !sess.filter.match(m.Value) {
				continue
			}
			frame, err := json.Marshal(streamRecordOf(m))
			if err != nil {
				w.s.cfg.Logger.Error("ingest: stream record not encodable", "topic", m.Topic, "partition", m.Partition,
					"offset", m.Offset, "err", err)
				continue
			}
			if err := w.write(ws, frame); err != nil {
				reason = w.writeFailure(gone)
				return
			}
		case <-ping.C:
			if err := ws.WriteControl(fws.PingMessage, nil, time.Now().Add(w.o.WriteTimeout)); err != nil {
				reason = w.writeFailure(gone)
				return
			}
		case <-gone:
			return
		case <-w.ctx.Done():
			reason = wsClosedShutdown
			w.closeConn(ws, fws.CloseGoingAway, "server shutting down", gone)
			return
		}
	}
}

// write sends one text frame within WriteTimeout.
func (w *WebSockets) write(ws *fws.Conn, frame []byte) error {
	if err := ws.SetWriteDeadline(time.Now().Add(w.o.WriteTimeout)); err != nil {
		return err
	}
	return ws.WriteMessage(fws.TextMessage, frame)
}

// writeFailure classifies a failed write: the client left, or it stalled.
func (w *WebSockets) writeFailure(gone <-chan struct{}) string {
	select {
	case <-gone:
		return wsClosedClient
	default:
		return wsClosedError
	}
}

// streamable reports whether topic may be streamed: the clean topic of a configured
// topic, or one AllowStream accepts.
func (w *WebSockets) streamable(topic string) bool {
	if raw, ok := wire.RawOfClean(topic); ok {
		if _, ok := w.s.encoders[raw]; ok {
			return true
		}
	}
	return w.o.AllowStream != nil && w.o.AllowStream(topic)
}

// checkOrigin refuses a handshake from an origin not in Origins (when set).
func (w *WebSockets) checkOrigin(c *fiber.Ctx) error {
	if len(w.o.Origins) == 0 {
		return nil
	}
	origin := c.Get(fiber.HeaderOrigin)
	for _, o := range w.o.Origins {
		if o == origin {
			return nil
		}
	}
	return newRequestError(fiber.StatusForbidden, ProblemForbidden, "", "WebSocket connections from this origin are not allowed")
}

func errNoStream(topic string) *requestError {
	return newRequestError(fiber.StatusNotFound, ProblemUnknownTopic, "",
		fmt.Sprintf("topic %q cannot be streamed; clean topics (<topic>.clean) and aggregate topics (agg.<name>) can", truncate(topic)))
}

// streamRecordOf renders m as a frame.
func streamRecordOf(m fanout.Message) StreamRecord {
	r := StreamRecord{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Timestamp: m.Timestamp.UTC().Format(time.RFC3339Nano), Key: string(m.Key), Headers: m.Headers, Value: m.Value}
	if r.Headers == nil {
		r.Headers = map[string]string{}
	}
	if m.DecodeErr != nil {
		r.DecodeError = m.DecodeErr.Error()
		if utf8.Valid(m.Raw) {
			r.Value = string(m.Raw)
		} else {
			r.Value = base64.StdEncoding.EncodeToString(m.Raw)
		}
	}
	return r
}

// streamFilter keeps the records whose value has every field with exactly the given
// text (?filter=country=DE&filter=device=mobile).
type streamFilter []fieldMatch

type fieldMatch struct{ field, value string }

// parseStreamFilter reads filter parameters of the form field=value.
func parseStreamFilter(params [][]byte) (streamFilter, *requestError) {
	if len(params) > maxStreamFilters {
		return nil, newRequestError(fiber.StatusBadRequest, ProblemInvalid, "",
			fmt.Sprintf("at most %d filter parameters are allowed", maxStreamFilters))
	}
	var f streamFilter
	for _, p := range params {
		field, value, ok := bytes.Cut(p, []byte("="))
		if !ok || len(field) == 0 || !utf8.Valid(p) {
			return nil, newRequestError(fiber.StatusBadRequest, ProblemInvalid, "",
				fmt.Sprintf("filter %q: want field=value, e.g. filter=country=DE", truncate(string(p))))
		}
		f = append(f, fieldMatch{field: string(field), value: string(value)})
	}
	return f, nil
}

// match reports whether value passes every condition. A value that is not an object
// passes only an empty filter.
func (f streamFilter) match(value any) bool {
	if len(f) == 0 {
		return true
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return false
	}
	for _, c := range f {
		v, ok := obj[c.field]
		if !ok || fieldText(v) != c.value {
			return false
		}
	}
	return true
}

// fieldText renders a value as a filter compares it: strings as themselves, times as
// RFC 3339 with milliseconds in UTC, anything else as its JSON text (42, 19.99, true,
// null).
func fieldText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case time.Time:
		return x.UTC().Format(rfc3339Millis)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
