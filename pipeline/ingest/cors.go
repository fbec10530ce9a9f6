package ingest

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
)

// DefaultCORSMaxAge is how long browsers may cache a preflight answer when
// CORSConfig.MaxAge is zero.
const DefaultCORSMaxAge = 10 * time.Minute

// corsExposeHeaders are the response headers scripts from an allowed origin may read.
var corsExposeHeaders = []string{
	fiber.HeaderRetryAfter, HeaderRateLimitLimit, HeaderRateLimitRemaining, HeaderRateLimitReset,
	HeaderRequestID, fiber.HeaderWWWAuthenticate,
}

// CORSConfig lets browser scripts from other origins call the API. The zero value allows
// no cross-origin calls (no CORS headers are sent; preflights answer 405).
type CORSConfig struct {
	// AllowOrigins lists the origins allowed: "https://app.example.com",
	// "http://localhost:3000", "https://*.example.com" (any subdomain), or "*" alone
	// (any origin, never with AllowCredentials). Scheme and host only: no path.
	AllowOrigins []string
	// AllowCredentials lets browsers send cookies and client certificates along and
	// read the answers. Requires explicit origins.
	AllowCredentials bool
	// MaxAge is how long a preflight answer may be cached. Default 10m.
	//
	// Preflights are answered for GET, HEAD and POST, and allow the request headers they
	// ask for (the API reads Authorization, Content-Type, Idempotency-Key, X-Request-Id,
	// ce-* and X-Sluice-Header-*); answers expose Retry-After, RateLimit-*, X-Request-Id
	// and WWW-Authenticate.
	MaxAge time.Duration
}

// validate reports the first problem in c, naming the field.
func (c CORSConfig) validate() error {
	for _, o := range c.AllowOrigins {
		if o == "*" {
			if len(c.AllowOrigins) > 1 {
				return errors.New(`allow_origins: "*" must be the only origin`)
			}
			if c.AllowCredentials {
				return errors.New(`allow_origins: "*" is not allowed with allow_credentials: list the origins`)
			}
			continue
		}
		if err := checkOrigin(o); err != nil {
			return fmt.Errorf("allow_origins: %w", err)
		}
	}
	switch {
	case c.AllowCredentials && len(c.AllowOrigins) == 0:
		return errors.New("allow_credentials: needs allow_origins")
	case c.MaxAge < 0:
		return fmt.Errorf("max_age: must be >= 0 (got %s)", c.MaxAge)
	}
	return nil
}

// checkOrigin reports whether o is an origin an allowlist may hold: http or https,
// a host (optionally "*." and a domain for any subdomain) and port, nothing else.
func checkOrigin(o string) error {
	bad := func(why string) error { return fmt.Errorf("%q: %s", o, why) }
	plain := strings.Replace(o, "://*.", "://", 1)
	u, err := url.Parse(plain)
	switch {
	case err != nil:
		return bad("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("must start with http:// or https://")
	case u.Host == "" || strings.Contains(u.Host, "*"):
		return bad("must name a host")
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return bad("must be scheme://host[:port] only, without path, query or user")
	}
	return nil
}

// newCORS returns the CORS middleware of c (validated), or nil when no origin is allowed.
func newCORS(c CORSConfig) (h fiber.Handler, err error) {
	if len(c.AllowOrigins) == 0 {
		return nil, nil
	}
	maxAge := c.MaxAge
	if maxAge == 0 {
		maxAge = DefaultCORSMaxAge
	}
	origins := make([]string, len(c.AllowOrigins))
	for i, o := range c.AllowOrigins {
		origins[i] = strings.TrimSuffix(o, "/")
	}
	defer func() {
		// cors.New panics on a configuration it refuses; validate should have caught it.
		if r := recover(); r != nil {
			h, err = nil, fmt.Errorf("ingest: cors: %v", r)
		}
	}()
	return cors.New(cors.Config{
		AllowOrigins:     strings.Join(origins, ","),
		AllowMethods:     strings.Join([]string{fiber.MethodGet, fiber.MethodHead, fiber.MethodPost}, ","),
		AllowCredentials: c.AllowCredentials,
		ExposeHeaders:    strings.Join(corsExposeHeaders, ","),
		MaxAge:           int((maxAge + time.Second - 1) / time.Second),
	}), nil
}
