package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/sluicehq/sluice/pipeline/wire"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Consumer measures true end-to-end latency: it reads <topic>.clean with
// read_committed (what every downstream consumer sees), from the end offsets at its
// start, and for every record of this run (record header bench-run) records the time
// from sluice-ingest-ts (set by ingest when the request arrived) until the record
// arrived here.
type Consumer struct {
	cl    *kgo.Client
	runID string
	tl    *Timeline
	// Hist holds every end-to-end latency; read it after Stop.
	Hist *hdrhistogram.Histogram

	count    atomic.Int64
	other    atomic.Int64 // records of other runs or without a usable header
	progress chan struct{}
	stop     context.CancelFunc
	wg       sync.WaitGroup
	err      error
}

// StartConsumer starts reading the clean topics of topics on brokers.
func StartConsumer(ctx context.Context, brokers, topics []string, runID string, tl *Timeline) (*Consumer, error) {
	clean := make([]string, len(topics))
	for i, t := range topics {
		clean[i] = wire.CleanTopic(t)
	}
	acl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	ends, err := kadm.NewClient(acl).ListEndOffsets(ctx, clean...)
	acl.Close()
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("bench: end offsets of %v: %w", clean, err)
	}
	parts := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if parts[o.Topic] == nil {
			parts[o.Topic] = map[int32]kgo.Offset{}
		}
		parts[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("sluice-bench"),
		kgo.ConsumePartitions(parts),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	cctx, stop := context.WithCancel(ctx)
	c := &Consumer{cl: cl, runID: runID, tl: tl, Hist: newHist(3), progress: make(chan struct{}, 1), stop: stop}
	c.wg.Go(func() { c.run(cctx) })
	return c, nil
}

func (c *Consumer) run(ctx context.Context) {
	for ctx.Err() == nil {
		fs := c.cl.PollFetches(ctx)
		now := time.Now()
		fs.EachError(func(t string, p int32, err error) {
			// Fetch errors are retried by the client; the first is kept for the report.
			if !errors.Is(err, context.Canceled) && c.err == nil {
				c.err = fmt.Errorf("consume %s/%d: %w", t, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			var run, its string
			for _, h := range r.Headers {
				switch h.Key {
				case RunRecordHeader:
					run = string(h.Value)
				case wire.HeaderIngestTS:
					its = string(h.Value)
				}
			}
			us, err := strconv.ParseInt(its, 10, 64)
			if run != c.runID || err != nil {
				c.other.Add(1)
				return
			}
			t := time.UnixMicro(us)
			lat := now.Sub(t)
			record(c.Hist, lat)
			c.tl.AddE2E(t, lat)
			c.count.Add(1)
		})
		select {
		case c.progress <- struct{}{}:
		default:
		}
	}
}

// Count is the number of this run's records read so far.
func (c *Consumer) Count() int64 { return c.count.Load() }

// WaitFor waits until n records of this run arrived or timeout passed, and reports
// whether they all arrived.
func (c *Consumer) WaitFor(ctx context.Context, n int64, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for c.Count() < n {
		select {
		case <-c.progress:
		case <-deadline.C:
			return c.Count() >= n
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// Stop ends the consumer; after it Hist and the timeline are safe to read. It returns
// the first fetch error seen (the client retried it), for the report.
func (c *Consumer) Stop() error {
	c.stop()
	c.wg.Wait()
	c.cl.Close()
	return c.err
}
