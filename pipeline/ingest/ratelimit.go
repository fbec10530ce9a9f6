package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"
	redisstore "github.com/gofiber/storage/redis/v3"
	"github.com/redis/go-redis/v9"
)

// ProblemRateLimited: 429, the client made too many requests; retry after Retry-After.
const ProblemRateLimited = "urn:sluice:problem:rate-limited"

// DefaultRateLimitWindow is the rate limit window when RateLimitConfig.Window is zero.
const DefaultRateLimitWindow = time.Minute

// Rate limit headers (IETF draft-ietf-httpapi-ratelimit-headers), sent on every response
// of a limited route: the request quota of the window, what is left of it, and the
// seconds until the window resets. When two limits apply, the tighter one is shown.
const (
	HeaderRateLimitLimit     = "RateLimit-Limit"
	HeaderRateLimitRemaining = "RateLimit-Remaining"
	HeaderRateLimitReset     = "RateLimit-Reset"
)

// Headers fiber's limiter writes; renamed to the RateLimit-* headers above.
const (
	xRateLimitLimit     = "X-RateLimit-Limit"
	xRateLimitRemaining = "X-RateLimit-Remaining"
	xRateLimitReset     = "X-RateLimit-Reset"
)

// rateLimitKeyPrefix starts every key in RateLimitConfig.Storage.
const rateLimitKeyPrefix = "sluice:ratelimit:"

// RateLimitConfig limits requests to the API routes (the health, readiness and metrics
// routes are never limited). Two fixed-window limits apply:
//
//   - per client IP, checked before the token is verified, so that a flood (of bad
//     tokens, say) is refused before it costs a signature check;
//   - per principal (the token's sub), checked after authentication, when it is on.
//
// Without authentication every client is its IP and only the per-IP limit applies.
// Over a limit the answer is 429 problem+json with Retry-After. The zero value turns rate
// limiting off.
type RateLimitConfig struct {
	// Max is the number of requests a principal may make per Window. 0: no per-principal
	// limit.
	Max int
	// Window is the length of the fixed window, in whole seconds (rounded up). Default 1m.
	Window time.Duration
	// MaxPerIP is the number of requests a client IP may make per Window. Default: Max;
	// raise it when many principals share an address (NAT). 0 with Max 0: off.
	MaxPerIP int
	// TrustedProxies are the addresses or CIDR prefixes of reverse proxies (a load
	// balancer) whose X-Forwarded-For header is believed. The client IP is the rightmost
	// X-Forwarded-For entry that is not a trusted proxy; without trusted proxies it is
	// the peer address. IPv6 clients are counted per /64.
	TrustedProxies []string
	// Storage holds the counters. Default: memory of this process. A shared store (for
	// example Redis, see NewRedisStorage) makes the limits hold across instances.
	Storage fiber.Storage
}

// withDefaults validates r and applies its defaults.
func (r RateLimitConfig) withDefaults() (RateLimitConfig, error) {
	switch {
	case r.Max < 0:
		return r, fmt.Errorf("max: must be >= 0 (got %d)", r.Max)
	case r.MaxPerIP < 0:
		return r, fmt.Errorf("max_per_ip: must be >= 0 (got %d)", r.MaxPerIP)
	case r.Window < 0:
		return r, fmt.Errorf("window: must be >= 0 (got %s)", r.Window)
	case r.Window > 0 && r.Window < time.Second:
		return r, fmt.Errorf("window: must be at least 1s (got %s)", r.Window)
	}
	if _, err := parseProxies(r.TrustedProxies); err != nil {
		return r, fmt.Errorf("trusted_proxies: %w", err)
	}
	if r.Window == 0 {
		r.Window = DefaultRateLimitWindow
	}
	if r.MaxPerIP == 0 {
		r.MaxPerIP = r.Max
	}
	return r, nil
}

// parseProxies reads addresses ("10.0.0.1") and prefixes ("10.0.0.0/8").
func parseProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q: not an IP address or CIDR prefix", s)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: not an IP address or CIDR prefix", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// rateLimits are the two limit handlers of the API routes; nil handlers are off.
type rateLimits struct {
	byIP        fiber.Handler
	byPrincipal fiber.Handler
	trusted     []netip.Prefix
}

// newRateLimits builds the limiters of cfg (defaults applied). The per-principal limit
// exists only when authenticated is true.
func newRateLimits(cfg RateLimitConfig, authenticated bool) (*rateLimits, error) {
	trusted, err := parseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("ingest: rate_limit: trusted_proxies: %w", err)
	}
	l := &rateLimits{trusted: trusted}
	if cfg.MaxPerIP > 0 {
		l.byIP = l.limit(cfg, cfg.MaxPerIP, func(c *fiber.Ctx) string { return rateLimitKeyPrefix + "ip:" + l.clientIP(c) })
	}
	if cfg.Max > 0 && authenticated {
		l.byPrincipal = l.limit(cfg, cfg.Max, func(c *fiber.Ctx) string {
			if p, ok := PrincipalOf(c); ok && p.Subject != "" {
				return rateLimitKeyPrefix + "sub:" + p.Subject
			}
			return rateLimitKeyPrefix + "sub-ip:" + l.clientIP(c) // a token without sub
		})
	}
	return l, nil
}

// limit is one fiber limiter of max requests per window, answering 429 problems and
// writing the RateLimit-* headers.
func (l *rateLimits) limit(cfg RateLimitConfig, max int, key func(*fiber.Ctx) string) fiber.Handler {
	window := time.Duration((cfg.Window + time.Second - 1) / time.Second * time.Second)
	h := limiter.New(limiter.Config{
		Max:          max,
		Expiration:   window,
		KeyGenerator: key,
		Storage:      cfg.Storage,
		LimitReached: func(c *fiber.Ctx) error {
			reset := string(c.Response().Header.Peek(fiber.HeaderRetryAfter))
			c.Set(HeaderRateLimitLimit, strconv.Itoa(max))
			c.Set(HeaderRateLimitRemaining, "0")
			c.Set(HeaderRateLimitReset, reset)
			return &requestError{problem: Problem{
				Type: ProblemRateLimited, Title: http.StatusText(fiber.StatusTooManyRequests),
				Status: fiber.StatusTooManyRequests,
				Detail: fmt.Sprintf("more than %d requests in %s; retry after %s seconds", max, window, reset),
			}}
		},
	})
	return func(c *fiber.Ctx) error {
		err := h(c)
		renameLimitHeaders(c)
		return err
	}
}

// renameLimitHeaders turns the X-RateLimit-* headers fiber's limiter just wrote into
// RateLimit-* headers, unless an inner limiter already wrote tighter ones.
func renameLimitHeaders(c *fiber.Ctx) {
	h := &c.Response().Header
	rem := string(h.Peek(xRateLimitRemaining))
	if rem == "" {
		return // limit reached: LimitReached wrote the headers
	}
	lim, reset := string(h.Peek(xRateLimitLimit)), string(h.Peek(xRateLimitReset))
	h.Del(xRateLimitLimit)
	h.Del(xRateLimitRemaining)
	h.Del(xRateLimitReset)
	if prev := string(h.Peek(HeaderRateLimitRemaining)); prev != "" {
		p, perr := strconv.Atoi(prev)
		n, nerr := strconv.Atoi(rem)
		if perr == nil && nerr == nil && p <= n {
			return
		}
	}
	c.Set(HeaderRateLimitLimit, lim)
	c.Set(HeaderRateLimitRemaining, rem)
	c.Set(HeaderRateLimitReset, reset)
}

// clientIP is the address a request is counted under: the peer, or, when the peer is a
// trusted proxy, the rightmost X-Forwarded-For entry that is not one. IPv6 addresses
// count per /64, the block one subscriber usually gets.
func (l *rateLimits) clientIP(c *fiber.Ctx) string {
	addr, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	addr = addr.Unmap()
	if l.isTrusted(addr) {
		hops := c.Request().Header.PeekAll(fiber.HeaderXForwardedFor)
	walk:
		for i := len(hops) - 1; i >= 0; i-- {
			entries := strings.Split(string(hops[i]), ",")
			for j := len(entries) - 1; j >= 0; j-- {
				hop, err := netip.ParseAddr(strings.TrimSpace(entries[j]))
				if err != nil {
					break walk // garbage: keep the last trusted hop
				}
				addr = hop.Unmap()
				if !l.isTrusted(addr) {
					break walk
				}
			}
		}
	}
	if addr.Is6() {
		if p, err := addr.Prefix(64); err == nil {
			return p.String()
		}
	}
	return addr.String()
}

func (l *rateLimits) isTrusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// redisPingTimeout bounds the connection check of NewRedisStorage.
const redisPingTimeout = 5 * time.Second

// NewRedisStorage connects to the Redis server at rawURL
// (redis://[user:password@]host:port[/db] or rediss:// for TLS) and returns it as a
// RateLimitConfig.Storage, so that instances share their counters. It fails when the
// server does not answer PING within 5s. Counting across instances is approximate: two
// instances may read a counter at the same moment, so a client can exceed the limit by
// up to one request per instance. Keys start with "sluice:ratelimit:" and expire with
// their window; the store's Reset flushes the whole database, so give it a database of
// its own. Close it after the Server has shut down.
func NewRedisStorage(ctx context.Context, rawURL string) (fiber.Storage, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		// The parse error may quote the URL and with it the password.
		return nil, errors.New("ingest: rate limit redis: invalid URL: want redis://[user:password@]host:port[/db] or rediss://")
	}
	opts.DisableIdentity = true
	client := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, errors.Join(fmt.Errorf("ingest: rate limit redis %s: %w", opts.Addr, err), client.Close())
	}
	return redisstore.NewFromConnection(client), nil
}
