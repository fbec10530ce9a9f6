package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/reprocess"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// visibility records when each record of the topics it reads first became visible to a
// read-committed consumer that starts at their current end.
type visibility struct {
	mu sync.Mutex
	// seen: <topic>/<key> -> when it was first read, for .clean by sluice-event-id and
	// for agg.<name> by window key (live results only: no reprocess header).
	seen map[string]time.Time
	// ingest: sluice-event-id -> its sluice-ingest-ts (the ingest instant, Unix µs).
	ingest map[string]time.Time
}

func watchVisibility(t *testing.T, p *harness.Pipeline, topics ...string) *visibility {
	t.Helper()
	ends, err := p.Admin().ListEndOffsets(t.Context(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if parts[o.Topic] == nil {
			parts[o.Topic] = map[int32]kgo.Offset{}
		}
		parts[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	cl, err := kgo.NewClient(append(p.Deps.Kafka.Opts(), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(parts), kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	v := &visibility{seen: map[string]time.Time{}, ingest: map[string]time.Time{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(t.Context())
			if fs.IsClientClosed() || t.Context().Err() != nil {
				return
			}
			now := time.Now()
			v.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				k := string(r.Key)
				if r.Topic == wire.CleanTopic(gen.Purchases) {
					k = hdrValue(r, wire.HeaderEventID)
					if ms, err := strconv.ParseInt(hdrValue(r, wire.HeaderIngestTS), 10, 64); err == nil {
						v.ingest[k] = time.UnixMicro(ms)
					}
				} else if hdrValue(r, wire.HeaderReprocessID) != "" {
					return
				}
				if _, ok := v.seen[r.Topic+"/"+k]; !ok {
					v.seen[r.Topic+"/"+k] = now
				}
			})
			v.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cl.Close(); <-done })
	return v
}

// at is when topic/key became visible (ok false: not yet).
func (v *visibility) at(topic, key string) (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	at, ok := v.seen[topic+"/"+key]
	return at, ok
}

func (v *visibility) ingestOf(id string) time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ingest[id]
}

// latencyStats are the largest and median of ds.
func latencyStats(ds []time.Duration) (p50, worst time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// TestReprocessBesideLivePipeline: the live pipeline keeps going while reprocesses run.
// After ten minutes of history, live purchases arrive in steps of 30 (30 s of event time
// each): first 6 steps with nothing else running (the baseline), then 16 steps while
// reprocesses of [2m, 8m) run back to back in a goroutine (each reads the history and
// rewrites 120 windows in agg.<name>, beside the live writes to the same partitions).
// Each step's end-to-end latency is measured as a read-committed consumer sees it: from
// each event's ingest instant until it is in purchases.clean, and from the step's produce
// until every window it closes (the oracle says which) is in agg.<name>. Under the
// reprocesses the worst of both stays under 1 s, every live result equals the oracle and
// no window gets a second live result, and the rewritten windows equal the oracle too.
func TestReprocessBesideLivePipeline(t *testing.T) {
	p := harness.Start(t)
	a, _ := p.Deps.Pipeline.Aggregation("revenue_by_country_1m")
	spec, _, _ := process.Spec(*a, 3)
	from, to := windowBase.Add(2*time.Minute), windowBase.Add(8*time.Minute)
	history := windowEvents(t, gen.Purchases, 81, 3000, windowBase, 200*time.Millisecond, time.Second) // 10 minutes
	produced := p.ProduceEvents(gen.Purchases, history)
	p.WaitAllCaughtUp(time.Minute)

	const baseline, under, per = 6, 16, 30
	live := windowEvents(t, gen.Purchases, 82, (baseline+under)*per, windowBase.Add(10*time.Minute), time.Second, 0)
	clean, agg := wire.CleanTopic(gen.Purchases), wire.AggTopic(a.Name)
	vis := watchVisibility(t, p, clean, agg)
	closed := map[string]bool{}
	for _, w := range harness.Oracle(spec, oracleEvents(t, *a, produced)).Finals {
		closed[fmt.Sprintf("%s@%d", w.Group, w.Start)] = true
	}

	type span struct{ from, to time.Time }
	var (
		mu     sync.Mutex
		runs   []span
		runErr error
	)
	stop, stopped := make(chan struct{}), make(chan struct{})
	startLoop := func() {
		first := make(chan struct{})
		go func() {
			defer close(stopped)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				began := time.Now()
				if i == 0 {
					close(first)
				}
				_, err := reprocess.Run(t.Context(), reprocess.Options{Pipeline: p.Deps.Pipeline, Kafka: p.Deps.Kafka,
					Decoder: p.Schemas, Codec: p.Deps.AggCodecs[a.Name], Aggregation: a.Name, From: from, To: to,
					RunID: fmt.Sprintf("beside-live-%d", i)})
				mu.Lock()
				runs = append(runs, span{began, time.Now()})
				if err != nil && runErr == nil {
					runErr = err
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		<-first
	}

	var cleanLat, aggLat [2][]time.Duration // [0] baseline, [1] under reprocess
	var steps []span
	for s := range baseline + under {
		phase := 0
		if s >= baseline {
			phase = 1
		}
		if s == baseline {
			startLoop()
		}
		batch := live[s*per : (s+1)*per]
		t0 := time.Now()
		ps := p.ProduceEvents(gen.Purchases, batch)
		produced = append(produced, ps...)
		var newly []string
		for _, w := range harness.Oracle(spec, oracleEvents(t, *a, produced)).Finals {
			if k := fmt.Sprintf("%s@%d", w.Group, w.Start); !closed[k] {
				closed[k] = true
				newly = append(newly, k)
			}
		}
		var last time.Time
		waitFor(t, fmt.Sprintf("step %d in %s and its %d closed windows in %s", s, clean, len(newly), agg), func() bool {
			for _, pe := range ps {
				at, ok := vis.at(clean, pe.EventID)
				if !ok {
					return false
				}
				if at.After(last) {
					last = at
				}
			}
			for _, k := range newly {
				at, ok := vis.at(agg, k)
				if !ok {
					return false
				}
				if at.After(last) {
					last = at
				}
			}
			return true
		})
		for _, pe := range ps {
			at, _ := vis.at(clean, pe.EventID)
			cleanLat[phase] = append(cleanLat[phase], at.Sub(vis.ingestOf(pe.EventID)))
		}
		for _, k := range newly {
			at, _ := vis.at(agg, k)
			aggLat[phase] = append(aggLat[phase], at.Sub(t0))
		}
		if phase == 1 {
			steps = append(steps, span{t0, last})
		}
	}
	close(stop)
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	if runErr != nil {
		t.Fatalf("a reprocess beside the live pipeline failed: %v", runErr)
	}
	// Every measured step overlapped a reprocess (they ran back to back).
	for i, st := range steps {
		if !slices.ContainsFunc(runs, func(r span) bool { return r.from.Before(st.to) && r.to.After(st.from) }) {
			t.Errorf("step %d [%s, %s] overlapped no reprocess", baseline+i, st.from.Format(time.StampMilli), st.to.Format(time.StampMilli))
		}
	}
	for phase, name := range []string{"no reprocess", fmt.Sprintf("%d reprocesses running", len(runs))} {
		c50, cmax := latencyStats(cleanLat[phase])
		a50, amax := latencyStats(aggLat[phase])
		t.Logf("%s: ingest -> %s visible: median %s, worst %s (%d events); produce -> closed window in %s visible: median %s, worst %s (%d windows)",
			name, clean, c50.Round(time.Millisecond), cmax.Round(time.Millisecond), len(cleanLat[phase]),
			agg, a50.Round(time.Millisecond), amax.Round(time.Millisecond), len(aggLat[phase]))
	}
	if len(aggLat[1]) == 0 || len(runs) == 0 {
		t.Fatalf("%d windows closed and %d reprocesses ran during the measured steps: the test proves nothing", len(aggLat[1]), len(runs))
	}
	if _, worst := latencyStats(cleanLat[1]); worst >= time.Second {
		t.Errorf("during the reprocesses an event took %s to reach %s, want under 1 s", worst, clean)
	}
	if _, worst := latencyStats(aggLat[1]); worst >= time.Second {
		t.Errorf("during the reprocesses a closed window took %s to reach %s, want under 1 s", worst, agg)
	}

	// The results: every live result (no reprocess header) once and equal to the oracle;
	// every window's latest result (the rewritten ones in range) equal to the oracle.
	p.WaitAllCaughtUp(time.Minute)
	want := harness.Oracle(spec, oracleEvents(t, *a, produced))
	liveOnly := map[string]aggResult{}
	latest := map[string]aggResult{}
	for _, r := range p.ReadAll(agg) {
		if r.DecodeErr != nil {
			t.Fatal(r.DecodeErr)
		}
		res := asResults(map[string]harness.Record{r.Key: r})[r.Key]
		latest[r.Key] = res
		if id := r.Headers[wire.HeaderReprocessID]; id != "" {
			if !inRange(r.Key, from, to) {
				t.Errorf("reprocess %s wrote window %s outside [%s, %s)", id, r.Key, from, to)
			}
			continue
		}
		if _, dup := liveOnly[r.Key]; dup {
			t.Errorf("window %s has two live results", r.Key)
		}
		liveOnly[r.Key] = res
	}
	compareWithOracle(t, *a, liveOnly, want)
	compareWithOracle(t, *a, latest, want)
}
