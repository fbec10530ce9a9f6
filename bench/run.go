package main

import (
	"context"
	"math"
	"os"
	"strconv"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Result is the outcome of one run at one rate; its JSON form is the --json line.
type Result struct {
	Mode      string `json:"mode"`
	BatchSize int    `json:"batch_size"`
	Backend   string `json:"backend"`
	// Stages is which in-process pipeline ran: full (clean, retry and the aggregations)
	// or clean-only (--clean-only); empty with --target.
	Stages string `json:"stages,omitempty"`
	// DurationS is the configured length of the load in seconds.
	DurationS float64 `json:"duration_s"`
	// OfferedRate is the target arrival rate in events/s; AchievedRate the accepted
	// events divided by the time from the first request to the last answer.
	OfferedRate  float64 `json:"offered_rate"`
	AchievedRate float64 `json:"achieved_rate"`
	// Requests sent, Errors among them (non-2xx or transport errors), events Offered and
	// Accepted (every event of a 2xx request).
	Requests int64            `json:"requests"`
	Errors   int64            `json:"errors"`
	Offered  int64            `json:"offered"`
	Accepted int64            `json:"accepted"`
	Codes    map[string]int64 `json:"status_codes"`
	// FirstError is the first failure's text, for a quick look.
	FirstError string  `json:"first_error,omitempty"`
	HTTPP50    float64 `json:"http_p50_ms"`
	HTTPP95    float64 `json:"http_p95_ms"`
	HTTPP99    float64 `json:"http_p99_ms"`
	HTTPMax    float64 `json:"http_max_ms"`
	// E2EMeasured is false when no broker was known to consume from (then the e2e
	// figures are -1). Clean counts this run's records read from <topic>.clean.
	E2EMeasured bool    `json:"e2e_measured"`
	Clean       int64   `json:"clean"`
	E2EP50      float64 `json:"e2e_p50_ms"`
	E2EP95      float64 `json:"e2e_p95_ms"`
	E2EP99      float64 `json:"e2e_p99_ms"`
	E2EMax      float64 `json:"e2e_max_ms"`
	// ServerCPUSeconds is the CPU time of the serving process during the run: with the
	// in-process platform that is this whole process (ingest, processor, kfake, and the
	// load generator and consumer too); with --target it is process_cpu_seconds_total
	// from the target's /metrics (-1 if unreadable).
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	// CPUMicrosPerEvent is ServerCPUSeconds per accepted event.
	CPUMicrosPerEvent float64 `json:"cpu_us_per_event"`
	// Sustained: achieved >= 95% of offered, errors < 1%, and e2e p95 under the SLO.
	Sustained bool `json:"sustained"`
	// Transactions are the in-process processor's committed transactions by stage during
	// the run, with the records each consumed on average (absent with --target).
	Transactions map[string]StageTxns `json:"transactions,omitempty"`

	timeline []Second
}

// runner loads one deployment at several rates.
type runner struct {
	o       Options
	base    string   // ingest base URL
	brokers []string // for the e2e consumer; nil: not measured
	backend string
	stages  string // full or clean-only; empty with --target
	bodies  *bodies
	cpu     func() float64              // CPU seconds of the server so far; nil: unknown
	txns    func() map[string]StageTxns // the processor's totals so far; nil: unknown
}

// run offers rate events/s for o.Duration and measures it.
func (r *runner) run(ctx context.Context, rate float64) (Result, error) {
	o := r.o
	per := o.eventsPerRequest()
	res := Result{Mode: o.Mode, BatchSize: per, Backend: r.backend, Stages: r.stages, DurationS: o.Duration.Seconds(),
		OfferedRate: rate, Codes: map[string]int64{}, ServerCPUSeconds: -1}
	runID := strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	start := time.Now()
	tl := NewTimeline(start)
	var cons *Consumer
	if len(r.brokers) > 0 {
		var err error
		if cons, err = StartConsumer(ctx, r.brokers, r.bodies.topics, runID, tl); err != nil {
			return res, err
		}
	}
	cpu0 := -1.0
	if r.cpu != nil {
		cpu0 = r.cpu()
	}
	var txns0 map[string]StageTxns
	if r.txns != nil {
		txns0 = r.txns()
	}

	httpHist := newHist(3)
	atk := newAttacker(o.Timeout, o.Connections)
	pacer := pacerFor(rate / float64(per))
	var last time.Time
	t0 := time.Now()
	results := atk.Attack(r.bodies.targeter(r.base, runID, o.Token), pacer, o.Duration, "sluice-bench")
	for hit := range results {
		ok := hit.Error == "" && hit.Code >= 200 && hit.Code < 300
		res.Requests++
		res.Offered += int64(per)
		res.Codes[codeName(hit.Code)]++
		if ok {
			res.Accepted += int64(per)
		} else {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = hit.Error
			}
		}
		record(httpHist, hit.Latency)
		tl.AddHTTP(hit.Timestamp, hit.Latency, per, ok)
		if e := hit.End(); e.After(last) {
			last = e
		}
		if ctx.Err() != nil {
			atk.Stop()
		}
	}
	if el := last.Sub(t0).Seconds(); el > 0 {
		res.AchievedRate = math.Round(float64(res.Accepted) / max(el, o.Duration.Seconds()))
	}
	res.HTTPP50, res.HTTPP95, res.HTTPP99, res.HTTPMax = ms(httpHist, 50), ms(httpHist, 95), ms(httpHist, 99), maxMs(httpHist)

	if cons != nil {
		cons.WaitFor(ctx, res.Accepted, o.Drain)
		if err := cons.Stop(); err != nil && res.FirstError == "" {
			res.FirstError = err.Error()
		}
		res.E2EMeasured = true
		res.Clean = cons.Count()
		h := cons.Hist
		res.E2EP50, res.E2EP95, res.E2EP99, res.E2EMax = ms(h, 50), ms(h, 95), ms(h, 99), maxMs(h)
	} else {
		res.E2EP50, res.E2EP95, res.E2EP99, res.E2EMax = -1, -1, -1, -1
	}
	if r.cpu != nil && cpu0 >= 0 {
		if c1 := r.cpu(); c1 >= 0 {
			res.ServerCPUSeconds = round3(c1 - cpu0)
			if res.Accepted > 0 {
				res.CPUMicrosPerEvent = round3(res.ServerCPUSeconds * 1e6 / float64(res.Accepted))
			}
		}
	}
	if txns0 != nil {
		res.Transactions = txnDelta(txns0, r.txns())
	}
	res.Sustained = sustained(res, o.SLO)
	res.timeline = tl.Seconds()
	return res, ctx.Err()
}

// sustained reports whether a run kept up with its offered load within the SLO.
func sustained(r Result, slo time.Duration) bool {
	if r.Offered == 0 || r.AchievedRate < 0.95*r.OfferedRate || float64(r.Errors) > 0.01*float64(r.Requests) {
		return false
	}
	if r.E2EMeasured {
		return r.E2EP95 >= 0 && r.E2EP95 < float64(slo)/float64(time.Millisecond) &&
			float64(r.Clean) >= 0.99*float64(r.Accepted)
	}
	return true
}

// pacerFor is a constant pacer at reqRate requests/s; fractional rates are kept by
// pacing over a longer period.
func pacerFor(reqRate float64) vegeta.Pacer {
	return vegeta.ConstantPacer{Freq: max(1, int(math.Round(reqRate*1000))), Per: 1000 * time.Second}
}

func codeName(c uint16) string {
	if c == 0 {
		return "transport_error"
	}
	return strconv.Itoa(int(c))
}
