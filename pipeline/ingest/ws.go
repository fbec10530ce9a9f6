package ingest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline/fanout"
)

// Routes of the WebSocket API.
const (
	routeStream   = "/api/v1/stream/:topic"
	routeIngestWS = "/api/v1/ingest/:topic"
)

// WebSocket close codes. Besides these the server uses RFC 6455's 1000 (normal), 1001
// (server shutting down), 1009 (an ingest message larger than Config.MaxBodyBytes, or
// a stream client sending more than 4 KiB) and 1011 (the stream's consumer failed).
const (
	// CloseTokenExpired closes a connection whose bearer token expired: at the moment
	// HTTP requests with it start getting 401 (JWTLeeway after its exp claim). It is
	// RFC 6455's 1008 (policy violation). The answers of the ingest messages read
	// before are sent first; a message read after is not written. Reconnect with a
	// fresh token.
	CloseTokenExpired = fws.ClosePolicyViolation
	// CloseSlowConsumer closes a stream whose client fell behind: a record had waited
	// for it longer than WSOptions.StreamMaxLag, or the records waiting for it outgrew
	// WSOptions.SendBufferBytes, and the server dropped it rather than hold up other
	// clients or grow without bound. The records it had not received yet are discarded.
	// Reconnect to resume from the live end; read faster or filter (?filter=) to avoid
	// it.
	CloseSlowConsumer = 4008
)

// Defaults of WSOptions.
const (
	// DefaultWSMaxInFlight is the default number of ingest messages of one connection
	// that may await their answer.
	DefaultWSMaxInFlight = 64
	// DefaultWSSendBufferBytes is the default bound on the stream records waiting for
	// one client, in bytes (fanout.DefaultBufferBytes, 32 MiB).
	DefaultWSSendBufferBytes = fanout.DefaultBufferBytes
	// DefaultWSStreamMaxLag is the default time a stream record may wait for its client
	// (fanout.DefaultMaxLag, 30s).
	DefaultWSStreamMaxLag = fanout.DefaultMaxLag
	// DefaultWSPingInterval is the default interval of server pings, which keep idle
	// connections alive through proxies and load balancers.
	DefaultWSPingInterval = 30 * time.Second
	// DefaultWSWriteTimeout is the default bound on writing one frame to a client.
	DefaultWSWriteTimeout = 10 * time.Second
)

const (
	// wsHandshakeTimeout bounds the time between answering a stream handshake and the
	// connection handler taking over its subscription.
	wsHandshakeTimeout = 10 * time.Second
	// wsCloseGrace is how long the server waits for the client's close frame after
	// sending its own.
	wsCloseGrace = 2 * time.Second
	// wsStreamReadLimit bounds a message a stream client sends (it should send none).
	wsStreamReadLimit = 4 << 10
	// localWSSession is the Locals key handing the handshake's state to the connection
	// handler (contrib/websocket copies string keys only).
	localWSSession = "sluice-ws-session"
	// bearerSubprotocol marks a token in Sec-WebSocket-Protocol: "bearer, <token>".
	bearerSubprotocol = "bearer"
)

// StreamHub is the source of live records for GET /api/v1/stream/{topic};
// *fanout.Hub is the implementation.
type StreamHub interface {
	// Subscribe follows topic, dropping the subscription when it falls behind lim,
	// until stop is called or ctx ends; see fanout.Hub.Subscribe.
	Subscribe(ctx context.Context, topic string, lim fanout.Limits) (<-chan fanout.Message, func(), error)
}

var _ StreamHub = (*fanout.Hub)(nil)

// WSOptions configures the WebSocket routes. Zero fields take the documented defaults.
type WSOptions struct {
	// Hub provides the records of GET /api/v1/stream/{topic}. Nil: the stream route is
	// not registered.
	Hub StreamHub
	// AllowStream reports whether a topic other than a configured topic's clean topic
	// ("<topic>.clean", always allowed) may be streamed, e.g. the agg.<name> topics.
	// Nil: none.
	AllowStream func(topic string) bool
	// Authorize is called before the upgrade with the scope the route needs:
	// "events:read" for a stream, "events:write:<topic>" for ingest. Its error answers the
	// handshake (a *requestError or *fiber.Error becomes its problem). A token sent as
	// "Sec-WebSocket-Protocol: bearer, <token>" (browsers cannot set headers) is moved
	// to the Authorization header first. Nil: the routes are open.
	Authorize func(c *fiber.Ctx, scope string) error
	// MaxInFlight bounds the ingest messages of one connection read but not yet
	// answered; at the limit the server stops reading the socket (backpressure).
	// Default 64.
	MaxInFlight int
	// SendBufferBytes bounds the stream records waiting for one client (their key,
	// value and headers, plus 256 bytes each); a client that lets more wait is closed
	// with CloseSlowConsumer. It is sized in bytes, not records, so that a reader that
	// keeps up survives a burst such as one 10,000-event POST. Default 32 MiB.
	SendBufferBytes int64
	// StreamMaxLag is how long a stream record may wait for its client: a client that
	// has fallen behind for longer is closed with CloseSlowConsumer (checked when a
	// record arrives). Default 30s.
	StreamMaxLag time.Duration
	// PingInterval is the interval of server pings. Default 30s.
	PingInterval time.Duration
	// WriteTimeout bounds writing one frame; a client that does not take it in time is
	// disconnected. Default 10s.
	WriteTimeout time.Duration
	// Origins are the allowed Origin header values of a handshake. Empty: any origin
	// (clients authenticate with tokens, not cookies, so other sites gain nothing).
	Origins []string
	// AfterFunc runs f after d and returns a func that cancels it, as time.AfterFunc
	// does; it times the close of connections whose token expires, together with
	// Config.Now (a fake clock in tests provides both). Default time.AfterFunc.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
}

func (o WSOptions) withDefaults() WSOptions {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultWSMaxInFlight
	}
	if o.SendBufferBytes <= 0 {
		o.SendBufferBytes = DefaultWSSendBufferBytes
	}
	if o.StreamMaxLag <= 0 {
		o.StreamMaxLag = DefaultWSStreamMaxLag
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultWSPingInterval
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWSWriteTimeout
	}
	if o.AfterFunc == nil {
		o.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	return o
}

// WebSockets are the open WebSocket connections of a Server. fasthttp forgets a
// connection once it is upgraded, so Server.Shutdown does not wait for them: call
// WebSockets.Shutdown first.
type WebSockets struct {
	s      *Server
	o      WSOptions
	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc
	open   *prometheus.GaugeVec
	closed *prometheus.CounterVec

	mu      sync.Mutex
	closing bool
	conns   map[*fws.Conn]struct{}
	wg      sync.WaitGroup
}

// RegisterWebSockets adds GET /api/v1/stream/:topic (when o.Hub is set) and
// GET /api/v1/ingest/:topic to r, usually s.App(). Requests that are not WebSocket
// handshakes answer 426. Call it before serving, and WebSockets.Shutdown before
// Server.Shutdown.
func (s *Server) RegisterWebSockets(r fiber.Router, o WSOptions) *WebSockets {
	ctx, cancel := context.WithCancel(context.Background())
	w := &WebSockets{s: s, o: o.withDefaults(), ctx: ctx, cancel: cancel, conns: map[*fws.Conn]struct{}{}}
	w.registerMetrics()
	cfg := websocket.Config{
		HandshakeTimeout: wsHandshakeTimeout,
		Subprotocols:     []string{bearerSubprotocol},
		Origins:          w.o.Origins,
		RecoverHandler:   w.recoverConn,
	}
	if w.o.Hub != nil {
		upgrade := websocket.New(w.serveStream, cfg)
		r.Get(routeStream, w.handshake(func(*fiber.Ctx) string { return ScopeEventsRead },
			func(c *fiber.Ctx) error { return w.streamHandshake(c, upgrade) })...)
		s.routes[routeStream] = true
	}
	upgrade := websocket.New(w.serveIngest, cfg)
	r.Get(routeIngestWS, w.handshake(func(c *fiber.Ctx) string { return ScopeEventsWrite + ":" + c.Params("topic") },
		func(c *fiber.Ctx) error { return w.ingestHandshake(c, upgrade) })...)
	s.routes[routeIngestWS] = true
	return w
}

// handshake is the handler chain of a WebSocket handshake, the HTTP API's (Server.api)
// with Authorize as authentication and scope check: the per-IP rate limit (before the
// token costs a signature check), Authorize with the route's scope, the per-principal
// rate limit, then h. A handshake counts as one request against both limits.
func (w *WebSockets) handshake(scope func(*fiber.Ctx) string, h fiber.Handler) []fiber.Handler {
	authorize := func(c *fiber.Ctx) error {
		if err := w.authorize(c, scope(c)); err != nil {
			return err
		}
		return c.Next()
	}
	chain := make([]fiber.Handler, 0, 4)
	for _, m := range []fiber.Handler{w.s.limits.byIP, authorize, w.s.limits.byPrincipal} {
		if m != nil {
			chain = append(chain, m)
		}
	}
	return append(chain, h)
}

// Shutdown closes every WebSocket connection with 1001 (going away): a stream at once,
// an ingest connection after answering the messages it has read (so the producer must
// still be open). New handshakes are refused. It waits until every connection is
// closed or ctx ends; then it cuts the remaining connections and returns ctx's error.
func (w *WebSockets) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.cancel()
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		w.mu.Lock()
		for c := range w.conns {
			cut(c)
		}
		w.mu.Unlock()
		return fmt.Errorf("ingest: websocket shutdown: %w", ctx.Err())
	}
}

// enter registers an upgraded connection; false after Shutdown began.
func (w *WebSockets) enter(c *fws.Conn, route string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing {
		return false
	}
	w.wg.Add(1)
	w.conns[c] = struct{}{}
	w.open.WithLabelValues(route).Inc()
	return true
}

// leave unregisters a connection that enter registered, counting why it closed.
func (w *WebSockets) leave(c *fws.Conn, route, reason string) {
	w.mu.Lock()
	delete(w.conns, c)
	w.mu.Unlock()
	w.open.WithLabelValues(route).Dec()
	w.closed.WithLabelValues(route, reason).Inc()
	w.wg.Done()
}

// Reasons a WebSocket connection closed, the reason label of
// sluice_websocket_closed_total.
const (
	wsClosedClient   = "client"        // the client closed or went away
	wsClosedShutdown = "shutdown"      // server shutdown
	wsClosedSlow     = "slow_consumer" // stream buffer overflow
	wsClosedExpired  = "token_expired" // the bearer token expired
	wsClosedError    = "error"         // write failure, read limit, consumer failure
)

func (w *WebSockets) registerMetrics() {
	w.open = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_websocket_connections",
		Help: "Open WebSocket connections by route pattern.",
	}, []string{"route"})
	w.closed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_websocket_closed_total",
		Help: "Closed WebSocket connections by route pattern and reason (client, shutdown, slow_consumer, token_expired, error).",
	}, []string{"route", "reason"})
	var err error
	if w.open, err = register(w.s.cfg.Registerer, w.open); err != nil {
		w.s.cfg.Logger.Error("ingest: websocket metrics", "err", err)
	}
	if w.closed, err = register(w.s.cfg.Registerer, w.closed); err != nil {
		w.s.cfg.Logger.Error("ingest: websocket metrics", "err", err)
	}
}

// authorize moves a subprotocol token to the Authorization header and calls
// o.Authorize.
func (w *WebSockets) authorize(c *fiber.Ctx, scope string) error {
	if w.o.Authorize == nil {
		return nil
	}
	if c.Get(fiber.HeaderAuthorization) == "" {
		if tok := subprotocolToken(c.Get(fiber.HeaderSecWebSocketProtocol)); tok != "" {
			c.Request().Header.Set(fiber.HeaderAuthorization, "Bearer "+tok)
		}
	}
	return w.o.Authorize(c, scope)
}

// tokenDeadline is when the token of the authorized handshake c stops being accepted
// (JWTLeeway after its exp), or zero without one.
func tokenDeadline(c *fiber.Ctx) time.Time {
	p, ok := PrincipalOf(c)
	if !ok || p.Expires.IsZero() {
		return time.Time{}
	}
	return p.Expires.Add(JWTLeeway)
}

// expired reports whether a token with deadline (zero: none) is no longer accepted.
func (w *WebSockets) expired(deadline time.Time) bool {
	return !deadline.IsZero() && !w.s.cfg.Now().Before(deadline)
}

// watchExpiry calls expire once, when Config.Now reaches deadline (zero: never), timed
// by AfterFunc; a timer that fires early by Config.Now is set again. stop cancels it.
func (w *WebSockets) watchExpiry(deadline time.Time, expire func()) (stop func()) {
	if deadline.IsZero() {
		return func() {}
	}
	var (
		mu      sync.Mutex
		stopped bool
		cancel  func() bool
		arm     func()
	)
	arm = func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		if d := deadline.Sub(w.s.cfg.Now()); d > 0 {
			cancel = w.o.AfterFunc(d, arm)
			mu.Unlock()
			return
		}
		stopped = true
		mu.Unlock()
		expire()
	}
	arm()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		if cancel != nil {
			cancel()
		}
	}
}

// subprotocolToken returns the token of "Sec-WebSocket-Protocol: bearer, <token>": the
// protocol following "bearer" in the list.
func subprotocolToken(h string) string {
	parts := strings.Split(h, ",")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(strings.TrimSpace(parts[i]), bearerSubprotocol) {
			return strings.TrimSpace(parts[i+1])
		}
	}
	return ""
}

// requireUpgrade answers 426 to a request that is not a WebSocket handshake.
func requireUpgrade(c *fiber.Ctx) error {
	if websocket.IsWebSocketUpgrade(c) {
		return nil
	}
	c.Set(fiber.HeaderUpgrade, "websocket")
	c.Set(fiber.HeaderConnection, "Upgrade")
	return newRequestError(fiber.StatusUpgradeRequired, "about:blank", "",
		"this endpoint speaks WebSocket only: send a GET with Connection: Upgrade and Upgrade: websocket")
}

// closeConn sends a close frame, waits up to wsCloseGrace for the client's (gone is
// closed when the reader saw it, or any read error), then closes the connection.
func (w *WebSockets) closeConn(c *fws.Conn, code int, text string, gone <-chan struct{}) {
	err := c.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(code, text), time.Now().Add(w.o.WriteTimeout))
	if err == nil && gone != nil {
		t := time.NewTimer(wsCloseGrace)
		select {
		case <-gone:
		case <-t.C:
		}
		t.Stop()
	}
	cut(c)
}

// recoverConn is the connection handlers' panic handler: log and close with 1011.
func (w *WebSockets) recoverConn(c *websocket.Conn) {
	r := recover()
	if r == nil {
		return
	}
	w.s.cfg.Logger.Error("ingest: websocket handler panic", "err", fmt.Sprint(r))
	if c.Conn != nil {
		_ = c.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseInternalServerErr, ""),
			time.Now().Add(time.Second))
	}
}

// errStreamUnavailable is the 503 of a stream that cannot be subscribed to.
func errStreamUnavailable(topic string) *requestError {
	e := newRequestError(fiber.StatusServiceUnavailable, ProblemUnavailable, "",
		fmt.Sprintf("the records of %q cannot be read right now; retry later", topic))
	e.retryAfter = true
	return e
}

// cut ends a connection's I/O at once: pending and future reads and writes fail, which
// ends its handler, after which fasthttp closes it. (Conn.Close cannot: fasthttp's
// hijacked connection ignores Close and closes the socket when the handler returns.)
func cut(c *fws.Conn) {
	_ = c.NetConn().SetDeadline(time.Now())
}
