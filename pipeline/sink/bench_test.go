package sink_test

import (
	"fmt"
	"testing"
)

// BenchmarkWrite measures Write of purchases batches of several sizes on in-memory
// DuckDB: the fixed cost per batch (about eight statements) and the cost per row.
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int64{1, 100, 1000} {
		b.Run(fmt.Sprintf("rows=%d", size), func(b *testing.B) {
			w := openDuck(b)
			ensure(b, w, "PURCHASES", "purchases")
			epoch, next := claim(b, w, "purchases.clean", 0)
			b.ReportAllocs()
			for b.Loop() {
				write(b, w, purchases(0, next, next+size, epoch))
				next += size
			}
			b.ReportMetric(float64(size*int64(b.N))/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
