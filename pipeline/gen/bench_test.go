package gen_test

import (
	"testing"
	"time"

	"github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pipeline/gen"
)

func BenchmarkNext(b *testing.B) {
	for _, topic := range gen.Topics() {
		b.Run(topic, func(b *testing.B) {
			g := mustNew(b, topic, gen.Options{Seed: 1, MaxSkew: time.Second})
			b.ReportAllocs()
			for b.Loop() {
				g.Next()
			}
		})
	}
}

// BenchmarkNextJSON is Next plus the JSON encoding HTTPTarget does, per event.
func BenchmarkNextJSON(b *testing.B) {
	g := mustNew(b, gen.Purchases, gen.Options{Seed: 1})
	b.ReportAllocs()
	var n int
	for b.Loop() {
		buf, err := json.Marshal(g.Next())
		if err != nil {
			b.Fatal(err)
		}
		n += len(buf)
	}
	b.ReportMetric(float64(n)/float64(b.N), "bytes/event")
}
