package faults

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pipeline/wire"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Tail reads a topic (read_committed) as records are committed and records, per second of
// arrival, each record's end-to-end latency: from its sluice-ingest-ts header (when
// ingest received it) to when Tail read it.
type Tail struct {
	cl *kgo.Client
	mu sync.Mutex
	// lat[s] are the latencies of the records read in second s (unix seconds).
	lat map[int64][]time.Duration
}

// StartTail starts reading topic from its start through brokers; Stop ends it.
func StartTail(ctx context.Context, brokers []string, topic string) (*Tail, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	t := &Tail{cl: cl, lat: map[int64][]time.Duration{}}
	go t.run(ctx)
	return t, nil
}

func (t *Tail) run(ctx context.Context) {
	for {
		fs := t.cl.PollFetches(ctx)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key != wire.HeaderIngestTS {
					continue
				}
				us, err := strconv.ParseInt(string(h.Value), 10, 64)
				if err != nil {
					continue
				}
				d := now.Sub(time.UnixMicro(us))
				t.mu.Lock()
				t.lat[now.Unix()] = append(t.lat[now.Unix()], d)
				t.mu.Unlock()
			}
		})
	}
}

// Stop stops reading.
func (t *Tail) Stop() { t.cl.Close() }

// Second is one second of arrivals: its start, how many records and their p95.
type Second struct {
	At    time.Time
	Count int
	P95   time.Duration
}

// Seconds returns every second in which records arrived, in order.
func (t *Tail) Seconds() []Second {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Second, 0, len(t.lat))
	for s, ds := range t.lat {
		out = append(out, Second{At: time.Unix(s, 0), Count: len(ds), P95: P95(ds)})
	}
	slices.SortFunc(out, func(a, b Second) int { return a.At.Compare(b.At) })
	return out
}

// P95 is the 95th percentile of ds (nearest rank), 0 for none.
func P95(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (95*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

// Recovery measures how long the end-to-end latency took to come back after a fault that
// began at since and was over at over: the pipeline has recovered at the first run of
// stable consecutive seconds, beginning at or after over, with records in each and every
// p95 under limit. d is the time from since to the end of the last second before that run
// whose p95 was at least limit (0 when none was); ok is false when no such run came before
// the end of secs. A slow second later on (the machine's own noise) does not undo it.
func Recovery(secs []Second, since, over time.Time, limit time.Duration) (d time.Duration, ok bool) {
	const stable = 5
	var lastBad time.Time
	for i, s := range secs {
		if s.At.Add(time.Second).Before(since) {
			continue
		}
		if !s.At.Before(over.Truncate(time.Second)) && i+stable <= len(secs) && settled(secs[i:i+stable], limit) {
			if !lastBad.IsZero() {
				d = max(lastBad.Sub(since), 0)
			}
			return d, true
		}
		if s.P95 >= limit {
			lastBad = s.At.Add(time.Second)
		}
	}
	return 0, false
}

// settled reports whether secs are consecutive seconds, each with records and a p95 under
// limit.
func settled(secs []Second, limit time.Duration) bool {
	for i, s := range secs {
		if s.Count == 0 || s.P95 >= limit || (i > 0 && !s.At.Equal(secs[i-1].At.Add(time.Second))) {
			return false
		}
	}
	return true
}
