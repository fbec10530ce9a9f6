package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/oklog/ulid/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// The peer comparison's input (issue 20): N purchases of the built-in schema, seeded, with
// disorder inside the grace, some duplicates, some late events and some that break a rule,
// framed and encoded exactly as Sluice's ingest writes them. The times come from the
// harness's disorder generator (harness/disorder.go); the expected window results from the
// harness oracle (harness/oracle.go).

// peerCountries are the countries (the group of revenue_by_country_1m).
var peerCountries = []string{"DE", "US", "FR", "GB", "NL", "ES", "IT", "PL", "SE", "JP",
	"BR", "CA", "AU", "IN", "CH", "AT", "BE", "DK", "NO", "MX"}

var peerCurrencies = []string{"EUR", "USD", "GBP", "JPY", "CHF", "CAD", "AUD", "SEK"}

// Shape of the generated input. Disorder stays well inside the 5 s grace (so no on-time
// event is near the line, whatever order the systems read partitions in) and late events
// are far behind every partition (so all three drop them whatever their reading order).
const (
	peerPartitions   = 3
	peerMaxDisorder  = 500 // ms behind the own partition's largest time
	peerLateBehind   = 30 * 60 * 1000
	peerDupFraction  = 0.02
	peerLateFraction = 0.005
	peerBadCurrency  = 0.005 // currency outside one_of
	peerBadAmount    = 0.002 // amount < 0
	peerDupDistance  = 20    // a duplicate follows its original within this many events
	// Late events are drawn from the last 3/4 of the input (they go to the late tail).
	peerLateAfter  = 4
	peerLateMin    = 0
	peerFlushAhead = int64(10 * 60 * 1000)
)

// peerEvent is one generated record, compact (a million of them are kept).
type peerEvent struct {
	Part     int32
	Time     int64 // event_time, unix ms
	Country  uint8
	User     int32
	Amount   float64
	Currency string
	ID       string
	Seq      int64
	Dup      bool // an exact copy of an earlier event
	Late     bool
	Flush    bool // a tail event that closes every window before it
	Invalid  bool
}

// peerInput is the generated input and what must come out of it.
type peerInput struct {
	// Events are the preloaded records; Flush the tail the bench writes once a system
	// has read them all (see drainRun).
	Events []peerEvent
	// LateTail are the late events: written after the input, before the flush tail, so
	// that they are late in every system whatever order it read the partitions in
	// (before it has heard from every partition, a system that takes the minimum over
	// partitions has no stream time, and nothing is late yet).
	LateTail []peerEvent
	Flush    []peerEvent
	// FlushTime is the first flush's time: windows starting at or after it are not
	// compared; those starting at it are the sentinels.
	FlushTime   int64
	Duplicates  int
	Late        int
	Invalid     int
	Expected    map[string]peerWindow // by peerWindowKey, from the oracle
	OracleLate  int
	FirstWindow int64
}

// peerWindow is one window result, normalised for comparison.
type peerWindow struct {
	Country    string    `json:"country"`
	Start      int64     `json:"start"`
	End        int64     `json:"end"`
	Count      int64     `json:"count"`
	Sum        float64   `json:"sum"`
	Avg        float64   `json:"avg"`
	Min        float64   `json:"min"`
	Max        float64   `json:"max"`
	VisibleAt  time.Time `json:"-"`
	Duplicated bool      `json:"-"`
}

func peerWindowKey(country string, start int64) string {
	return country + "@" + strconv.FormatInt(start, 10)
}

// genPeerInput generates n events (plus duplicates and the flush tail) with seed, as if
// recorded at eventRate events per second of event time.
func genPeerInput(n int, seed uint64, eventRate float64, now time.Time) (*peerInput, error) {
	if n < 100 {
		return nil, fmt.Errorf("peers: want at least 100 events (got %d)", n)
	}
	if eventRate <= 0 || eventRate > 100_000 {
		return nil, fmt.Errorf("peers: event rate must be in (0, 100000] (got %g)", eventRate)
	}
	// Disorder's times step by 1 ms on average; they are then scaled to eventRate.
	scale := 1000 / eventRate
	span := int64(float64(n) * scale)
	start := now.Add(-time.Duration(span+3*peerFlushAhead) * time.Millisecond).Truncate(time.Minute).UnixMilli()
	base := harness.Disorder(harness.DisorderOptions{
		Seed: seed, Sources: peerPartitions, Groups: len(peerCountries), Events: n,
		Start: 0, Step: 1, MaxDisorder: max(int64(peerMaxDisorder/scale), 0), Users: 1000,
	})
	r := rand.New(rand.NewPCG(seed, 0x7065657273)) // "peers"
	var chachaSeed [32]byte
	for i := range 8 {
		chachaSeed[i] = byte(seed >> (8 * i))
	}
	entropy := rand.NewChaCha8(chachaSeed) // ULID entropy, seeded
	in := &peerInput{Events: make([]peerEvent, 0, n+n/20+2*peerPartitions*len(peerCountries))}
	maxSeen := make([]int64, peerPartitions)
	for i := range maxSeen {
		maxSeen[i] = math.MinInt64
	}
	type pending struct {
		at int
		ev peerEvent
	}
	var dups []pending
	maxTime := int64(math.MinInt64)
	for i, b := range base {
		part, _ := strconv.Atoi(strings.TrimPrefix(b.Source, "src/"))
		g, _ := strconv.Atoi(strings.TrimPrefix(b.GroupValues[0], "g"))
		user, _ := strconv.Atoi(strings.TrimPrefix(fmt.Sprint(b.Values["user_id"]), "u-"))
		amount, _ := b.Values["amount"].(float64)
		ev := peerEvent{Part: int32(part), Time: start + int64(math.Round(float64(b.Time)*scale)), Country: uint8(g),
			User: int32(user), Amount: amount, Currency: peerCurrencies[r.IntN(len(peerCurrencies))], Seq: int64(i)}
		if low := slices.Min(maxSeen); i >= max(n/peerLateAfter, peerLateMin) && low != math.MinInt64 && r.Float64() < peerLateFraction {
			ev.Time = low - peerLateBehind - r.Int64N(60_000)
			ev.Late = true
			in.Late++
		}
		switch f := r.Float64(); {
		case f < peerBadCurrency:
			ev.Currency, ev.Invalid = "XXX", true
		case f < peerBadCurrency+peerBadAmount:
			ev.Amount, ev.Invalid = -1, true
		}
		if ev.Invalid {
			in.Invalid++
		}
		id, err := ulid.New(uint64(max(ev.Time, 0)), entropy)
		if err != nil {
			return nil, err
		}
		ev.ID = id.String()
		for len(dups) > 0 && dups[0].at <= i {
			in.appendEvent(dups[0].ev)
			dups = dups[1:]
		}
		in.appendEvent(ev)
		maxSeen[part] = max(maxSeen[part], ev.Time)
		maxTime = max(maxTime, ev.Time)
		if r.Float64() < peerDupFraction {
			d := ev
			d.Dup = true
			at := i + 1 + r.IntN(peerDupDistance)
			idx, _ := slices.BinarySearchFunc(dups, at, func(p pending, t int) int { return p.at - t })
			dups = slices.Insert(dups, idx, pending{at, d})
			in.Duplicates++
		}
	}
	for _, d := range dups {
		in.appendEvent(d.ev)
	}
	// The flush tail, twice: every country in every partition, far ahead. The first closes
	// every window of the input in all three systems (Sluice and Flink take the minimum
	// over partitions, Kafka Streams the maximum per task of the repartitioned stream);
	// the second closes the first's windows, whose results (one per country, the
	// sentinels) say that a system has done everything before them. The bench writes the
	// tail only once the system has consumed the input: Kafka Streams drops every record
	// still in flight between its tasks when stream time jumps ahead (see drainRun).
	in.FlushTime = (maxTime/60_000+1)*60_000 + peerFlushAhead
	for k, t := range []int64{in.FlushTime, in.FlushTime + peerFlushAhead} {
		for p := range peerPartitions {
			for c := range peerCountries {
				id, err := ulid.New(uint64(t), entropy)
				if err != nil {
					return nil, err
				}
				in.Flush = append(in.Flush, peerEvent{Part: int32(p), Time: t + int64(p), Country: uint8(c),
					User: int32(c), Amount: 1, Currency: "EUR", ID: id.String(), Flush: true,
					Seq: int64(n + k*1000 + p*100 + c)})
			}
		}
	}
	if err := in.expect(); err != nil {
		return nil, err
	}
	return in, nil
}

func (in *peerInput) appendEvent(e peerEvent) {
	if e.Late {
		in.LateTail = append(in.LateTail, e)
	} else {
		in.Events = append(in.Events, e)
	}
}

// Tail is what the bench writes once a system has consumed Events: the late events, then
// the flush tail.
func (in *peerInput) Tail() []peerEvent { return slices.Concat(in.LateTail, in.Flush) }

// peerSpec is the engine spec of revenue_by_country_1m, as Sluice builds it.
func peerSpec() (stream.Spec, error) {
	for _, a := range config.Default().Aggregations {
		if a.Name == "revenue_by_country_1m" {
			s, _, err := process.Spec(a, peerPartitions)
			return s, err
		}
	}
	return stream.Spec{}, fmt.Errorf("peers: no revenue_by_country_1m in the built-in pipeline")
}

// expect runs the harness oracle over what survives the rules and dedup, in arrival order.
func (in *peerInput) expect() error {
	spec, err := peerSpec()
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(in.Events))
	evs := make([]stream.Event, 0, len(in.Events)+len(in.Flush))
	for i, e := range slices.Concat(in.Events, in.Tail()) {
		if e.Invalid || seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		c := peerCountries[e.Country]
		evs = append(evs, stream.Event{Source: spec.Sources[e.Part], Time: e.Time, Group: stream.GroupKey([]string{c}),
			GroupValues: []string{c}, Values: map[string]any{"amount": e.Amount}, IngestTS: int64(i) + 1, EventID: e.ID})
	}
	res := harness.Oracle(spec, evs)
	in.OracleLate = len(res.Late)
	in.Expected = make(map[string]peerWindow, len(res.Finals))
	in.FirstWindow = math.MaxInt64
	for _, f := range res.Finals {
		if f.Start >= in.FlushTime {
			continue
		}
		w := peerWindow{Country: f.GroupValues[0], Start: f.Start, End: f.End, Count: f.Count}
		for _, m := range f.Measures {
			switch m.Column {
			case "sum_amount":
				w.Sum = m.Value
			case "avg_amount":
				w.Avg = m.Value
			case "min_amount":
				w.Min = m.Value
			case "max_amount":
				w.Max = m.Value
			}
		}
		in.Expected[peerWindowKey(w.Country, w.Start)] = w
		in.FirstWindow = min(in.FirstWindow, w.Start)
	}
	if len(in.Expected) == 0 {
		return fmt.Errorf("peers: the oracle closed no window")
	}
	return nil
}

// peerEncoder frames purchases as Sluice's ingest does (Confluent framing with the raw
// schema's registry id, Avro binary, key user_id, headers sluice-event-id and
// sluice-ingest-ts).
type peerEncoder struct {
	enc *ingest.Encoder
}

func newPeerEncoder(topic string, schemaID int) (*peerEncoder, error) {
	text, err := schema.Load("purchases.avsc", "")
	if err != nil {
		return nil, err
	}
	sch, err := avro.Parse(text)
	if err != nil {
		return nil, err
	}
	rs, ok := sch.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("peers: purchases.avsc is not a record")
	}
	codec, err := schema.NewCodec(schemaID, rs)
	if err != nil {
		return nil, err
	}
	enc := ingest.NewEncoder(ingest.Topic{Name: topic, KeyField: "user_id", Subject: wire.Subject(topic), Codec: codec},
		time.Now, 100*365*24*time.Hour)
	return &peerEncoder{enc: enc}, nil
}

var peerDevices = []string{"desktop", "mobile", "tablet"}

// record encodes e for topic.
func (pe *peerEncoder) record(e *peerEvent) (*kgo.Record, error) {
	user := "u-" + strconv.Itoa(int(e.User))
	ev := map[string]any{
		"event_id":   e.ID,
		"event_time": time.UnixMilli(e.Time).UTC(),
		"user_id":    user,
		"session_id": "s-" + user,
		"country":    peerCountries[e.Country],
		"device":     peerDevices[e.Seq%3],
		"order_id":   "o-" + strconv.FormatInt(e.Seq, 10),
		"amount":     e.Amount,
		"currency":   e.Currency,
		"items":      int32(1 + e.Seq%5),
		"product_id": "p-" + strconv.FormatInt(e.Seq%500, 10),
	}
	r, _, err := pe.enc.Record(ev, "")
	if err != nil {
		return nil, fmt.Errorf("peers: encode event %d: %w", e.Seq, err)
	}
	r.Partition = e.Part
	return r, nil
}

// compareWindows checks got against the oracle's windows: the same keys and values (sums
// and averages to a relative 1e-9: the systems add in different orders). It returns the
// differences, at most limit of them, and how many there were.
func compareWindows(want map[string]peerWindow, got map[string]peerWindow, flush int64, limit int) ([]string, int) {
	var diffs []string
	n := 0
	add := func(s string) {
		n++
		if len(diffs) < limit {
			diffs = append(diffs, s)
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w := want[k]
		g, ok := got[k]
		switch {
		case !ok:
			add(fmt.Sprintf("%s: missing (oracle: count %d, sum %.2f)", k, w.Count, w.Sum))
		case g.Duplicated:
			add(fmt.Sprintf("%s: emitted more than once with different values", k))
		case g.Count != w.Count || !near(g.Sum, w.Sum) || !near(g.Avg, w.Avg) || g.Min != w.Min || g.Max != w.Max || g.End != w.End:
			add(fmt.Sprintf("%s: got count %d sum %.6f avg %.6f min %.2f max %.2f end %d, oracle count %d sum %.6f avg %.6f min %.2f max %.2f end %d",
				k, g.Count, g.Sum, g.Avg, g.Min, g.Max, g.End, w.Count, w.Sum, w.Avg, w.Min, w.Max, w.End))
		}
	}
	extra := make([]string, 0)
	for k, g := range got {
		if _, ok := want[k]; !ok && g.Start < flush {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		g := got[k]
		add(fmt.Sprintf("%s: not in the oracle (count %d, sum %.2f)", k, g.Count, g.Sum))
	}
	return diffs, n
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}
