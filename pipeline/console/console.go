// Package console is the operator console of Sluice (`sluice console`, and `sluice dev`
// on http://localhost:8083): server-rendered html/template pages with htmx, over the
// Kafka admin API, the processes' /metrics and the dead-letter code of `sluice dlq`.
// docs/CONSOLE.md describes its pages, its security and a dead-letter incident.
package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/fanout"
	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// ScopeAdmin is the scope a token needs to use a console exposed beyond loopback.
const ScopeAdmin = "admin"

// DefaultAddr is where the console listens by default: loopback only.
const DefaultAddr = "127.0.0.1:8083"

// Cookies of the console.
const (
	cookieCSRF  = "sluice_console_csrf"
	cookieToken = "sluice_console_token"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/htmx.min.js assets/console.js assets/console.css
var assetFS embed.FS

// csp is the Content-Security-Policy of every console answer: scripts, styles and
// connections only to the console itself, no inline script, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Options configure a Console.
type Options struct {
	// Pipeline is the pipeline file: its topics, stages and aggregations.
	Pipeline *config.Pipeline
	// Kafka is how to reach the brokers.
	Kafka kafka.Config
	// Registry decodes record values (Avro with the registry's framing).
	Registry *schema.Registry
	// Groups are the consumer groups of the pipeline's stages (service.Groups).
	Groups []string
	// MetricsURLs are the /metrics pages of the processes (processor, ingest, sink):
	// input rates, stream-time lag, watermarks, late events.
	MetricsURLs []string
	// Exposed marks a console listening beyond loopback: every request then needs a
	// JWT with scope admin, checked by Verifier, which must be set.
	Exposed bool
	// Verifier checks tokens (the ingest API's verifier, ingest.NewVerifier).
	Verifier *ingest.Verifier
	// MaxDeadLetters bounds how many records of one dead-letter topic a page reads.
	// Default 10,000.
	MaxDeadLetters int
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Console serves the console's pages. Close releases its Kafka clients.
type Console struct {
	o     Options
	pages map[string]*template.Template
	key   []byte // CSRF token key
	cop   *http.CrossOriginProtection
	adm   *kadm.Client
	hub   *fanout.Hub
	http  *http.Client

	mu       sync.Mutex
	producer *kafka.Producer
	replayed map[string]time.Time // "topic/partition@offset" -> when this console replayed it
	prev     scrape               // the previous metrics scrape, for rates
	// prevOffsets are each group/topic/partition's offsets at the previous refresh, for
	// the per-partition rates.
	prevOffsets map[string]offsetsAt
}

// New returns a console. It does not contact Kafka yet.
func New(o Options) (*Console, error) {
	if o.Pipeline == nil || o.Registry == nil {
		return nil, errors.New("console: Pipeline and Registry are required")
	}
	if o.Exposed && o.Verifier == nil {
		return nil, errors.New("console: listening beyond loopback needs JWT verification (--jwt-hs256-secret or --jwt-jwks-url; tokens need scope admin)")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxDeadLetters <= 0 {
		o.MaxDeadLetters = 10_000
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	kc := o.Kafka
	kc.ClientID = wire.ClientID("console")
	cl, err := kgo.NewClient(kc.Opts()...)
	if err != nil {
		return nil, err
	}
	reg := o.Registry
	c := &Console{
		o: o, pages: pages, key: key, cop: http.NewCrossOriginProtection(),
		prevOffsets: map[string]offsetsAt{},
		adm:         kadm.NewClient(cl),
		hub: fanout.New(kc, func(ctx context.Context, r *kgo.Record) (any, error) {
			v, _, err := reg.Decode(ctx, r.Value)
			if err != nil {
				return nil, err
			}
			return schema.ToJSON(v), nil
		}),
		http:     &http.Client{Timeout: 5 * time.Second},
		replayed: map[string]time.Time{},
	}
	return c, nil
}

// Close stops the console's consumers and producer.
func (c *Console) Close() {
	c.hub.Close()
	c.adm.Close()
	c.mu.Lock()
	p := c.producer
	c.mu.Unlock()
	if p != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	}
}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"join": strings.Join,
		"ts": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05.000Z")
		},
		"dur":      func(d time.Duration) string { return d.Round(time.Second).String() },
		"withCSRF": func(d listData, csrf string) listWithCSRF { return listWithCSRF{d, csrf} },
	}
	pages := map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || base == "shared" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/shared.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// Handler returns the console's HTTP handler.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	assets, _ := fs.Sub(assetFS, "assets")
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/pipeline", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /login", c.getLogin)
	mux.HandleFunc("POST /login", c.postLogin)
	mux.HandleFunc("GET /pipeline", c.getPipeline)
	mux.HandleFunc("GET /pipeline/stats", c.getPipelineStats)
	mux.HandleFunc("GET /dlq", c.getDLQ)
	mux.HandleFunc("GET /dlq/summary", c.getDLQSummary)
	mux.HandleFunc("GET /dlq/list", c.getDLQList)
	mux.HandleFunc("GET /dlq/record", c.getDLQRecord)
	mux.HandleFunc("POST /dlq/replay", c.postReplay)
	mux.HandleFunc("GET /windows", c.getWindows)
	mux.HandleFunc("GET /events", c.getEvents)
	mux.HandleFunc("GET /live", c.getLive)
	return c.secure(mux)
}

// secure wraps every answer: security headers, authentication when exposed, and the
// CSRF check of every state-changing request.
func (c *Console) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if !strings.HasPrefix(r.URL.Path, "/assets/") {
			h.Set("Cache-Control", "no-store")
		}
		if c.o.Exposed && r.URL.Path != "/login" && !strings.HasPrefix(r.URL.Path, "/assets/") {
			if status, msg := c.authenticate(r); status != 0 {
				h.Set("WWW-Authenticate", `Bearer realm="sluice-console", scope="admin"`)
				c.fail(w, r, status, msg)
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := c.checkCSRF(r); err != nil {
				c.fail(w, r, http.StatusForbidden, "CSRF check failed: "+err.Error()+". Reload the page and try again.")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// authenticate returns 0, or the status and message refusing r: a token (bearer header
// or the cookie set by /login) with scope admin is required.
func (c *Console) authenticate(r *http.Request) (int, string) {
	tok := ingest.BearerToken(r.Header.Get("Authorization"))
	if tok == "" {
		if ck, err := r.Cookie(cookieToken); err == nil {
			tok = ck.Value
		}
	}
	if tok == "" {
		return http.StatusUnauthorized, "This console is exposed beyond loopback: a JWT with scope admin is required (Authorization: Bearer, or sign in at /login)."
	}
	p, err := c.o.Verifier.Verify(r.Context(), tok)
	if err != nil {
		return http.StatusUnauthorized, "The token was refused: " + err.Error() + "."
	}
	if !p.HasScope(ScopeAdmin) {
		return http.StatusForbidden, "The token lacks scope admin."
	}
	return 0, ""
}

// csrfToken returns the CSRF token of r's browser, setting its cookie if it has none:
// an HMAC of a random cookie value under the console's key (a synchronizer token
// that a cross-site page can neither read nor compute).
func (c *Console) csrfToken(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if ck, err := r.Cookie(cookieCSRF); err == nil && len(ck.Value) == 64 {
		v = ck.Value
	} else {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		v = hex.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: cookieCSRF, Value: v, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	}
	return c.sign(v)
}

func (c *Console) sign(v string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}

// checkCSRF refuses cross-origin requests (Sec-Fetch-Site / Origin) and requests whose
// csrf form field does not match the browser's cookie.
func (c *Console) checkCSRF(r *http.Request) error {
	if err := c.cop.Check(r); err != nil {
		return errors.New("cross-origin request")
	}
	ck, err := r.Cookie(cookieCSRF)
	if err != nil {
		return errors.New("no CSRF cookie")
	}
	if err := r.ParseForm(); err != nil {
		return errors.New("unreadable form")
	}
	if !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(c.sign(ck.Value))) {
		return errors.New("missing or wrong CSRF token")
	}
	return nil
}

// listWithCSRF is the dead-letter list with the page's CSRF token, for its replay form.
type listWithCSRF struct {
	listData
	CSRF string
}

// page is what every template gets.
type page struct {
	Title string
	Nav   string
	CSRF  string
	Data  any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, name, nav string, data any) {
	c.renderStatus(w, r, http.StatusOK, name, nav, data)
}

func (c *Console) renderStatus(w http.ResponseWriter, r *http.Request, status int, name, nav string, data any) {
	t := c.pages[name]
	p := page{Title: nav, Nav: nav, CSRF: c.csrfToken(w, r), Data: data}
	tmpl := "layout"
	if r.Header.Get("HX-Request") == "true" && t.Lookup("partial") != nil {
		tmpl = "partial"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, tmpl, p); err != nil {
		c.o.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "the console could not render this page; see its log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers status with a message page that carries no data.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.renderStatus(w, r, status, "message", http.StatusText(status), map[string]any{"Status": status, "Message": msg})
}

// IsLoopback reports whether listen address addr accepts connections from this machine
// only: a loopback IP or localhost. An empty host listens everywhere.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Serve serves the console on ln until ctx ends.
func (c *Console) Serve(ctx context.Context, ln net.Listener) error {
	// Requests inherit ctx, so live streams end when it does.
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServiceOptions are the Options of a console for service settings svc (brokers are set
// by the caller in kc): the registry at svc.RegistryURL, the pipeline's groups, and,
// when addr is beyond loopback, the ingest API's JWT settings (svc.API) as verifier.
// Close the returned verifier (if not nil) after the console.
func ServiceOptions(svc config.Service, p *config.Pipeline, kc kafka.Config, groups []string, addr string, metricsURLs []string, log *slog.Logger) (Options, *ingest.Verifier, error) {
	src, err := schema.NewClient(svc.RegistryURL, svc.Registry)
	if err != nil {
		return Options{}, nil, err
	}
	o := Options{Pipeline: p, Kafka: kc, Registry: schema.NewRegistry(src), Groups: groups,
		MetricsURLs: metricsURLs, Exposed: !IsLoopback(addr), Logger: log}
	if !o.Exposed {
		return o, nil, nil
	}
	a := svc.API
	v, err := ingest.NewVerifier(ingest.AuthConfig{HS256Secret: []byte(a.JWTHS256Secret), JWKSURL: a.JWTJWKSURL,
		Issuer: a.JWTIssuer, Audience: a.JWTAudience}, nil, log)
	if err != nil {
		return o, nil, fmt.Errorf("console on %s (beyond loopback) needs tokens with scope admin: %w", addr, err)
	}
	o.Verifier = v
	return o, v, nil
}

// ListenAndServe serves a console with options o on addr until ctx ends; o.Exposed is
// set from addr (IsLoopback). ready, if set, is called with the listening address.
func ListenAndServe(ctx context.Context, addr string, o Options, ready func(addr string)) error {
	o.Exposed = !IsLoopback(addr)
	c, err := New(o)
	if err != nil {
		return err
	}
	defer c.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("console listen %s: %w", addr, err)
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	return c.Serve(ctx, ln)
}

// Start listens on addr at once (so a taken port fails here) and serves a console with
// options o in the background; o.Exposed is set from addr. It returns the address it
// listens on and stop, which ends the console and waits for it. For `sluice dev`.
func Start(ctx context.Context, addr string, o Options) (string, func(), error) {
	o.Exposed = !IsLoopback(addr)
	c, err := New(o)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.Close()
		return "", nil, fmt.Errorf("console listen %s: %w", addr, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Serve(sctx, ln); err != nil {
			o.Logger.Warn("console stopped", "err", err)
		}
	}()
	return ln.Addr().String(), func() {
		cancel()
		<-done
		c.Close()
	}, nil
}
