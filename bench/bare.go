package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/pipeline/wire"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// bareTopic is the topic of the bare produce->consume loop.
const bareTopic = wire.ReservedPrefix + ".bench.bare"

// bareValueBytes is the value size of the bare loop's records, about an Avro event of
// the built-in schemas.
const bareValueBytes = 160

// BareResult is the floor our pipeline is compared with: franz-go producing to the same
// broker (acks=all, idempotent, lz4 as ingest's producer) and a read_committed consumer
// reading it back, at the same offered rate, latency from the scheduled send time.
type BareResult struct {
	OfferedRate  float64 `json:"offered_rate"`
	AchievedRate float64 `json:"achieved_rate"`
	Produced     int64   `json:"produced"`
	Consumed     int64   `json:"consumed"`
	Errors       int64   `json:"errors"`
	P50          float64 `json:"p50_ms"`
	P95          float64 `json:"p95_ms"`
	P99          float64 `json:"p99_ms"`
	Max          float64 `json:"max_ms"`
}

// runBare offers rate records/s for d to a fresh partition set of bareTopic and reads
// them back. Sends follow a fixed schedule (record k at start + k/rate) and latency is
// measured from the schedule, so a stalled producer shows up as latency, not as fewer
// samples (no coordinated omission).
func runBare(ctx context.Context, brokers []string, rate float64, d, drain time.Duration) (BareResult, error) {
	res := BareResult{OfferedRate: rate}
	runID := time.Now().UnixNano()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("sluice-bench-bare"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.DefaultProduceTopic(bareTopic), kgo.MaxBufferedRecords(1_000_000))
	if err != nil {
		return res, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, bareTopic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return res, fmt.Errorf("bench: create %s: %w", bareTopic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, bareTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return res, fmt.Errorf("bench: end offsets of %s: %w", bareTopic, err)
	}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { parts[o.Partition] = kgo.NewOffset().At(o.Offset) })
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("sluice-bench-bare-consumer"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{bareTopic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return res, err
	}
	hist := newHist(3)
	var consumed atomic.Int64
	cctx, stopCons := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) < 16 || int64(binary.BigEndian.Uint64(r.Value[8:])) != runID {
					return
				}
				sched := time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))
				record(hist, now.Sub(sched))
				consumed.Add(1)
			})
		}
	})
	defer func() {
		stopCons()
		wg.Wait()
		cons.Close()
	}()

	var errs atomic.Int64
	var lastAck atomic.Int64
	total := int64(math.Round(rate * d.Seconds()))
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var sent int64
	for sent < total && ctx.Err() == nil {
		<-tick.C
		due := min(total, int64(time.Since(start).Seconds()*rate))
		for ; sent < due; sent++ {
			v := make([]byte, bareValueBytes)
			sched := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
			binary.BigEndian.PutUint64(v, uint64(sched.UnixNano()))
			binary.BigEndian.PutUint64(v[8:], uint64(runID))
			cl.Produce(ctx, &kgo.Record{Key: binary.BigEndian.AppendUint64(nil, uint64(sent)), Value: v},
				func(_ *kgo.Record, err error) {
					if err != nil {
						errs.Add(1)
						return
					}
					lastAck.Store(time.Now().UnixNano())
				})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return res, err
	}
	res.Produced, res.Errors = sent, errs.Load()
	if el := time.Duration(lastAck.Load() - start.UnixNano()).Seconds(); el > 0 {
		res.AchievedRate = math.Round(float64(sent-res.Errors) / max(el, d.Seconds()))
	}
	deadline := time.NewTimer(drain)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond) // polling a real broker with a deadline
	defer poll.Stop()
wait:
	for consumed.Load() < sent-res.Errors {
		select {
		case <-poll.C:
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	stopCons()
	wg.Wait()
	res.Consumed = consumed.Load()
	res.P50, res.P95, res.P99, res.Max = ms(hist, 50), ms(hist, 95), ms(hist, 99), maxMs(hist)
	return res, nil
}
