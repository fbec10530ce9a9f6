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
	"net/http"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

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
