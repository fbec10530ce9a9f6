package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/oklog/ulid/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"
)

// Producer writes records to Kafka. Produce returns nil only when every record was
// acknowledged (acks=all); it must give up when ctx is done. The implementation lives in
// pipeline/kafka.
type Producer interface {
	Produce(ctx context.Context, recs ...*kgo.Record) error
}

// Route patterns, also the values of the route label.
const (
	routeEvents  = "/api/v1/events/:topic"
	routeTopics  = "/api/v1/topics"
	routeHealthz = "/healthz"
	routeReadyz  = "/readyz"
	routeMetrics = "/metrics"
)

// Server is the ingest HTTP API. Create it with New; serve it with Serve, or use App
// directly (tests, embedding).
type Server struct {
	cfg      Config
	producer Producer
	encoders map[string]*Encoder
	catalog  []byte // body of GET /api/v1/topics
	openapi  []byte // body of GET /openapi.json
	metrics  *metrics
	routes   map[string]bool
	app      *fiber.App
	auth     *authenticator
	limits   *rateLimits
	ws       *WebSockets
	// decoders pools the gzip and zstd readers of request bodies (zero value ready).
	decoders decompressors
	// keys remembers the body of each Idempotency-Key (422 on reuse with another).
	keys *idempotencyKeys
	// inflight is the budget of request body bytes (Config.MaxInflightBytes).
	inflight *byteBudget
}

// New validates cfg, applies its defaults, registers the metrics on cfg.Registerer and
// builds the routes. p receives the records of accepted requests.
func New(cfg Config, p Producer) (*Server, error) {
	if p == nil {
		return nil, errors.New("ingest: producer: required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer, cfg.Topics)
	if err != nil {
		return nil, err
	}
	catalog, err := topicCatalog(cfg.Topics)
	if err != nil {
		return nil, err
	}
	doc, err := openAPI(cfg.Topics, cfg.Examples)
	if err != nil {
		return nil, err
	}
	limits, err := newRateLimits(cfg.RateLimit, cfg.Auth.configured(), cfg.Now)
	if err != nil {
		return nil, err
	}
	corsHandler, err := newCORS(cfg.CORS)
	if err != nil {
		return nil, err
	}
	auth, err := newAuthenticator(cfg.Auth, cfg.Now, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		producer: p,
		encoders: make(map[string]*Encoder, len(cfg.Topics)),
		catalog:  catalog,
		openapi:  doc,
		metrics:  m,
		routes: map[string]bool{
			routeEvents: true, routeTopics: true, routeHealthz: true, routeReadyz: true, routeMetrics: true,
			routeOpenAPI: true, routeDocs: true,
		},
		auth:     auth,
		limits:   limits,
		keys:     newIdempotencyKeys(cfg.IdempotencyKeys, cfg.IdempotencyTTL, cfg.Now),
		inflight: &byteBudget{max: cfg.MaxInflightBytes},
	}
	for _, t := range cfg.Topics {
		s.encoders[t.Name] = NewEncoder(t, cfg.Now, cfg.MaxFuture)
	}
	s.app = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ReadTimeout:           cfg.ReadTimeout,
		// Bodies stream: handlers run once the headers and the first byte of a body
		// have arrived (see streamFromFirstByte), so auth, rate limits and Content-Type
		// are checked before a body is buffered; admitBody reads the rest within the
		// in-flight budget and enforces MaxBodyBytes itself.
		StreamRequestBody: true,
		BodyLimit:         math.MaxInt,
		ErrorHandler:      s.serverError,
		JSONEncoder:       json.Marshal,
		JSONDecoder:       json.Unmarshal,
	})
	s.app.Server().HeaderReceived = streamFromFirstByte
	s.app.Use(s.observe)
	if corsHandler != nil {
		s.app.Use(corsHandler) // before auth: preflights carry no token
	}
	s.app.Post(routeEvents, s.api(s.auth.requireWrite, s.admitBody, s.postEvents)...)
	s.app.Get(routeTopics, s.api(nil, s.getTopics)...)
	s.app.Get(routeHealthz, s.healthz)
	s.app.Get(routeReadyz, s.readyz)
	s.app.Get(routeMetrics, s.metricsHandler())
	s.app.Get(routeOpenAPI, s.getOpenAPI)
	s.docsRoutes()
	if wo := cfg.WebSocket; wo.Hub != nil {
		// Without a hub the embedder registers the WebSocket routes itself (tests).
		if wo.Authorize == nil {
			wo.Authorize = s.Authorize
		}
		s.ws = s.RegisterWebSockets(s.app, wo)
	}
	s.guardMethods()
	return s, nil
}

// api returns the handler chain of an API route: the per-IP rate limit, authentication,
// the per-principal rate limit, the scope check (nil: any valid token will do) and hs.
// They all run on the headers alone: a body is read by the handlers in hs (admitBody).
func (s *Server) api(scope fiber.Handler, hs ...fiber.Handler) []fiber.Handler {
	chain := make([]fiber.Handler, 0, 4+len(hs))
	for _, m := range []fiber.Handler{s.limits.byIP, s.auth.authenticate, s.limits.byPrincipal, scope} {
		if m != nil {
			chain = append(chain, m)
		}
	}
	return append(chain, hs...)
}

// guardMethods answers requests with a method fiber does not know (it would answer them
// with a plain-text 400 before any middleware runs) with a 405 problem naming the methods
// the API has: bad input is a 4xx, never a 5xx.
func (s *Server) guardMethods() {
	inner := s.app.Handler()
	methods := s.app.Config().RequestMethods
	s.app.Server().Handler = func(ctx *fasthttp.RequestCtx) {
		m := ctx.Method()
		for _, known := range methods {
			if string(m) == known {
				inner(ctx)
				return
			}
		}
		start := time.Now()
		c := s.app.AcquireCtx(ctx)
		defer s.app.ReleaseCtx(c)
		c.Set(fiber.HeaderAllow, "GET, POST, HEAD, OPTIONS")
		_ = writeProblem(c, blankProblem(fiber.StatusMethodNotAllowed, "unknown request method"), false)
		s.closeIfBodyPending(c)
		s.observeDuration(unmatchedRoute, "OTHER", fiber.StatusMethodNotAllowed, time.Since(start))
	}
}

// App returns the fiber application, e.g. for app.Test in tests.
func (s *Server) App() *fiber.App { return s.app }

// Serve answers requests on ln until Shutdown, within the connection caps
// (Config.MaxConnections, Config.MaxConnectionsPerIP).
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.MaxConnections > 0 || s.cfg.MaxConnectionsPerIP > 0 {
		ln = newConnLimiter(ln, s.cfg.MaxConnections, s.cfg.MaxConnectionsPerIP, s.metrics)
	}
	if err := s.app.Listener(ln); err != nil {
		return fmt.Errorf("ingest: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests to finish;
// when ctx ends first it closes the remaining connections and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.auth.close()
	var wsErr error
	if s.ws != nil {
		wsErr = s.ws.Shutdown(ctx)
	}
	if err := s.app.ShutdownWithContext(ctx); err != nil {
		return errors.Join(wsErr, fmt.Errorf("ingest: shutdown: %w", err))
	}
	return wsErr
}

// observe wraps every request: it turns handler errors and panics into problem
// responses and records the request duration.
func (s *Server) observe(c *fiber.Ctx) (err error) {
	start := time.Now()
	rid := requestID(c.Get(HeaderRequestID))
	c.Locals(localRequestID, rid)
	c.Set(HeaderRequestID, rid)
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Logger.Error("ingest: handler panic", "err", fmt.Sprint(r), "request_id", rid,
				"route", s.routeLabel(c), "stack", string(debug.Stack()))
			c.Response().Reset()
			err = writeProblem(c, blankProblem(fiber.StatusInternalServerError, ""), false)
		}
		s.closeIfBodyPending(c)
		status := c.Response().StatusCode()
		s.observeDuration(s.routeLabel(c), s.methodLabel(c), status, time.Since(start))
		lvl := slog.LevelDebug
		if status >= 500 {
			lvl = slog.LevelWarn
		}
		s.cfg.Logger.Log(c.UserContext(), lvl, "ingest: request", "request_id", rid, "method", s.methodLabel(c),
			"route", s.routeLabel(c), "status", status, "duration", time.Since(start))
	}()
	if err := c.Next(); err != nil {
		return s.writeError(c, err)
	}
	return nil
}

// writeError answers with the problem for a handler error.
func (s *Server) writeError(c *fiber.Ctx, err error) error {
	var re *requestError
	if errors.As(err, &re) {
		return writeProblem(c, re.problem, re.retryAfter)
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return writeProblem(c, blankProblem(fe.Code, fe.Message), false)
	}
	s.cfg.Logger.Error("ingest: request failed", "route", s.routeLabel(c), "request_id", c.Locals(localRequestID), "err", err)
	return writeProblem(c, blankProblem(fiber.StatusInternalServerError, ""), false)
}

// serverError is fiber's ErrorHandler. It sees only failures that happen before the
// routes run (header too large, malformed request; bodies are streamed, so their limit
// is admitBody's 413), so it does the middleware's bookkeeping itself and always
// answers problem+json.
func (s *Server) serverError(c *fiber.Ctx, err error) error {
	status := fiber.StatusInternalServerError
	var fe *fiber.Error
	if errors.As(err, &fe) {
		status = fe.Code
	}
	route := routeOfPath(c.Path())
	p := blankProblem(status, "")
	switch {
	case status == fiber.StatusRequestEntityTooLarge:
		p = Problem{Type: ProblemTooLarge, Title: http.StatusText(status), Status: status,
			Detail: fmt.Sprintf("the body is larger than %d bytes", s.cfg.MaxBodyBytes)}
		// fasthttp forgets the request line when a chunked body overflows; such
		// requests count under "_unknown".
		topic := unknownTopic
		if t := strings.TrimPrefix(c.Path(), "/api/v1/events/"); route == routeEvents && s.encoders[t] != nil {
			topic = s.encoders[t].topic.Name
		}
		s.metrics.rejected.WithLabelValues(topic, reasonTooLarge).Inc()
	case status < fiber.StatusInternalServerError && fe != nil:
		p.Detail = truncate(fe.Message) // fasthttp may quote the raw request
	}
	werr := writeProblem(c, p, false)
	s.closeIfBodyPending(c)
	s.observeDuration(route, normalizeMethod(c.Method()), status, time.Since(c.Context().Time()))
	return werr
}

// closeIfBodyPending closes the connection after the response when the request's body
// was not read (an early 4xx or 503): the rest of it is still on the wire. The close
// lingers, draining up to the declared length (at most the body limit), so that a client
// still sending the body reads the answer rather than a connection reset.
func (s *Server) closeIfBodyPending(c *fiber.Ctx) {
	if bodyPending(c) {
		c.Context().SetConnectionClose()
		n := int64(c.Request().Header.ContentLength())
		if n < 0 || n > s.cfg.MaxBodyBytes {
			n = s.cfg.MaxBodyBytes
		}
		lingerOnClose(c.Context().Conn(), n+lingerSlack)
	}
}

// observeDuration records one request in sluice_http_request_duration_seconds.
func (s *Server) observeDuration(route, method string, status int, d time.Duration) {
	s.metrics.httpDuration.WithLabelValues(route, method, strconv.Itoa(status)).Observe(d.Seconds())
}

// routeLabel is the matched route pattern, or "_unmatched".
func (s *Server) routeLabel(c *fiber.Ctx) string {
	if r := c.Route(); r != nil && s.routes[r.Path] {
		return r.Path
	}
	return unmatchedRoute
}

// methodLabel is the request method from a closed set.
func (s *Server) methodLabel(c *fiber.Ctx) string {
	return normalizeMethod(c.Method())
}

// routeOfPath guesses the route of a request that never reached the router.
func routeOfPath(path string) string {
	switch {
	case strings.HasPrefix(path, "/api/v1/events/"):
		return routeEvents
	case path == routeTopics, path == routeHealthz, path == routeReadyz, path == routeMetrics:
		return path
	}
	return unmatchedRoute
}

// normalizeMethod maps a request method to a constant label value (request strings
// must not become label values: fiber reuses their memory, and clients choose them).
func normalizeMethod(m string) string {
	switch strings.ToUpper(m) {
	case fiber.MethodGet:
		return fiber.MethodGet
	case fiber.MethodHead:
		return fiber.MethodHead
	case fiber.MethodPost:
		return fiber.MethodPost
	case fiber.MethodPut:
		return fiber.MethodPut
	case fiber.MethodPatch:
		return fiber.MethodPatch
	case fiber.MethodDelete:
		return fiber.MethodDelete
	case fiber.MethodOptions:
		return fiber.MethodOptions
	}
	return "OTHER"
}

// HeaderRequestID carries a request's id: taken from the client when it sends a sane one,
// made up otherwise, and echoed in the response. Ingest writes it to every record it
// produces as the sluice-request-id header, so processor logs (a dead letter, say) name
// the request an event came in with.
const HeaderRequestID = "X-Request-Id"

// localRequestID is the fiber.Ctx local holding the request id.
const localRequestID = "request-id"

// requestID returns the client's id if it is 1-128 printable ASCII characters without
// spaces, or a new ULID.
func requestID(client string) string {
	if n := len(client); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n; i++ {
			if client[i] <= ' ' || client[i] > '~' {
				ok = false
				break
			}
		}
		if ok {
			return client
		}
	}
	return ulid.Make().String()
}

// streamFromFirstByte is the server's HeaderReceived hook. A streaming fasthttp reads
// min(body limit, Content-Length, 8 KiB) of a body before it runs the handlers; a body
// limit of 1 for this request makes that read one byte, and fasthttp hands the rest of
// the body to admitBody as a stream (a body past the limit is streamed, not refused).
// So a client that declares 10 MiB and sends its body a byte at a time gets its 401,
// 429, 413 or 415 as soon as its first body byte arrives, and holds no body buffer.
func streamFromFirstByte(*fasthttp.RequestHeader) fasthttp.RequestConfig {
	return fasthttp.RequestConfig{MaxRequestBodySize: 1}
}
