package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/sluicehq/sluice/pipeline/wire"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The open-model latency run of one system: on a fresh raw topic, events at a fixed rate
// whose event_time is their scheduled send time, so that the time a window can close is
// its end + grace on the wall clock. Measured, for events and windows of the measured
// interval only:
//   - dedup latency: scheduled send time -> the record visible on the system's dedup
//     output (read_committed);
//   - window latency: end + grace -> the window result visible (read_committed): the
//     first instant the result could exist, since every partition gets an event with a
//     time past it within 3/rate s.

// peerLatencyTail keeps producing after the measured interval until its last windows can
// close; peerLatencyWait then bounds the wait for their results.
const (
	peerLatencyTail = 8 * time.Second
	peerLatencyWait = 20 * time.Second
)

func latencyRun(ctx context.Context, o peerOptions, root, work, runID string, r peerRun, res *peerResult, cl *kgo.Client, progress io.Writer) error {
	tag := strings.ReplaceAll("peers-"+runID+"-"+strings.ReplaceAll(r.key, "_", "-")+"-live", ".", "")
	input := strings.ReplaceAll(tag, "-", "_")
	t := runTopics(runID, tag, r, input)
	topics := []string{input}
	if r.system != peerSluice {
		topics = append(topics, t.clean, t.windows)
	}
	if err := createTopics(ctx, kadm.NewClient(cl), topics...); err != nil {
		return err
	}
	wc, err := startWindowConsumer(o.Brokers, t.windows, r.system == peerSluice)
	if err != nil {
		return err
	}
	defer wc.Stop()
	dc, err := startDedupConsumer(o.Brokers, t.clean)
	if err != nil {
		return err
	}
	defer dc.Stop()

	p, id, err := startPeer(ctx, o, root, work, tag, r, t)
	if err != nil {
		return err
	}
	defer p.Stop()
	if id == 0 {
		id = 1
	}
	enc, err := newPeerEncoder(input, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "peers: %s: open model at %.0f events/s: %s warm-up, %s measured\n", r.key, o.Rate, o.LatencyWarmup, o.Latency)

	rnd := rand.New(rand.NewPCG(o.Seed, 0x6c6976)) // "liv"
	var seed [32]byte
	seed[0] = byte(o.Seed)
	seed[1] = 0x6c
	entropy := rand.NewChaCha8(seed)
	t0 := time.Now().Truncate(time.Millisecond)
	mFrom, mTo := t0.Add(o.LatencyWarmup), t0.Add(o.LatencyWarmup+o.Latency)
	end := mTo.Add(peerLatencyTail)
	var sent int64
	var prodErr atomic.Value
	var cpu0, cpu1 float64
	var measuredEvents int64
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for now := time.Now(); now.Before(end); now = time.Now() {
		select {
		case <-tick.C:
		case <-p.Exited():
			return p.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
		if cpu0 == 0 && !now.Before(mFrom) {
			cpu0 = p.CPU()
		}
		if cpu1 == 0 && !now.Before(mTo) {
			cpu1 = p.CPU()
		}
		due := int64(now.Sub(t0).Seconds() * o.Rate)
		for ; sent < due; sent++ {
			at := t0.Add(time.Duration(float64(sent) / o.Rate * float64(time.Second)))
			e := peerEvent{Part: int32(sent % peerPartitions), Time: at.UnixMilli(), Country: uint8(rnd.IntN(len(peerCountries))),
				User: int32(rnd.IntN(1000)), Amount: float64(rnd.IntN(100000)) / 100, Currency: "EUR", Seq: sent}
			u, err := ulid.New(uint64(e.Time), entropy)
			if err != nil {
				return err
			}
			e.ID = u.String()
			rec, err := enc.record(&e)
			if err != nil {
				return err
			}
			if !at.Before(mFrom) && at.Before(mTo) {
				dc.Expect(e.ID, at)
				measuredEvents++
			}
			cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
				if err != nil {
					prodErr.Store(err)
				}
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if e, ok := prodErr.Load().(error); ok {
		return fmt.Errorf("produce: %w", e)
	}
	// Wait for the measured windows (end+grace within the interval) and dedup records.
	grace := int64(5000)
	measuredWindows := func() []float64 {
		var lat []float64
		for _, w := range wc.Windows() {
			closeAt := time.UnixMilli(w.End + grace)
			if closeAt.Before(mFrom) || !closeAt.Before(mTo) {
				continue
			}
			lat = append(lat, float64(w.VisibleAt.Sub(closeAt).Microseconds())/1000)
		}
		return lat
	}
	wantWindows := 0
	for b := mFrom.UnixMilli()/60000*60000 - 60000; b < mTo.UnixMilli(); b += 60000 {
		if c := b + 60000 + grace; c >= mFrom.UnixMilli() && c < mTo.UnixMilli() {
			wantWindows += len(peerCountries)
		}
	}
	deadline := time.Now().Add(peerLatencyWait)
	for time.Now().Before(deadline) && (len(measuredWindows()) < wantWindows || dc.Pending() > 0) {
		time.Sleep(100 * time.Millisecond)
	}
	res.LatencyRSSPeakMB = peerRound1(p.RSSPeakMB())
	p.Stop()
	wl := measuredWindows()
	dl := dc.Latencies()
	res.LatencyRate = o.Rate
	res.LatencyProducedTotal = int(sent)
	if measuredEvents > 0 && cpu1 > 0 {
		res.LatencyCPUSPer1k = peerRound4((cpu1 - cpu0) / float64(measuredEvents) * 1000)
	}
	res.DedupSamples, res.WindowSamples = len(dl), len(wl)
	res.DedupLatencyP50, res.DedupLatencyP95, res.DedupLatencyP99 = pct(dl, 50), pct(dl, 95), pct(dl, 99)
	res.WindowLatencyP50, res.WindowLatencyP95, res.WindowLatencyP99 = pct(wl, 50), pct(wl, 95), pct(wl, 99)
	fmt.Fprintf(progress, "peers: %s: dedup p50/p95/p99 %.0f/%.0f/%.0f ms (%d of %d), window p50/p95/p99 %.0f/%.0f/%.0f ms (%d of %d windows), %.4f CPU s/1k events\n",
		r.key, res.DedupLatencyP50, res.DedupLatencyP95, res.DedupLatencyP99, len(dl), measuredEvents,
		res.WindowLatencyP50, res.WindowLatencyP95, res.WindowLatencyP99, len(wl), wantWindows, res.LatencyCPUSPer1k)
	if len(wl) < wantWindows {
		return fmt.Errorf("only %d of %d measured window results within %s after the load", len(wl), wantWindows, peerLatencyWait)
	}
	if int64(len(dl)) < measuredEvents {
		return fmt.Errorf("only %d of %d measured events reached the dedup output within %s after the load", len(dl), measuredEvents, peerLatencyWait)
	}
	return nil
}

// pct is the nearest-rank percentile of xs in ms, rounded to 0.1 (0 when empty).
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return peerRound1(s[max(0, min(i, len(s)-1))])
}

// dedupConsumer reads a dedup output (read_committed) and times the expected event ids.
type dedupConsumer struct {
	cl      *kgo.Client
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	pending map[string]time.Time
	lat     []float64
}

func startDedupConsumer(brokers []string, topic string) (*dedupConsumer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(50*time.Millisecond), kgo.AllowAutoTopicCreation())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	dc := &dedupConsumer{cl: cl, cancel: cancel, done: make(chan struct{}), pending: map[string]time.Time{}}
	go func() {
		defer close(dc.done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			now := time.Now()
			dc.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				id := eventIDOf(r)
				if at, ok := dc.pending[id]; ok {
					dc.lat = append(dc.lat, float64(now.Sub(at).Microseconds())/1000)
					delete(dc.pending, id)
				}
			})
			dc.mu.Unlock()
		}
	}()
	return dc, nil
}

// eventIDOf is the sluice-event-id header, else the first field of the framed Avro value
// (event_id, a string).
func eventIDOf(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == wire.HeaderEventID {
			return string(h.Value)
		}
	}
	b := r.Value
	if len(b) < 6 {
		return ""
	}
	var raw uint64
	i, shift := 5, 0
	for ; i < len(b) && shift < 64; i++ {
		raw |= uint64(b[i]&0x7f) << shift
		shift += 7
		if b[i]&0x80 == 0 {
			i++
			break
		}
	}
	n := int64(raw>>1) ^ -int64(raw&1)
	if n < 0 || i+int(n) > len(b) {
		return ""
	}
	return string(b[i : i+int(n)])
}

// Expect registers an event id sent at at (before it is produced).
func (dc *dedupConsumer) Expect(id string, at time.Time) {
	dc.mu.Lock()
	dc.pending[id] = at
	dc.mu.Unlock()
}

// Pending is how many expected ids have not shown up yet.
func (dc *dedupConsumer) Pending() int {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return len(dc.pending)
}

// Latencies are the measured latencies so far, in ms.
func (dc *dedupConsumer) Latencies() []float64 {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return slices.Clone(dc.lat)
}

func (dc *dedupConsumer) Stop() {
	dc.cancel()
	<-dc.done
	dc.cl.Close()
}
