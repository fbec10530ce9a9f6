package e2e

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/gen"
)

// BenchmarkCleanBacklog measures the clean stage end to end on the harness's backend
// (kfake by default; SLUICE_TEST_BACKEND=external for a real broker): 20,000 purchases
// wait in the raw topic, one processor instance starts, and the clock runs until the
// clean stage has committed all of them (decode, rules, dedup, encode, transactional
// produce of .clean and the dedup changelog, offsets). It reports events/s.
//
//	go test -run '^$' -bench CleanBacklog -benchtime 3x ./e2e/
func BenchmarkCleanBacklog(b *testing.B) {
	const n = 20_000
	var total time.Duration
	for i := range b.N {
		b.StopTimer()
		p := harness.Start(b, harness.WithCleanOnly(), harness.WithoutProcessor())
		g, err := gen.New(gen.Purchases, gen.Options{Seed: uint64(500 + i), Now: fixedNow})
		if err != nil {
			b.Fatal(err)
		}
		evs := make([]map[string]any, n)
		for j := range evs {
			evs[j] = g.Next()
		}
		p.ProduceEvents(gen.Purchases, evs)
		b.StartTimer()
		start := time.Now()
		p.StartProcessor()
		p.WaitCaughtUp("sluice.clean", 5*time.Minute, gen.Purchases)
		total += time.Since(start)
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "events/s")
}
