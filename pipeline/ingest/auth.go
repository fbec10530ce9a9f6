package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
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
