package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// BenchmarkWindowCloseToEmit measures, on kfake, the time from producing the records that
// close a tumbling window (one per source partition, event time = end + grace) to the
// window's result being readable (read_committed) in agg.revenue_by_country_1m. The path
// is raw -> clean -> repartition (+ watermark markers) -> aggregate: three transactions.
//
//	go test -run '^$' -bench WindowCloseToEmit -benchtime 50x ./e2e/
func BenchmarkWindowCloseToEmit(b *testing.B) {
	p := harness.Start(b)
	a, _ := p.Deps.Pipeline.Aggregation("revenue_by_country_1m")
	ts := p.Deps.Schemas[gen.Purchases]
	enc := ingest.NewEncoder(ingest.Topic{Name: gen.Purchases, KeyField: "user_id", Subject: "purchases-value", Codec: ts.Raw},
		time.Now, 100*365*24*time.Hour)
	g, _ := gen.New(gen.Purchases, gen.Options{Seed: 77, Now: func() time.Time { return windowBase }})
	grace := a.Window.Grace.D()
	closers := func(at time.Time, i int) []*kgo.Record {
		var rs []*kgo.Record
		for part := range int32(3) {
			ev := g.Next()
			ev["event_time"] = at.Format(time.RFC3339Nano)
			r, _, err := enc.Record(ev, "")
			if err != nil {
				b.Fatal(err)
			}
			r.Partition = part
			rs = append(rs, r)
		}
		return rs
	}
	cl, err := kgo.NewClient(append(p.Deps.Kafka.Opts(),
		kgo.ConsumeTopics(wire.AggTopic(a.Name)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(10*time.Millisecond),
	)...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	wait := func(start int64) {
		ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
		defer cancel()
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				b.Fatalf("window %d never emitted", start)
			}
			found := false
			fs.EachRecord(func(r *kgo.Record) {
				v, _, err := p.Schemas.Decode(ctx, r.Value)
				if err == nil && v["window_start"].(time.Time).UnixMilli() == start {
					found = true
				}
			})
			if found {
				return
			}
		}
	}
	// Window 0 gets content from the first closers.
	p.Produce(closers(windowBase.Add(grace), -1)...)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		w := windowBase.Add(time.Duration(i) * time.Minute)
		t0 := time.Now()
		p.Produce(closers(w.Add(time.Minute+grace), i)...)
		wait(w.UnixMilli())
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) / 1e3 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.95), "p95-ms")
	b.ReportMetric(q(1), "max-ms")
}
