package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// TestMain removes the sluice binary the kill tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveSluiceBinary()
	os.Exit(code)
}

// restartBound is how long a `sluice process` restarted after kill -9 may take before
// .clean flows again. The goal is under 5 s (docs/BENCHMARKS.md); the bound is generous
// for loaded CI machines. Without static group membership it took the group's session
// timeout (45 s) and more.
const restartBound = 15 * time.Second

// A real `sluice process` (every stage, default settings) is killed with SIGKILL under
// steady traffic and restarted at once with the same --instance-id, three times: each
// time every partition of .clean flows again within restartBound of the restart (the new instance takes its
// predecessor's place in each stage's group, and fences and aborts the transaction it
// left open, without waiting for a session or transaction timeout), and in the end every
// posted event is in .clean exactly once. It prints the restart-to-flowing times.
//
// SLUICE_TEST_SLUICE_BIN runs another build (e.g. an older commit); SLUICE_* variables
// reach the child (e.g. SLUICE_GROUP_PROTOCOL=consumer); SLUICE_TEST_KILL9_NEW_ID=1
// restarts under a new instance id instead (a replaced task), which is not held to the
// bound. Used for the measurements in docs/BENCHMARKS.md.
func TestProcessKill9RestartFlowsFast(t *testing.T) {
	p := harness.Start(t, harness.WithoutProcessor())
	const topic = gen.Purchases
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("SLUICE_TEST_KILL9_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	newID := os.Getenv("SLUICE_TEST_KILL9_NEW_ID") != ""

	// The event id and partition of every record that reaches .clean.
	type cleanRecord struct {
		id        string
		partition int32
	}
	seen := make(chan cleanRecord, 1<<16)
	cl, err := kgo.NewClient(append(p.Deps.Kafka.Opts(),
		kgo.ConsumeTopics(topic+".clean"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		defer cl.Close()
		for ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				for _, h := range r.Headers {
					if h.Key != wire.HeaderEventID {
						continue
					}
					select {
					case seen <- cleanRecord{string(h.Value), r.Partition}:
					case <-ctx.Done():
					}
				}
			})
		}
	})

	// Steady traffic: a batch of 10 every 50 ms, each id with the time its request began.
	var (
		mu     sync.Mutex
		posted = map[string]time.Time{}
		ids    []string
	)
	wg.Go(func() {
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for i := uint64(0); i < 1_000_000; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			at := time.Now()
			code, _, b := p.Post(topic, "application/json", mustJSON(t, events(t, topic, 7000+i, 10)))
			if code != 202 {
				t.Errorf("POST: status %d: %s", code, b)
				return
			}
			var a accepted
			if err := json.Unmarshal(b, &a); err != nil {
				t.Errorf("202 body %s: %v", b, err)
				return
			}
			mu.Lock()
			for _, id := range a.EventIDs {
				posted[id] = at
			}
			ids = append(ids, a.EventIDs...)
			mu.Unlock()
		}
	})

	// flowing waits until every partition of .clean holds an event posted after since
	// and returns when the first and the last partition got one.
	parts := p.Deps.Schemas[topic].Topic.Partitions
	flowing := func(since time.Time, limit time.Duration) (first, all time.Time, ok bool) {
		tm := time.NewTimer(limit)
		defer tm.Stop()
		got := map[int32]bool{}
		for {
			select {
			case r := <-seen:
				mu.Lock()
				at, ok := posted[r.id]
				mu.Unlock()
				if !ok || !at.After(since) || got[r.partition] {
					continue
				}
				got[r.partition] = true
				if first.IsZero() {
					first = time.Now()
				}
				if len(got) == int(parts) {
					return first, time.Now(), true
				}
			case <-tm.C:
				return first, time.Time{}, false
			}
		}
	}

	id := "kill9"
	proc := p.StartCommand("process", id, "--log-level", "warn")
	if _, _, ok := flowing(time.Now(), 2*time.Minute); !ok {
		t.Fatalf("nothing reached .clean after the first start:\n%s", proc.Output())
	}
	var took, tookAll []time.Duration
	for round := range rounds {
		// Let the groups settle in steady state before the crash.
		flowing(time.Now().Add(2*time.Second), time.Minute)
		// ... then crash at a different point of the 50 ms traffic cycle each round (just
		// after a commit, or with a transaction open).
		<-time.After(time.Duration(round*17%50) * time.Millisecond)
		killed := time.Now()
		proc.Kill()
		if newID {
			id = fmt.Sprintf("kill9-%d", round)
		}
		restarted := time.Now()
		proc = p.StartCommand("process", id, "--log-level", "warn")
		first, all, ok := flowing(killed, 3*time.Minute)
		if !ok {
			t.Fatalf("round %d: not every partition of .clean got new records 3m after the restart:\n%s", round, proc.Output())
		}
		took, tookAll = append(took, first.Sub(restarted)), append(tookAll, all.Sub(restarted))
		t.Logf("round %d: kill -9 -> restart -> new records in %s.clean: first partition after %s, all %d after %s",
			round, topic, took[round].Round(10*time.Millisecond), parts, tookAll[round].Round(10*time.Millisecond))
	}
	t.Logf("restart-to-flowing (%s, %d rounds): first partition %v, all partitions %v", p.Backend(), rounds, took, tookAll)
	for i, d := range tookAll {
		if d > restartBound && !newID {
			t.Errorf("round %d: every partition of .clean flowed again only %s after the restart, want under %s", i, d, restartBound)
		}
	}

	cancel()
	wg.Wait()
	settle(t, p)
	start := time.Now()
	if err := proc.Terminate(time.Minute); err != nil {
		t.Errorf("graceful stop: %v\n%s", err, proc.Output())
	}
	t.Logf("graceful stop took %s", time.Since(start).Round(10*time.Millisecond))
	mu.Lock()
	defer mu.Unlock()
	exactlyOnce(t, idsOf(t, p.ReadAll(topic+".clean")), ids)
}

// A real `sluice sink` (a DuckDB file) is killed with SIGKILL while the clean stage feeds
// it and restarted at once with the same --instance-id, twice: each time the new process
// commits rows to the warehouse within restartBound of the restart (static membership
// gives it its predecessor's partitions at once; its warehouse offsets say where to go
// on). SLUICE_TEST_SLUICE_BIN and SLUICE_* work as in TestProcessKill9RestartFlowsFast.
func TestSinkKill9RestartFlowsFast(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly())
	const topic = gen.Purchases
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for i := uint64(0); i < 1_000_000; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			if code, _, b := p.Post(topic, "application/json", mustJSON(t, events(t, topic, 9000+i, 10))); code != 202 {
				t.Errorf("POST: status %d: %s", code, b)
				return
			}
		}
	})

	db := filepath.Join(t.TempDir(), "warehouse.duckdb")
	start := func() (*harness.Command, string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return p.StartCommand("sink", "kill9-sink", "--duckdb-path", db, "--http-addr", addr, "--log-level", "warn"), addr
	}
	// written waits until the sink serving metrics on addr committed rows and returns when.
	written := func(addr string, limit time.Duration) (time.Time, bool) {
		deadline := time.Now().Add(limit)
		for i := 0; time.Now().Before(deadline) && i < 100_000; i++ {
			if sinkRows(addr) > 0 {
				return time.Now(), true
			}
			<-time.After(20 * time.Millisecond)
		}
		return time.Time{}, false
	}
	sink, addr := start()
	if _, ok := written(addr, 2*time.Minute); !ok {
		t.Fatalf("the sink wrote nothing after the first start:\n%s", sink.Output())
	}
	var took []time.Duration
	for round := range 2 {
		<-time.After(2 * time.Second)
		sink.Kill()
		restarted := time.Now()
		sink, addr = start()
		at, ok := written(addr, 3*time.Minute)
		if !ok {
			t.Fatalf("round %d: the restarted sink wrote nothing in 3m:\n%s", round, sink.Output())
		}
		took = append(took, at.Sub(restarted))
		t.Logf("round %d: kill -9 -> restart -> first warehouse commit after %s", round, took[round].Round(10*time.Millisecond))
	}
	t.Logf("sink restart-to-flowing (%s): %v", p.Backend(), took)
	for i, d := range took {
		if d > restartBound {
			t.Errorf("round %d: the sink wrote again only %s after the restart, want under %s", i, d, restartBound)
		}
	}
	cancel()
	if err := sink.Terminate(time.Minute); err != nil {
		t.Errorf("graceful stop: %v\n%s", err, sink.Output())
	}
}

// sinkRows is the sum of sluice_sink_rows_total on the /metrics of addr (0 if it does
// not answer yet).
func sinkRows(addr string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "sluice_sink_rows_total{") {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:]), 64); err == nil {
			sum += v
		}
	}
	return sum
}
