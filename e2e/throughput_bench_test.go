package e2e

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/gen"
)

// BenchmarkCleanBacklog measures the clean stage end to end on the harness's backend
// (kfake by default; SLUICE_TEST_BACKEND=external for a real broker): each iteration
// writes 20,000 purchases to the raw topic (untimed) and times until the running clean
// stage has committed them all (decode, rules, dedup, encode, transactional produce of
// .clean and the dedup changelog, offsets). It reports events/s.
//
//	go test -run '^$' -bench CleanBacklog -benchtime 3x ./e2e/
func BenchmarkCleanBacklog(b *testing.B) {
	const n = 20_000
	p := harness.Start(b, harness.WithCleanOnly())
	g, err := gen.New(gen.Purchases, gen.Options{Seed: 500, Now: fixedNow})
	if err != nil {
		b.Fatal(err)
	}
	p.WaitCaughtUp("sluice.clean", time.Minute, gen.Purchases)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		evs := make([]map[string]any, n)
		for j := range evs {
			evs[j] = g.Next()
		}
		p.ProduceEvents(gen.Purchases, evs)
		b.StartTimer()
		start := time.Now()
		p.WaitCaughtUp("sluice.clean", 5*time.Minute, gen.Purchases)
		total += time.Since(start)
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "events/s")
}
