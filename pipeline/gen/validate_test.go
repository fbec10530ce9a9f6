package gen_test

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/sluicehq/sluice/pipeline/gen"
)

var (
	reTime    = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	reUser    = regexp.MustCompile(`^u-[1-9]\d*$`)
	reSession = regexp.MustCompile(`^s-[0-9a-f]{16}$`)
	reOrder   = regexp.MustCompile(`^o-[0-9a-f]{16}$`)
	reProduct = regexp.MustCompile(`^p-[1-9]\d*$`)
	reElement = regexp.MustCompile(`^[a-z][a-z_]*$`)

	knownCountries = []string{"US", "DE", "GB", "FR", "JP", "CA", "IT", "ES", "NL", "AU",
		"CH", "BR", "IN", "SE", "PL", "AT", "BE", "IE", "MX", "KR"}
	knownCurrencies = []string{"EUR", "USD", "GBP", "JPY", "CHF"}
	knownDevices    = []string{"desktop", "mobile", "tablet"}
)

// limits are what a valid event of a generator with these options must respect.
type limits struct {
	users, products int
	now             time.Time
	maxSkew         time.Duration
}

// problems checks ev as an event of topic and returns every problem as
// "<field>: <what>"; nil means valid.
func problems(topic string, ev map[string]any, lim limits) []string {
	var out []string
	bad := func(field, format string, args ...any) {
		out = append(out, field+": "+fmt.Sprintf(format, args...))
	}
	want := gen.Fields(topic)
	for _, f := range want {
		if _, ok := ev[f]; !ok {
			bad(f, "missing")
		}
	}
	for f := range ev {
		if !slices.Contains(want, f) {
			bad(f, "unexpected field")
		}
	}
	str := func(f string) (string, bool) {
		v, ok := ev[f]
		if !ok {
			return "", false
		}
		s, ok := v.(string)
		if !ok {
			bad(f, "wrong type %T", v)
		}
		return s, ok
	}
	integer := func(f string) (int, bool) {
		v, ok := ev[f]
		if !ok {
			return 0, false
		}
		n, ok := v.(int)
		if !ok {
			bad(f, "wrong type %T", v)
		}
		return n, ok
	}
	var evTime time.Time
	if s, ok := str("event_time"); ok {
		t, err := time.Parse(time.RFC3339, s)
		switch {
		case !reTime.MatchString(s) || err != nil:
			bad("event_time", "not RFC 3339 UTC with millis: %q", s)
		case t.After(lim.now):
			bad("event_time", "%s after now %s", t, lim.now)
		case t.Before(lim.now.Add(-lim.maxSkew).Truncate(time.Millisecond)):
			bad("event_time", "%s more than %s before now %s", t, lim.maxSkew, lim.now)
		default:
			evTime = t
		}
	}
	if s, ok := str("event_id"); ok {
		id, err := ulid.ParseStrict(s)
		switch {
		case err != nil:
			bad("event_id", "not a ULID: %v", err)
		case !evTime.IsZero() && int64(id.Time()) != evTime.UnixMilli():
			bad("event_id", "time %d != event_time %d", id.Time(), evTime.UnixMilli())
		}
	}
	if s, ok := str("user_id"); ok {
		n, _ := strconv.Atoi(strings.TrimPrefix(s, "u-"))
		if !reUser.MatchString(s) || n > lim.users {
			bad("user_id", "%q not in u-1..u-%d", s, lim.users)
		}
	}
	if s, ok := str("session_id"); ok && !reSession.MatchString(s) {
		bad("session_id", "%q", s)
	}
	if s, ok := str("country"); ok && !slices.Contains(knownCountries, s) {
		bad("country", "%q", s)
	}
	if s, ok := str("device"); ok && !slices.Contains(knownDevices, s) {
		bad("device", "%q", s)
	}
	if _, ok := ev["url"]; ok {
		if s, ok := str("url"); ok && !strings.HasPrefix(s, "/") {
			bad("url", "%q is not a path", s)
		}
	}
	if v, ok := ev["referrer"]; ok && v != nil {
		if s, ok := str("referrer"); ok {
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				bad("referrer", "%q is not an absolute URL", s)
			}
		}
	}
	if n, ok := integer("duration_ms"); ok && n <= 0 {
		bad("duration_ms", "%d <= 0", n)
	}
	if s, ok := str("element"); ok && !reElement.MatchString(s) {
		bad("element", "%q", s)
	}
	for _, f := range []string{"x", "y"} {
		if _, ok := ev[f]; !ok {
			continue
		}
		if n, ok := integer(f); ok && n < 0 {
			bad(f, "%d < 0", n)
		}
	}
	if s, ok := str("order_id"); ok && !reOrder.MatchString(s) {
		bad("order_id", "%q", s)
	}
	if v, ok := ev["amount"]; ok {
		a, isFloat := v.(float64)
		switch {
		case !isFloat:
			bad("amount", "wrong type %T", v)
		case !(a > 0):
			bad("amount", "%v <= 0", a)
		case math.Round(a*100)/100 != a:
			bad("amount", "%v has more than 2 decimals", a)
		}
	}
	if s, ok := str("currency"); ok && !slices.Contains(knownCurrencies, s) {
		bad("currency", "%q", s)
	}
	if n, ok := integer("items"); ok && (n < 1 || n > 10) {
		bad("items", "%d not in 1..10", n)
	}
	if s, ok := str("product_id"); ok {
		n, _ := strconv.Atoi(strings.TrimPrefix(s, "p-"))
		if !reProduct.MatchString(s) || n > lim.products {
			bad("product_id", "%q not in p-1..p-%d", s, lim.products)
		}
	}
	slices.Sort(out)
	return out
}
