package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
)

// BenchmarkProduceBatch compares the producers ingest can use, on kfake: each op is one
// call of 100 records of 200 bytes over 3 partitions (a batch request), from 64
// concurrent callers. idempotent is the old producer (a 503 may follow a partial
// write); txn-N is the transactional producer with N clients.
func BenchmarkProduceBatch(b *testing.B) {
	type producer interface {
		Produce(ctx context.Context, recs ...*kgo.Record) error
		Close(ctx context.Context) error
	}
	cases := []struct {
		name string
		make func(cfg kafka.Config) (producer, error)
	}{
		{"idempotent", func(cfg kafka.Config) (producer, error) { return kafka.NewProducer(cfg, kafka.ProducerOptions{}) }},
	}
	for _, n := range []int{1, 2, 4} {
		cases = append(cases, struct {
			name string
			make func(cfg kafka.Config) (producer, error)
		}{fmt.Sprintf("txn-%d", n), func(cfg kafka.Config) (producer, error) {
			return kafka.NewTxnProducer(cfg, kafka.TxnProducerOptions{TransactionalID: "bench", Clients: n})
		}})
	}
	value := make([]byte, 200)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			cl := newCluster(b, kfake.SeedTopics(3, "events"))
			p, err := c.make(kafka.Config{Brokers: cl.ListenAddrs()})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = p.Close(context.Background()) }()
			b.SetParallelism(32) // 32 callers per GOMAXPROCS (64 on 2 cores)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					recs := make([]*kgo.Record, 100)
					for i := range recs {
						recs[i] = &kgo.Record{Topic: "events", Key: []byte{byte(i)}, Value: value}
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					err := p.Produce(ctx, recs...)
					cancel()
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
