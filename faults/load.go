package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pipeline/gen"
)

// LoadConfig is a steady open-model load on one topic's batch endpoint.
type LoadConfig struct {
	// URL is the ingest API's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// Topic is the event topic (a gen topic: page_views, clicks or purchases).
	Topic string
	// Rate is events per second; Batch events per request.
	Rate, Batch int
	// Workers is the number of concurrent clients; a batch waits for a free one.
	Workers int
	// Seed selects the generated events; Case prefixes their event_ids.
	Seed uint64
	Case string
	// Timeout bounds one request on the client (far above the ack deadline: a request
	// that takes longer is a hang, and is reported).
	Timeout time.Duration
	// Now is the clock event times come from (default time.Now).
	Now func() time.Time
}

// Attempt is one HTTP request: when it began and ended, and its status (0: transport
// error).
type Attempt struct {
	Start, End time.Time
	Status     int
	Batch      int
}

// Duration is how long the request took.
func (a Attempt) Duration() time.Duration { return a.End.Sub(a.Start) }

// Outcome is what happened to one batch.
type Outcome int

// Outcomes of a batch.
const (
	// Pending: never answered 202, 504 or a transport error; every answer was 503 (or it
	// was never sent). Nothing of it may be in Kafka.
	Pending Outcome = iota
	// Unknown: a 504 or a transport error and no 202: it may be in Kafka, once.
	Unknown
	// Accepted: a 202. It must be in Kafka exactly once.
	Accepted
)

// Load runs the load and records every attempt.
type Load struct {
	cfg  LoadConfig
	cl   *http.Client
	gen  *gen.Generator
	mu   sync.Mutex
	atts []Attempt
	// ids[b] are batch b's event ids; outcome[b] its outcome.
	ids     [][]string
	outcome []Outcome
	// Events[b] are batch b's events.
	events [][]map[string]any
	// bodies not yet sent, and a wait group over the workers.
	queue chan int
	wg    sync.WaitGroup
}

// NewLoad prepares a load (nothing is sent until Run).
func NewLoad(cfg LoadConfig) (*Load, error) {
	if cfg.Rate <= 0 || cfg.Batch <= 0 || cfg.Workers <= 0 || cfg.URL == "" {
		return nil, fmt.Errorf("load: rate, batch, workers and URL are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	g, err := gen.New(cfg.Topic, gen.Options{Seed: cfg.Seed, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	return &Load{
		cfg: cfg,
		cl: &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: cfg.Workers, MaxConnsPerHost: cfg.Workers,
		}},
		gen:   g,
		queue: make(chan int, 1<<16),
	}, nil
}

// Run sends batches at the configured rate until ctx ends, then waits until every batch
// already made has an answer other than 503 (each worker retries 503s after Retry-After,
// and 504s and transport errors with the same body) or until drain ends.
func (l *Load) Run(ctx, drain context.Context) {
	for range l.cfg.Workers {
		l.wg.Add(1)
		go l.worker(drain)
	}
	every := time.Second * time.Duration(l.cfg.Batch) / time.Duration(l.cfg.Rate)
	tick := time.NewTicker(every)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			b := l.makeBatch(l.cfg.Batch, 0)
			select {
			case l.queue <- b:
			default: // a backlog of 65,536 batches: the pipeline is gone; record as never sent
			}
		}
	}
	close(l.queue)
	l.wg.Wait()
}

// Send makes one batch of n events whose event_time is shift after now and sends it
// like Run's workers do (retrying until an answer other than 503, or ctx ends); it
// returns the final status.
func (l *Load) Send(ctx context.Context, n int, shift time.Duration) int {
	return l.send(ctx, l.makeBatch(n, shift))
}

func (l *Load) makeBatch(n int, shift time.Duration) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := len(l.ids)
	at := l.cfg.Now().Add(shift).UTC().Format("2006-01-02T15:04:05.000Z07:00")
	evs := make([]map[string]any, n)
	ids := make([]string, n)
	for i := range evs {
		ev := l.gen.Next()
		ev["event_time"] = at
		ids[i] = l.cfg.Case + "-" + strconv.Itoa(b) + "-" + strconv.Itoa(i)
		ev["event_id"] = ids[i]
		evs[i] = ev
	}
	l.ids = append(l.ids, ids)
	l.events = append(l.events, evs)
	l.outcome = append(l.outcome, Pending)
	return b
}

func (l *Load) worker(ctx context.Context) {
	defer l.wg.Done()
	for b := range l.queue {
		l.send(ctx, b)
	}
}

// send posts batch b until it gets an answer other than 503, 504 or a transport error,
// or ctx ends.
func (l *Load) send(ctx context.Context, b int) int {
	l.mu.Lock()
	body, err := json.Marshal(l.events[b])
	l.mu.Unlock()
	if err != nil {
		panic(err) // generated events always marshal
	}
	url := l.cfg.URL + "/api/v1/events/" + l.cfg.Topic
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return 0
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			panic(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", l.cfg.Case+"-"+strconv.Itoa(b))
		a := Attempt{Start: time.Now(), Batch: b}
		resp, err := l.cl.Do(req)
		retryAfter := time.Second
		if err == nil {
			a.Status = resp.StatusCode
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s >= 0 {
				retryAfter = time.Duration(s) * time.Second
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		a.End = time.Now()
		if ctx.Err() != nil && a.Status == 0 {
			return 0 // cancelled by the drain deadline, not a transport error of the server
		}
		l.mu.Lock()
		l.atts = append(l.atts, a)
		switch {
		case a.Status == http.StatusAccepted:
			l.outcome[b] = Accepted
		case a.Status == http.StatusGatewayTimeout || a.Status == 0:
			if l.outcome[b] == Pending {
				l.outcome[b] = Unknown
			}
		}
		l.mu.Unlock()
		switch a.Status {
		case http.StatusServiceUnavailable, http.StatusGatewayTimeout, 0:
			// Retry the same body as docs/API.md says, after Retry-After (503/504) or
			// 100 ms (a transport error), at most 5 s.
			if a.Status == 0 {
				retryAfter = 100 * time.Millisecond
			}
			t := time.NewTimer(min(retryAfter, 5*time.Second))
			select {
			case <-ctx.Done():
				t.Stop()
				return 0
			case <-t.C:
			}
		default:
			return a.Status
		}
	}
}

// Attempts returns every request made so far, in the order they ended.
func (l *Load) Attempts() []Attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.atts)
	slices.SortFunc(out, func(a, b Attempt) int { return a.End.Compare(b.End) })
	return out
}

// Batches returns each batch's event ids and outcome.
func (l *Load) Batches() (ids [][]string, outcome []Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ids), slices.Clone(l.outcome)
}

// Summary is what one load run measured at the client.
type Summary struct {
	// Sent counts the events of every batch sent at least once; Accepted those of
	// batches answered 202.
	Sent, Accepted int
	// Requests and by status.
	Requests int
	Status   map[int]int
	// Longest503 is the longest time during which every answer was a 503 or a transport
	// error: from the first such answer after a 202 to the next 202.
	Longest503 time.Duration
	// Longest is the longest request.
	Longest time.Duration
}

// Summarize computes the summary from the attempts and batches.
func (l *Load) Summarize() Summary {
	atts := l.Attempts()
	ids, outcome := l.Batches()
	s := Summary{Status: map[int]int{}, Requests: len(atts)}
	sent := map[int]bool{}
	for _, a := range atts {
		s.Status[a.Status]++
		sent[a.Batch] = true
		s.Longest = max(s.Longest, a.Duration())
	}
	for b := range ids {
		if sent[b] {
			s.Sent += len(ids[b])
		}
		if outcome[b] == Accepted {
			s.Accepted += len(ids[b])
		}
	}
	s.Longest503 = Longest503(atts)
	return s
}

// Longest503 is the longest span of atts (ordered by end) in which no request got a 202:
// from the end of the first non-202 after a 202 to the end of the next 202, or to the
// last attempt if none followed. Statuses other than 202, 503, 504 and 0 do not count.
func Longest503(atts []Attempt) time.Duration {
	var longest time.Duration
	var from time.Time
	for _, a := range atts {
		switch a.Status {
		case http.StatusAccepted:
			if !from.IsZero() {
				longest = max(longest, a.End.Sub(from))
				from = time.Time{}
			}
		case http.StatusServiceUnavailable, http.StatusGatewayTimeout, 0:
			if from.IsZero() {
				from = a.End
			}
		}
	}
	if !from.IsZero() && len(atts) > 0 {
		longest = max(longest, atts[len(atts)-1].End.Sub(from))
	}
	return longest
}
