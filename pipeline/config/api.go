package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// MinJWTSecretBytes is the shortest --jwt-hs256-secret accepted (256 bits, RFC 7518
// section 3.2); ingest enforces the same.
const MinJWTSecretBytes = 32

// DefaultRateLimitWindow is the default of --rate-limit-window.
const DefaultRateLimitWindow = time.Minute

// APIConfig holds the flags that protect the ingest HTTP API: JWT authentication, rate
// limits and CORS. The zero value (no flags) means no authentication, no limits and no
// cross-origin access; commands that serve real traffic call RequireAuth to insist on a
// decision about authentication.
type APIConfig struct {
	// AuthDisabled runs the API without authentication on purpose (--auth-disabled).
	AuthDisabled bool
	// JWTHS256Secret verifies HS256 tokens (--jwt-hs256-secret); at least 32 bytes.
	// Pass it as SLUICE_JWT_HS256_SECRET rather than on the command line, where ps
	// shows it.
	JWTHS256Secret string
	// JWTJWKSURL is the https URL of the identity provider's JSON Web Key Set; tokens
	// must then be RS256 or ES256 (--jwt-jwks-url).
	JWTJWKSURL string
	// JWTIssuer and JWTAudience, if set, must match the token's iss and aud
	// (--jwt-issuer, --jwt-audience).
	JWTIssuer, JWTAudience string
	// RateLimit is the number of requests a principal (token sub; the client IP without
	// authentication) may make per RateLimitWindow; 0 turns the limit off (--rate-limit).
	RateLimit int
	// RateLimitWindow is the window of the rate limits, whole seconds; default 1m
	// (--rate-limit-window).
	RateLimitWindow time.Duration
	// RateLimitPerIP is the limit per client IP, checked before the token; 0 means the
	// same as RateLimit (--rate-limit-per-ip).
	RateLimitPerIP int
	// RateLimitRedisURL, if set, keeps the counters in Redis so that instances share
	// them: redis://[user:password@]host:port[/db] or rediss:// (--rate-limit-redis-url).
	RateLimitRedisURL string
	// TrustedProxies are the addresses or CIDR prefixes of load balancers whose
	// X-Forwarded-For header names the client (--trusted-proxies).
	TrustedProxies []string
	// CORSOrigins are the browser origins allowed to call the API (--cors-origins);
	// "*" alone allows any origin without credentials.
	CORSOrigins []string
	// CORSAllowCredentials lets browsers send credentials to the allowed origins
	// (--cors-allow-credentials); needs explicit origins.
	CORSAllowCredentials bool
}

// BindFlags registers the API flags on fs with their defaults (registering resets a).
// Like every flag they also read SLUICE_<FLAG> through ApplyEnv, e.g.
// SLUICE_JWT_HS256_SECRET.
func (a *APIConfig) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&a.AuthDisabled, "auth-disabled", false, "serve the ingest API WITHOUT authentication: anyone who can reach it may post events")
	fs.StringVar(&a.JWTHS256Secret, "jwt-hs256-secret", "", "`secret` (32 bytes or more) that verifies HS256 bearer tokens; prefer the SLUICE_JWT_HS256_SECRET environment variable, since command lines are visible to other users")
	fs.StringVar(&a.JWTJWKSURL, "jwt-jwks-url", "", "https `URL` of the JSON Web Key Set that verifies RS256/ES256 bearer tokens")
	fs.StringVar(&a.JWTIssuer, "jwt-issuer", "", "required token issuer (iss claim)")
	fs.StringVar(&a.JWTAudience, "jwt-audience", "", "required token audience (one of the aud claim values)")
	fs.IntVar(&a.RateLimit, "rate-limit", 0, "requests per --rate-limit-window for each principal (token sub, or client IP without auth); 0: no limit")
	fs.DurationVar(&a.RateLimitWindow, "rate-limit-window", DefaultRateLimitWindow, "window of the rate limits, whole seconds")
	fs.IntVar(&a.RateLimitPerIP, "rate-limit-per-ip", 0, "requests per window for each client IP, checked before the token (0: same as --rate-limit)")
	fs.StringVar(&a.RateLimitRedisURL, "rate-limit-redis-url", "", "Redis `URL` (redis://[user:password@]host:port[/db], rediss:// for TLS) that holds the rate limit counters shared by all instances (default: memory of this process)")
	a.TrustedProxies = nil
	fs.Var((*listValue)(&a.TrustedProxies), "trusted-proxies", "comma-separated `addresses or CIDRs` of load balancers whose X-Forwarded-For names the client")
	a.CORSOrigins = nil
	fs.Var((*listValue)(&a.CORSOrigins), "cors-origins", "comma-separated browser `origins` allowed to call the API, e.g. https://app.example.com (\"*\": any, without credentials)")
	fs.BoolVar(&a.CORSAllowCredentials, "cors-allow-credentials", false, "let browsers send credentials to --cors-origins (not with \"*\")")
}

// Validate checks a and returns every problem at once (errors.Join), each naming the
// flag, for example "--jwt-hs256-secret: must be at least 32 bytes (got 12)". Secrets are
// never quoted.
func (a *APIConfig) Validate() error {
	var errs []error
	add := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flagName, fmt.Sprintf(format, args...)))
	}
	keyed := a.JWTHS256Secret != "" || a.JWTJWKSURL != ""
	if a.AuthDisabled && (keyed || a.JWTIssuer != "" || a.JWTAudience != "") {
		add("auth-disabled", "must not be combined with --jwt-hs256-secret, --jwt-jwks-url, --jwt-issuer or --jwt-audience")
	}
	if a.JWTHS256Secret != "" && a.JWTJWKSURL != "" {
		add("jwt-hs256-secret", "set --jwt-hs256-secret or --jwt-jwks-url, not both")
	}
	if n := len(a.JWTHS256Secret); n > 0 && n < MinJWTSecretBytes {
		add("jwt-hs256-secret", "must be at least %d bytes (got %d)", MinJWTSecretBytes, n)
	}
	if a.JWTJWKSURL != "" {
		if err := checkJWKSURL(a.JWTJWKSURL); err != nil {
			add("jwt-jwks-url", "%v", err)
		}
	}
	if !keyed && a.JWTIssuer != "" {
		add("jwt-issuer", "needs --jwt-hs256-secret or --jwt-jwks-url")
	}
	if !keyed && a.JWTAudience != "" {
		add("jwt-audience", "needs --jwt-hs256-secret or --jwt-jwks-url")
	}
	if a.RateLimit < 0 {
		add("rate-limit", "must be >= 0 (got %d)", a.RateLimit)
	}
	if a.RateLimitPerIP < 0 {
		add("rate-limit-per-ip", "must be >= 0 (got %d)", a.RateLimitPerIP)
	}
	if a.RateLimitWindow < time.Second {
		add("rate-limit-window", "must be at least 1s (got %s)", a.RateLimitWindow)
	}
	if a.RateLimitRedisURL != "" {
		if u, err := url.Parse(a.RateLimitRedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			add("rate-limit-redis-url", "must be a redis:// or rediss:// URL with a host")
		}
	}
	for _, p := range a.TrustedProxies {
		if err := checkProxy(p); err != nil {
			add("trusted-proxies", "%v", err)
		}
	}
	for _, o := range a.CORSOrigins {
		switch {
		case o == "*" && len(a.CORSOrigins) > 1:
			add("cors-origins", `"*" must be the only origin`)
		case o == "*" && a.CORSAllowCredentials:
			add("cors-origins", `"*" is not allowed with --cors-allow-credentials: list the origins`)
		case o != "*":
			if err := checkOrigin(o); err != nil {
				add("cors-origins", "%v", err)
			}
		}
	}
	if a.CORSAllowCredentials && len(a.CORSOrigins) == 0 {
		add("cors-allow-credentials", "needs --cors-origins")
	}
	return errors.Join(errs...)
}

// RequireAuth reports an error unless the flags decide about authentication: a key to
// verify tokens with, or --auth-disabled. Commands that serve real traffic (sluice
// ingest) call it; sluice dev does not.
func (a *APIConfig) RequireAuth() error {
	if a.AuthDisabled || a.JWTHS256Secret != "" || a.JWTJWKSURL != "" {
		return nil
	}
	return errors.New("--jwt-hs256-secret or --jwt-jwks-url: one is required to authenticate API clients; " +
		"pass --auth-disabled to serve the API without authentication")
}

// checkJWKSURL accepts https URLs and, for tests and sidecars, http URLs of a loopback
// host: keys fetched over plain http from elsewhere could be swapped on the way.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("must be an https:// URL with a host (got %q)", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("must be an https:// URL (http:// only for a loopback host), got %q", raw)
}

// checkProxy accepts an IP address or a CIDR prefix.
func checkProxy(s string) error {
	if strings.Contains(s, "/") {
		if _, err := netip.ParsePrefix(s); err == nil {
			return nil
		}
	} else if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	return fmt.Errorf("%q: not an IP address or CIDR prefix", s)
}

// checkOrigin accepts scheme://host[:port] with http or https, where host may start
// with "*." for any subdomain.
func checkOrigin(o string) error {
	u, err := url.Parse(strings.Replace(o, "://*.", "://", 1))
	switch {
	case err != nil, u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: must start with http:// or https://", o)
	case u.Host == "" || strings.Contains(u.Host, "*"):
		return fmt.Errorf("%q: must name a host", o)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("%q: must be scheme://host[:port] only, without path, query or user", o)
	}
	return nil
}
