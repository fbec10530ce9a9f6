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

// rateLimits are the two limits of the API routes; nil handlers are off. Both count in
// one windowCounter, under keys that tell them apart.
type rateLimits struct {
	byIP        fiber.Handler
	byPrincipal fiber.Handler
	ip          *limit // nil: off
	principal   *limit // nil: off
	trusted     []netip.Prefix
}

// newRateLimits builds the limiters of cfg (defaults applied), timed by now. The
// per-principal limit exists only when authenticated is true.
func newRateLimits(cfg RateLimitConfig, authenticated bool, now func() time.Time) (*rateLimits, error) {
	trusted, err := parseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("ingest: rate_limit: trusted_proxies: %w", err)
	}
	l := &rateLimits{trusted: trusted}
	window := (cfg.Window + time.Second - 1) / time.Second * time.Second
	counter := newWindowCounter(window, cfg.Storage, now)
	if cfg.MaxPerIP > 0 {
		l.ip = &limit{max: cfg.MaxPerIP, window: window, counter: counter, who: "this client address", key: l.ipKey}
		l.byIP = l.ip.handler
	}
	if cfg.Max > 0 && authenticated {
		l.principal = &limit{max: cfg.Max, window: window, counter: counter, who: "this principal", key: l.principalKey}
		l.byPrincipal = l.principal.handler
	}
	return l, nil
}

// ipKey is the counter key of the per-IP limit.
func (l *rateLimits) ipKey(c *fiber.Ctx) string { return rateLimitKeyPrefix + "ip:" + l.clientIP(c) }

// principalKey is the counter key of the per-principal limit: the token's sub.
func (l *rateLimits) principalKey(c *fiber.Ctx) string {
	if p, ok := PrincipalOf(c); ok && p.Subject != "" {
		return rateLimitKeyPrefix + "sub:" + p.Subject
	}
	return rateLimitKeyPrefix + "sub-ip:" + l.clientIP(c) // a token without sub
}

// limit is one fixed-window limit of max units per window per key.
type limit struct {
	max     int
	window  time.Duration
	counter *windowCounter
	who     string // what a key stands for, in problem details
	key     func(*fiber.Ctx) string
}

// handler counts a request as one unit: over the limit it answers 429 problems with
// Retry-After, else it writes the RateLimit-* headers (the tighter of two limits wins).
func (m *limit) handler(c *fiber.Ctx) error {
	count, reset := m.counter.take(m.key(c), 1)
	resetSec := strconv.Itoa(seconds(reset))
	if count > int64(m.max) {
		c.Set(fiber.HeaderRetryAfter, resetSec)
		c.Set(HeaderRateLimitLimit, strconv.Itoa(m.max))
		c.Set(HeaderRateLimitRemaining, "0")
		c.Set(HeaderRateLimitReset, resetSec)
		return &requestError{problem: Problem{
			Type: ProblemRateLimited, Title: http.StatusText(fiber.StatusTooManyRequests),
			Status: fiber.StatusTooManyRequests,
			Detail: fmt.Sprintf("more than %d requests in %s; retry after %s seconds", m.max, m.window, resetSec),
		}}
	}
	err := c.Next()
	remaining := int64(m.max) - count
	h := &c.Response().Header
	if prev, perr := strconv.ParseInt(string(h.Peek(HeaderRateLimitRemaining)), 10, 64); perr == nil && prev <= remaining {
		return err // an inner limit is tighter
	}
	c.Set(HeaderRateLimitLimit, strconv.Itoa(m.max))
	c.Set(HeaderRateLimitRemaining, strconv.FormatInt(remaining, 10))
	c.Set(HeaderRateLimitReset, resetSec)
	return err
}

// seconds rounds d up to whole seconds, at least 1.
func seconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
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
