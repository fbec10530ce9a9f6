package gen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// The built-in event types, which are also their raw topic names.
const (
	PageViews = "page_views"
	Clicks    = "clicks"
	Purchases = "purchases"
)

// Defaults of Options.
const (
	DefaultUsers    = 10000
	DefaultURLs     = 500
	DefaultProducts = 1000
)

// timeLayout is RFC 3339 with milliseconds; applied to UTC times it ends in "Z".
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// Topics returns the event types New accepts: page_views, clicks, purchases.
func Topics() []string { return []string{PageViews, Clicks, Purchases} }

// Options configure a Generator. The zero value is usable: every zero field takes its
// default.
type Options struct {
	// Seed selects the event sequence; the same seed and clock give the same events.
	// Zero is a valid seed like any other.
	Seed uint64
	// Users is the number of distinct users (u-1 .. u-Users, Zipf distributed, u-1 the
	// most active). Default 10000.
	Users int
	// URLs is the number of distinct page paths (Zipf distributed). Default 500.
	URLs int
	// Products is the number of distinct products p-1 .. p-Products (Zipf distributed).
	// Default 1000.
	Products int
	// Now is the clock event_time is taken from. Default time.Now.
	Now func() time.Time
	// MaxSkew bounds a seeded delay, uniform in [0, MaxSkew), subtracted from Now for each
	// event, so events arrive slightly out of order. Default 0: event_time is Now.
	MaxSkew time.Duration
}

// validate fills defaults and checks o, naming the bad field.
func (o *Options) validate() error {
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{{"users", &o.Users, DefaultUsers}, {"urls", &o.URLs, DefaultURLs}, {"products", &o.Products, DefaultProducts}} {
		switch {
		case *f.v < 0:
			return fmt.Errorf("gen: %s: must be >= 0 (got %d)", f.name, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	if o.MaxSkew < 0 {
		return fmt.Errorf("gen: max_skew: must be >= 0 (got %q)", o.MaxSkew)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Generator produces the events of one topic. It is deterministic: its output depends only
// on the topic, the Options and the values its clock returns. It is not safe for
// concurrent use; give each goroutine its own Generator (with its own seed).
type Generator struct {
	topic    string
	o        Options
	r        *rand.Rand
	users    *rand.Zipf
	urls     *rand.Zipf
	products *rand.Zipf
	catalog  catalog
	country  weighted
	device   weighted
	fields   func(g *Generator, ev map[string]any, c common)
}

// common is what the topic's builder needs to know about the user and session.
type common struct {
	country country
	device  string
}

// New returns a Generator of events for topic, one of Topics(). The topic is mixed into
// the random stream, so generators of different topics with one seed do not repeat each
// other's event ids.
func New(topic string, o Options) (*Generator, error) {
	var fields func(*Generator, map[string]any, common)
	switch topic {
	case PageViews:
		fields = (*Generator).pageView
	case Clicks:
		fields = (*Generator).click
	case Purchases:
		fields = (*Generator).purchase
	default:
		return nil, fmt.Errorf("gen: unknown topic %q (want one of %v)", topic, Topics())
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	cw := make([]float64, len(countries))
	for i, c := range countries {
		cw[i] = c.weight
	}
	r := rand.New(rand.NewPCG(o.Seed, hashString(topic)))
	return &Generator{
		topic:    topic,
		o:        o,
		r:        r,
		users:    newZipf(r, o.Users),
		urls:     newZipf(r, o.URLs),
		products: newZipf(r, o.Products),
		catalog:  newCatalog(o.URLs),
		country:  newWeighted(cw),
		device:   newWeighted(deviceWeights),
		fields:   fields,
	}, nil
}

// Topic returns the generator's topic.
func (g *Generator) Topic() string { return g.topic }

// Next returns the next valid event: event_id, event_time, user_id, session_id, country,
// device, and the fields of the generator's topic. A user keeps one country (and so,
// mostly, one currency); a session keeps one device.
func (g *Generator) Next() map[string]any {
	t := g.o.Now()
	if g.o.MaxSkew > 0 {
		t = t.Add(-time.Duration(g.r.Int64N(int64(g.o.MaxSkew))))
	}
	t = t.UTC().Truncate(time.Millisecond)
	user := g.users.Uint64() + 1
	sess := sessionKey(g.o.Seed, user, t)
	c := common{
		country: countries[g.country.pick(unit(hash3(g.o.Seed, user, 0xc0)))],
		device:  devices[g.device.pick(unit(mix64(sess)))],
	}
	ev := make(map[string]any, 14)
	ev["event_id"] = eventID(g.r, t)
	ev["event_time"] = t.Format(timeLayout)
	ev["user_id"] = userID(user)
	ev["session_id"] = sessionID(sess)
	ev["country"] = c.country.code
	ev["device"] = c.device
	g.fields(g, ev, c)
	return ev
}

// Fields returns the names of every field an event of topic carries, sorted; nil for an
// unknown topic.
func Fields(topic string) []string {
	var f []string
	switch topic {
	case PageViews:
		f = []string{"url", "referrer", "duration_ms"}
	case Clicks:
		f = []string{"url", "element", "x", "y"}
	case Purchases:
		f = []string{"order_id", "amount", "currency", "items", "product_id"}
	default:
		return nil
	}
	f = append(f, "event_id", "event_time", "user_id", "session_id", "country", "device")
	slices.Sort(f)
	return f
}
