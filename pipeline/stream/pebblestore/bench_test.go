package pebblestore_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
)

// BenchmarkDedup is the clean stage's deduplication alone, per event, on both backends:
// Contains then Add (a new id) or Contains alone (a duplicate), ULID ids, a transaction
// (changelog records, then CommitAt) every 5,000 events, 24 h horizon. "unique" sees
// each id once (a new store every 200,000 ids); "duplicates" sees only ids it holds.
//
//	go test -run '^$' -bench BenchmarkDedup -benchtime 400000x -count 3 ./pipeline/stream/pebblestore/
func BenchmarkDedup(b *testing.B) {
	const (
		distinct = 200000
		txnSize  = 5000
		horizon  = 24 * time.Hour
	)
	ids := make([]string, distinct)
	for i := range ids {
		ids[i] = ulid.ULID(idOf(uint64(i))).String()
	}
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for _, backend := range []string{"memory", "pebble"} {
		var last *stream.Store[int64]
		newDedup := func() *stream.Dedup {
			if last != nil {
				_ = last.Close()
			}
			var s *stream.Store[int64]
			if backend == "memory" {
				s = stream.NewStore[int64]("dedup", stream.Int64Codec{})
			} else {
				be, err := pebblestore.Open[int64](b.TempDir(), stream.Int64Codec{}, pebblestore.Options{})
				if err != nil {
					b.Fatal(err)
				}
				s = stream.NewStoreOn[int64]("dedup", stream.Int64Codec{}, be)
			}
			last = s
			return stream.NewDedup(s.PackKeys(stream.ULIDKeys{}), horizon)
		}
		commit := func(d *stream.Dedup, cp int64) {
			d.Store().Changes(func(string, []byte) {})
			if err := d.Store().CommitAt(cp); err != nil {
				b.Fatal(err)
			}
		}
		for _, dup := range []bool{false, true} {
			name := backend + "/unique"
			if dup {
				name = backend + "/duplicates"
			}
			b.Run(name, func(b *testing.B) {
				d := newDedup()
				if dup {
					for i, id := range ids {
						d.Add(id, base+int64(i))
					}
					commit(d, 0)
				}
				i, txn := 0, int64(0)
				b.ReportAllocs()
				cpu0 := processCPU(b)
				for b.Loop() {
					at := base + int64(i)
					if d.Contains(ids[i], at) != dup {
						b.Fatalf("id %d: duplicate %v, want %v", i, !dup, dup)
					}
					if !dup {
						d.Add(ids[i], at)
					}
					i++
					if i%txnSize == 0 {
						txn++
						commit(d, txn)
					}
					if i == len(ids) {
						i = 0
						if !dup {
							d = newDedup()
						}
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
				// The process's CPU time (background flushes and compactions included):
				// on a shared machine the wall time per event includes waiting for a core.
				b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
		if last != nil {
			_ = last.Close()
		}
	}
}

// processCPU is the CPU time (user + system) of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
