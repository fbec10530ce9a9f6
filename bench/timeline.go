package main

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 us to 5 minutes, with three
// significant digits (0.1% resolution) for the totals and two for the per-second
// buckets of the plot.
const (
	maxLatencyMicros = int64(5 * time.Minute / time.Microsecond)
	maxSeconds       = 7200 // a timeline never grows past two hours
)

// newHist returns an empty latency histogram (microseconds).
func newHist(sigfigs int) *hdrhistogram.Histogram {
	return hdrhistogram.New(1, maxLatencyMicros, sigfigs)
}

// record adds d to h, clamped to the histogram's range (a value out of range would
// otherwise be dropped and the tail would look better than it was).
func record(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	_ = h.RecordValue(min(max(us, 1), maxLatencyMicros))
}

// ms is quantile q (0-100) of h in milliseconds; -1 for an empty histogram.
func ms(h *hdrhistogram.Histogram, q float64) float64 {
	if h == nil || h.TotalCount() == 0 {
		return -1
	}
	return round3(float64(h.ValueAtQuantile(q)) / 1000)
}

// maxMs is the largest value of h in milliseconds; -1 for an empty histogram.
func maxMs(h *hdrhistogram.Histogram) float64 {
	if h == nil || h.TotalCount() == 0 {
		return -1
	}
	return round3(float64(h.Max()) / 1000)
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// Second is one second of a run: what happened to the requests sent and the events
// ingested in it.
type Second struct {
	// HTTP holds the latencies of the requests sent in this second.
	HTTP *hdrhistogram.Histogram
	// E2E holds the ingest-to-clean latencies of the events ingested in this second.
	E2E *hdrhistogram.Histogram
	// Offered is the events sent, Accepted those the API acknowledged (2xx), Clean
	// those that reached <topic>.clean, by their ingest second.
	Offered, Accepted, Clean int64
}

// Timeline is a run second by second. One goroutine writes HTTP results and another
// e2e results, so it keeps them in two slices merged by Seconds.
type Timeline struct {
	start time.Time
	http  []Second
	e2e   []Second
}

// NewTimeline starts a timeline at start.
func NewTimeline(start time.Time) *Timeline { return &Timeline{start: start} }

func (tl *Timeline) slot(s *[]Second, t time.Time) *Second {
	i := int(t.Sub(tl.start) / time.Second)
	if i < 0 || i >= maxSeconds {
		return nil
	}
	for len(*s) <= i {
		*s = append(*s, Second{})
	}
	return &(*s)[i]
}

// AddHTTP records a request sent at t that carried n events.
func (tl *Timeline) AddHTTP(t time.Time, lat time.Duration, n int, ok bool) {
	sec := tl.slot(&tl.http, t)
	if sec == nil {
		return
	}
	if sec.HTTP == nil {
		sec.HTTP = newHist(2)
	}
	record(sec.HTTP, lat)
	sec.Offered += int64(n)
	if ok {
		sec.Accepted += int64(n)
	}
}

// AddE2E records an event ingested at t that reached .clean after lat.
func (tl *Timeline) AddE2E(t time.Time, lat time.Duration) {
	sec := tl.slot(&tl.e2e, t)
	if sec == nil {
		return
	}
	if sec.E2E == nil {
		sec.E2E = newHist(2)
	}
	record(sec.E2E, lat)
	sec.Clean++
}

// Seconds merges both sides; call it after both writers stopped.
func (tl *Timeline) Seconds() []Second {
	n := max(len(tl.http), len(tl.e2e))
	out := make([]Second, n)
	for i := range out {
		if i < len(tl.http) {
			out[i].HTTP, out[i].Offered, out[i].Accepted = tl.http[i].HTTP, tl.http[i].Offered, tl.http[i].Accepted
		}
		if i < len(tl.e2e) {
			out[i].E2E, out[i].Clean = tl.e2e[i].E2E, tl.e2e[i].Clean
		}
	}
	return out
}
