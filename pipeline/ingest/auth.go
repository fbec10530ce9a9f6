package ingest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// Scopes a token may carry, in the "scope" claim (a space-separated string) or the "scp"
// claim (an array of strings, or a space-separated string). A scope with a ":<topic>"
// suffix, e.g. "events:write:purchases", grants the same for that one topic.
const (
	// ScopeEventsWrite allows POST /api/v1/events/{topic} (and the WebSocket ingest).
	ScopeEventsWrite = "events:write"
	// ScopeEventsRead allows GET /api/v1/stream/{topic}.
	ScopeEventsRead = "events:read"
)

// JWTLeeway is the clock skew allowed when checking a token's exp and nbf claims.
const JWTLeeway = 30 * time.Second

// MinHS256SecretBytes is the shortest HS256 secret accepted: RFC 7518 section 3.2 asks
// for a key at least as long as the hash output (256 bits).
const MinHS256SecretBytes = 32

// Problem types of authentication failures.
const (
	// ProblemUnauthorized: 401, the bearer token is missing or invalid (see the
	// WWW-Authenticate header).
	ProblemUnauthorized = "urn:sluice:problem:unauthorized"
	// ProblemForbidden: 403, the token is valid but lacks the scope the route needs.
	ProblemForbidden = "urn:sluice:problem:forbidden"
)

const (
	// authRealm opens every WWW-Authenticate challenge.
	authRealm = `Bearer realm="sluice"`
	// maxBearerTokenBytes bounds the token looked at; fasthttp's header limit is lower.
	maxBearerTokenBytes = 16 << 10
	// jwksTimeout bounds one fetch of the JWKS document.
	jwksTimeout = 10 * time.Second
	// jwksRefreshInterval is how often the JWKS is fetched again (key rotation); a
	// token with an unknown kid also triggers a fetch, at most every jwksUnknownKID.
	jwksRefreshInterval = 15 * time.Minute
	jwksUnknownKID      = 5 * time.Minute
)

// AuthConfig configures JWT bearer authentication of the API routes (POST
// /api/v1/events/{topic}, GET /api/v1/topics). /healthz, /readyz and /metrics are always
// open.
//
// Set exactly one of HS256Secret and JWKSURL to turn authentication on, or Disabled to
// turn it off. The zero value (nothing set) also leaves authentication off, for backward
// compatibility, but New logs a warning; commands that serve real traffic should demand
// one of the three.
type AuthConfig struct {
	// Disabled turns authentication off on purpose; it must not be combined with the
	// other fields.
	Disabled bool
	// HS256Secret verifies HS256-signed tokens; at least 32 bytes. Only HS256 is
	// accepted then.
	HS256Secret []byte
	// JWKSURL is the https URL of a JSON Web Key Set (plain http only to a loopback
	// host); tokens must be RS256 (RSA key of 2048 bits or more) or ES256 (P-256) and
	// are checked against its keys. New fetches it once and fails when it cannot; it is
	// fetched again every 15 minutes, and at most every 5 minutes for an unknown kid.
	JWKSURL string
	// Issuer, if set, must equal the token's iss claim.
	Issuer string
	// Audience, if set, must be one of the token's aud values.
	Audience string
}

// configured reports whether a key to verify tokens with is set.
func (a AuthConfig) configured() bool { return len(a.HS256Secret) > 0 || a.JWKSURL != "" }

// validate reports the first inconsistency in a, naming the field.
func (a AuthConfig) validate() error {
	switch {
	case a.Disabled && (a.configured() || a.Issuer != "" || a.Audience != ""):
		return errors.New("disabled: must not be combined with hs256_secret, jwks_url, issuer or audience")
	case len(a.HS256Secret) > 0 && a.JWKSURL != "":
		return errors.New("hs256_secret, jwks_url: set one, not both")
	case len(a.HS256Secret) > 0 && len(a.HS256Secret) < MinHS256SecretBytes:
		return fmt.Errorf("hs256_secret: must be at least %d bytes (got %d)", MinHS256SecretBytes, len(a.HS256Secret))
	case !a.configured() && (a.Issuer != "" || a.Audience != ""):
		return errors.New("issuer, audience: need hs256_secret or jwks_url")
	}
	if a.JWKSURL != "" {
		if err := checkJWKSURL(a.JWKSURL); err != nil {
			return fmt.Errorf("jwks_url: %w", err)
		}
	}
	return nil
}

// checkJWKSURL accepts https URLs, and http URLs of loopback hosts (tests, sidecars):
// keys fetched over plain http from elsewhere could be swapped by anyone on the path.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", err)
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("must be an https:// URL with a host (got %q)", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("must be an https:// URL (http:// only for a loopback host), got %q", raw)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Principal is the authenticated caller of a request.
type Principal struct {
	// Subject is the token's sub claim (may be empty).
	Subject string
	// Scopes are the scopes of the scope and scp claims together.
	Scopes []string
	// Expires is the token's exp claim. Requests are accepted until JWTLeeway after it;
	// a WebSocket connection is closed then (1008, policy violation).
	Expires time.Time
}

// HasScope reports whether p carries scope exactly.
func (p Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// CanWrite reports whether p may post events to topic: scope events:write or
// events:write:<topic>.
func (p Principal) CanWrite(topic string) bool {
	return p.HasScope(ScopeEventsWrite) || (topic != "" && p.HasScope(ScopeEventsWrite+":"+topic))
}

// CanRead reports whether p may stream topic: scope events:read or events:read:<topic>.
func (p Principal) CanRead(topic string) bool {
	return p.HasScope(ScopeEventsRead) || (topic != "" && p.HasScope(ScopeEventsRead+":"+topic))
}

type principalKey struct{}

// PrincipalOf returns the principal a request authenticated as. ok is false when
// authentication is off or the route is open.
func PrincipalOf(c *fiber.Ctx) (p Principal, ok bool) {
	p, ok = c.Locals(principalKey{}).(Principal)
	return p, ok
}

// claims are the token claims Sluice reads.
type claims struct {
	jwt.RegisteredClaims
	Scope scopeClaim `json:"scope,omitempty"`
	Scp   scopeClaim `json:"scp,omitempty"`
}

// scopeClaim reads a scope claim written as a space-separated string or as an array of
// strings (IdPs differ).
type scopeClaim []string

// UnmarshalJSON accepts null, "a b" and ["a", "b"].
func (s *scopeClaim) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		*s = strings.Fields(str)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("scope: want a string or an array of strings: %w", err)
	}
	*s = list
	return nil
}

// authenticator checks bearer tokens. With a nil parser authentication is off.
type authenticator struct {
	parser *jwt.Parser
	// keyfunc returns the key lookup for one request.
	keyfunc func(ctx context.Context) jwt.Keyfunc
	stop    context.CancelFunc
	logger  *slog.Logger
}

// newAuthenticator builds the token checker of cfg (already validated). With a JWKS URL
// it fetches the key set and keeps refreshing it until close.
func newAuthenticator(cfg AuthConfig, now func() time.Time, logger *slog.Logger) (*authenticator, error) {
	a := &authenticator{stop: func() {}, logger: logger}
	switch {
	case cfg.Disabled:
		logger.Warn("ingest: authentication disabled: any client may post events")
		return a, nil
	case !cfg.configured():
		logger.Warn("ingest: no JWT HS256 secret or JWKS URL configured: authentication is OFF; any client may post events")
		return a, nil
	}
	opts := []jwt.ParserOption{jwt.WithLeeway(JWTLeeway), jwt.WithTimeFunc(now), jwt.WithExpirationRequired()}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if len(cfg.HS256Secret) > 0 {
		secret := bytes.Clone(cfg.HS256Secret)
		opts = append(opts, jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}))
		a.keyfunc = func(context.Context) jwt.Keyfunc {
			return func(t *jwt.Token) (any, error) {
				if t.Method != jwt.SigningMethodHS256 {
					return nil, fmt.Errorf("signing method %s not accepted", t.Method.Alg())
				}
				return secret, nil
			}
		}
	} else {
		kf, stop, err := fetchJWKS(cfg.JWKSURL, logger)
		if err != nil {
			return nil, err
		}
		opts = append(opts, jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}))
		a.keyfunc = func(ctx context.Context) jwt.Keyfunc { return pinnedKeys(kf.KeyfuncCtx(ctx)) }
		a.stop = stop
	}
	a.parser = jwt.NewParser(opts...)
	return a, nil
}

// fetchJWKS loads the key set at u and starts its refresh; stop ends the refresh.
func fetchJWKS(u string, logger *slog.Logger) (keyfunc.Keyfunc, context.CancelFunc, error) {
	ctx, stop := context.WithCancel(context.Background())
	failFirst := false
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{u}, keyfunc.Override{
		Client:                    &http.Client{Timeout: jwksTimeout},
		HTTPTimeout:               jwksTimeout,
		NoErrorReturnFirstHTTPReq: &failFirst,
		// An unknown kid refetches at once if the limiter allows, else fails at once (its
		// next slot is minutes away, beyond this bound); the fetch itself takes <= 10s.
		RateLimitWaitMax:  jwksTimeout,
		RefreshInterval:   jwksRefreshInterval,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(jwksUnknownKID), 1),
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				logger.ErrorContext(ctx, "ingest: JWKS refresh failed; keeping the previous keys", "url", u, "err", err)
			}
		},
	})
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("ingest: auth: jwks_url %s: %w", u, err)
	}
	keys, err := kf.Storage().KeyReadAll(ctx)
	if err == nil && len(keys) == 0 {
		err = errors.New("the key set has no usable keys")
	}
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("ingest: auth: jwks_url %s: %w", u, err)
	}
	return kf, stop, nil
}

// pinnedKeys wraps a JWKS key lookup so that a key is only used with its own algorithm:
// RS256 needs an RSA key of at least 2048 bits, ES256 a P-256 key. Together with the
// parser's method list this rules out HS256 tokens "signed" with a public key.
func pinnedKeys(inner jwt.Keyfunc) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		key, err := inner(t)
		if err != nil {
			return nil, err
		}
		alg := t.Method.Alg()
		if set, ok := key.(jwt.VerificationKeySet); ok {
			var fit jwt.VerificationKeySet
			for _, k := range set.Keys {
				if keyFits(alg, k) {
					fit.Keys = append(fit.Keys, k)
				}
			}
			if len(fit.Keys) == 0 {
				return nil, fmt.Errorf("no %s key in the key set", alg)
			}
			return fit, nil
		}
		if !keyFits(alg, key) {
			return nil, fmt.Errorf("key %T does not fit algorithm %s", key, alg)
		}
		return key, nil
	}
}

func keyFits(alg string, key any) bool {
	switch alg {
	case jwt.SigningMethodRS256.Alg():
		k, ok := key.(*rsa.PublicKey)
		return ok && k.N.BitLen() >= 2048
	case jwt.SigningMethodES256.Alg():
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P256()
	}
	return false
}

// enabled reports whether requests must carry a valid token.
func (a *authenticator) enabled() bool { return a.parser != nil }

// close stops the JWKS refresh.
func (a *authenticator) close() { a.stop() }

// authenticate verifies the request's bearer token and records its Principal; a missing
// or invalid token answers 401 with a WWW-Authenticate challenge.
func (a *authenticator) authenticate(c *fiber.Ctx) error {
	if !a.enabled() {
		return c.Next()
	}
	p, err := a.verify(c)
	if err != nil {
		return err
	}
	c.Locals(principalKey{}, p)
	return c.Next()
}

// verify returns the principal of the request's bearer token, or a 401 error.
func (a *authenticator) verify(c *fiber.Ctx) (Principal, error) {
	raw, present := bearerToken(c.Get(fiber.HeaderAuthorization))
	if raw == "" {
		if present {
			return Principal{}, unauthorized(c, "the Authorization header is not a well-formed bearer token", true)
		}
		return Principal{}, unauthorized(c, "a bearer token is required: send Authorization: Bearer <JWT>", false)
	}
	p, err := a.principal(c.UserContext(), raw)
	if err != nil {
		a.logger.Debug("ingest: token rejected", "request_id", c.Locals(localRequestID), "err", err)
		return Principal{}, unauthorized(c, tokenProblem(err), true)
	}
	return p, nil
}

// principal verifies token raw and returns its principal, or the parser's error.
func (a *authenticator) principal(ctx context.Context, raw string) (Principal, error) {
	var cl claims
	if _, err := a.parser.ParseWithClaims(raw, &cl, a.keyfunc(ctx)); err != nil {
		return Principal{}, err
	}
	scopes := make([]string, 0, len(cl.Scope)+len(cl.Scp))
	scopes = append(append(scopes, cl.Scope...), cl.Scp...)
	p := Principal{Subject: cl.Subject, Scopes: scopes}
	if cl.ExpiresAt != nil { // required by the parser
		p.Expires = cl.ExpiresAt.Time
	}
	return p, nil
}

// requireWrite answers 403 unless the principal may post to the route's {topic}.
func (a *authenticator) requireWrite(c *fiber.Ctx) error {
	if err := a.authorize(c, ScopeEventsWrite); err != nil {
		return err
	}
	return c.Next()
}

// requireRead answers 403 unless the principal may stream the route's {topic}; for
// GET /api/v1/stream/:topic.
func (a *authenticator) requireRead(c *fiber.Ctx) error {
	if err := a.authorize(c, ScopeEventsRead); err != nil {
		return err
	}
	return c.Next()
}

// Authorize authenticates the request's bearer token, unless a middleware already did,
// and checks that it grants scope: "events:write" or "events:read" for the route's
// {topic} (so "events:write:<topic>" tokens pass too), "events:write:<topic>" or
// "events:read:<topic>" for that topic (so plain "events:write" tokens pass too), any
// other scope exactly. It returns nil when allowed or when authentication is off, else
// a 401 or 403 error that the server answers as a problem with a WWW-Authenticate
// challenge. It is for routes outside the middleware chain, such as the WebSocket
// handshakes (WSOptions.Authorize).
func (s *Server) Authorize(c *fiber.Ctx, scope string) error { return s.auth.authorize(c, scope) }

// authorize is Authorize. It fails closed: with authentication on, a request without
// a valid token is refused.
func (a *authenticator) authorize(c *fiber.Ctx, scope string) error {
	if !a.enabled() {
		return nil
	}
	p, ok := PrincipalOf(c)
	if !ok {
		var err error
		if p, err = a.verify(c); err != nil {
			return err
		}
		c.Locals(principalKey{}, p)
	}
	if grants(p, scope, c.Params("topic")) {
		return nil
	}
	base := scope
	for _, b := range []string{ScopeEventsWrite, ScopeEventsRead} {
		if strings.HasPrefix(scope, b+":") {
			base = b
		}
	}
	c.Set(fiber.HeaderWWWAuthenticate, authRealm+`, error="insufficient_scope", scope="`+scopeToken(base)+`"`)
	return &requestError{problem: Problem{
		Type: ProblemForbidden, Title: http.StatusText(fiber.StatusForbidden), Status: fiber.StatusForbidden,
		Detail: fmt.Sprintf("the token lacks scope %s or %s:<topic> for this topic", base, base),
	}}
}

// grants reports whether p holds scope for topic (see Authorize).
func grants(p Principal, scope, topic string) bool {
	for base, can := range map[string]func(string) bool{ScopeEventsWrite: p.CanWrite, ScopeEventsRead: p.CanRead} {
		switch {
		case scope == base:
			return can(topic)
		case strings.HasPrefix(scope, base+":"):
			return can(strings.TrimPrefix(scope, base+":"))
		}
	}
	return p.HasScope(scope)
}

// scopeToken keeps only the characters RFC 6750 allows in a scope value.
func scopeToken(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// unauthorized is the 401 answer; invalid marks a token that was sent but refused
// (RFC 6750 error="invalid_token").
func unauthorized(c *fiber.Ctx, detail string, invalid bool) error {
	challenge := authRealm
	if invalid {
		challenge += `, error="invalid_token"`
	}
	c.Set(fiber.HeaderWWWAuthenticate, challenge)
	return &requestError{problem: Problem{
		Type: ProblemUnauthorized, Title: http.StatusText(fiber.StatusUnauthorized), Status: fiber.StatusUnauthorized,
		Detail: detail,
	}}
}

// bearerToken returns the token of an "Authorization: Bearer <token>" header (scheme
// case-insensitive). present reports a Bearer header at all; token is empty when the
// header is absent, of another scheme, or not an RFC 6750 b64token.
func bearerToken(h string) (token string, present bool) {
	const scheme = "bearer"
	h = strings.TrimSpace(h)
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	rest := h[len(scheme):]
	if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return "", rest == ""
	}
	tok := strings.TrimSpace(rest)
	if tok == "" || len(tok) > maxBearerTokenBytes {
		return "", true
	}
	for i := 0; i < len(tok); i++ {
		if !isB64TokenByte(tok[i]) {
			return "", true
		}
	}
	return tok, true
}

// isB64TokenByte reports the characters of an RFC 6750 b64token.
func isB64TokenByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("-._~+/=", b) >= 0
}

// tokenProblem explains a token failure with a fixed sentence: the error text of the
// JWT library may quote the token.
func tokenProblem(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the token's signature or signing algorithm is not accepted"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "the token's issuer is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token's audience is not accepted"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the token lacks a required claim (exp, and iss or aud when configured)"
	}
	return "the token is invalid"
}
