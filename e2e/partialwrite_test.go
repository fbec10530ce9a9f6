package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/sink"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// TestRetriedBatchesExactlyOnce: concurrent batches larger than a small ingest buffer
// can hold together get 503s; each client retries its batch with the same
// Idempotency-Key until it gets its 202. A request answered with anything but 2xx
// leaves nothing of itself visible, so the raw topic (read_committed) already holds
// every event once, and so do .clean and the warehouse.
//
// Before the transactional ingest producer, a 503 could follow a partial write (the
// buffer filled part-way through a batch), and the retry, with new server-assigned
// ids, duplicated the part written: 338,062 rows for 300,000 orders in the attack run.
func TestRetriedBatchesExactlyOnce(t *testing.T) {
	const (
		clients   = 6
		batches   = 4   // per client
		batchSize = 500 // events; about 120 KB of records
		maxTries  = 400
	)
	p := harness.Start(t, harness.WithCleanOnly(), harness.WithService(func(s *config.Service) {
		s.MaxBufferedBytes = 256 << 10 // about two batches
	}))
	w := harness.OpenWarehouse(t, harness.DuckDB)
	p.StartSink(w)

	var (
		wg                 sync.WaitGroup
		unavailable, ambig atomic.Int64
		mu                 sync.Mutex
		want               []string
	)
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			for b := range batches {
				evs := events(t, "purchases", uint64(1000+c*batches+b), batchSize)
				for _, ev := range evs {
					delete(ev, "event_id") // the key gives the ids
				}
				body := mustJSON(t, evs)
				key := fmt.Sprintf("retried-%d-%d", c, b)
				for try := 1; ; try++ {
					code, _, resp := p.Post("purchases", "application/json", body, "Idempotency-Key", key)
					if code == 202 {
						break
					}
					switch code {
					case 503:
						unavailable.Add(1)
					case 504:
						ambig.Add(1)
					default:
						errs <- fmt.Errorf("batch %s: status %d: %s", key, code, resp)
						return
					}
					if try == maxTries {
						errs <- fmt.Errorf("batch %s: still %d after %d tries", key, code, try)
						return
					}
					time.Sleep(5 * time.Millisecond) // the client's backoff
				}
				mu.Lock()
				for i := range batchSize {
					want = append(want, fmt.Sprintf("%s-%d", key, i))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d batches of %d events: %d answers 503, %d answers 504 before their 202s",
		clients*batches, batchSize, unavailable.Load(), ambig.Load())
	if unavailable.Load() == 0 {
		t.Fatal("no request got 503: the buffer never filled, the test proves nothing")
	}

	// Nothing of a 503 is visible, so even before deduplication every event is there once
	// (a 504, whose outcome is unknown, may have left a copy that the clean stage drops).
	raw := idsOf(t, p.ReadAll("purchases"))
	if ambig.Load() == 0 {
		exactlyOnce(t, raw, want)
	}
	settle(t, p)
	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), want)

	p.WaitSinkCaughtUp(w, sinkCaughtUp)
	got := map[string]int{}
	rows, err := w.Query(t.Context(), "SELECT EVENT_ID FROM "+sink.TableName(wire.CleanTopic("purchases")))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got[id]++
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, got, want)
}

// TestAbortedRequestInvisible: while one partition of purchases refuses writes, a batch
// spread over every partition is written in part (the other partitions take their
// records), then its transaction is aborted at the ack deadline: the client gets 503,
// and a read_committed reader (the clean stage) never sees any of it, though the log
// holds the part that was written.
func TestAbortedRequestInvisible(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly(), harness.WithService(func(s *config.Service) {
		s.AckTimeout = 500 * time.Millisecond
	}))
	c := p.FaultCluster()
	f := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "purchases", Partitions: []int32{1},
		Err: kerr.NotEnoughReplicas, Count: -1})
	evs := events(t, "purchases", 31, 30)
	code, hdr, body := p.Post("purchases", "application/json", mustJSON(t, evs))
	if code != 503 || hdr.Get("Retry-After") == "" {
		t.Fatalf("status %d (Retry-After %q) while partition 1 refuses writes, want 503: %s", code, hdr.Get("Retry-After"), body)
	}
	f.Remove()
	ok := post202(t, p, "purchases", "application/json", mustJSON(t, events(t, "purchases", 32, 30)))
	settle(t, p)

	var failed []string
	for _, ev := range evs {
		failed = append(failed, ev["event_id"].(string))
	}
	written := 0
	for _, r := range readUncommitted(t, p, "purchases", ok.EventIDs) {
		if slices.Contains(failed, r) {
			written++
		}
	}
	if written == 0 {
		t.Fatal("no record of the failed request reached the log: nothing was partly written, the test proves nothing")
	}
	t.Logf("%d of the 503 request's 30 records were written, then aborted", written)
	exactlyOnce(t, idsOf(t, p.ReadAll("purchases")), ok.EventIDs)
	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), ok.EventIDs)
}

// readUncommitted returns the sluice-event-id of every record in topic, aborted ones
// included, up to the point where every id of until was read.
func readUncommitted(t *testing.T, p *harness.Pipeline, topic string, until []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append(p.Deps.Kafka.Opts(), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	left := map[string]bool{}
	for _, id := range until {
		left[id] = true
	}
	var ids []string
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_uncommitted %s: %d ids never read", topic, len(left))
		}
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == wire.HeaderEventID {
					ids = append(ids, string(h.Value))
					delete(left, string(h.Value))
				}
			}
		})
	}
	return ids
}
