package sink_test

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/pipeline/sink"
)

// TestFortyEightPartitionsInterleaved writes 48 partitions in a seeded random order of
// batches, crashing a fifth of the writes at a random step and recovering by a fresh
// Claim, with fenced zombie writes in between. Every record must land exactly once.
func TestFortyEightPartitionsInterleaved(t *testing.T) {
	const (
		parts   = 48
		perPart = 20
		topic   = "purchases.clean"
	)
	steps := []string{sink.StepStaged, sink.StepCAS, sink.StepMerged, sink.StepDeleted, sink.StepCommitted}
	rng := rand.New(rand.NewPCG(48, 6))
	c := &crasher{}
	w := openDuck(t, sink.WithFailpoint(c.hook))
	ensure(t, w, "PURCHASES", "purchases")

	type owner struct{ epoch, next, stale int64 }
	own := make([]owner, parts)
	for p := range int32(parts) {
		own[p].epoch, own[p].next = claim(t, w, topic, p)
	}
	crashes, fenced := 0, 0
	for {
		var pending []int32
		for p := range int32(parts) {
			if own[p].next < perPart {
				pending = append(pending, p)
			}
		}
		if len(pending) == 0 {
			break
		}
		p := pending[rng.IntN(len(pending))]
		o := &own[p]
		if o.stale > 0 && rng.IntN(4) == 0 { // the previous owner wakes up and writes
			err := w.Write(t.Context(), purchases(p, o.next, min(perPart, o.next+2), o.stale))
			if !errors.Is(err, sink.ErrFenced) {
				t.Fatalf("partition %d: zombie write = %v, want ErrFenced", p, err)
			}
			fenced++
		}
		end := min(perPart, o.next+1+rng.Int64N(7))
		if rng.IntN(5) == 0 {
			c.at = steps[rng.IntN(len(steps))]
		}
		err := w.Write(t.Context(), purchases(p, o.next, end, o.epoch))
		switch {
		case err == nil:
			o.next = end
		case errors.Is(err, errCrash):
			crashes++
			o.stale = o.epoch
			o.epoch, o.next = claim(t, w, topic, p)
		default:
			t.Fatalf("partition %d: %v", p, err)
		}
	}
	if crashes == 0 || fenced == 0 {
		t.Fatalf("crashes = %d, fenced = %d: the seed exercises nothing", crashes, fenced)
	}
	checkPartitions(t, w, topic, parts, perPart)
}

// TestFortyEightPartitionsConcurrently writes 48 partitions from 48 goroutines into one
// file database, as 48 partition workers of a sink would.
func TestFortyEightPartitionsConcurrently(t *testing.T) {
	const (
		parts   = 48
		perPart = 21
		topic   = "purchases.clean"
	)
	w := openDuckAt(t, filepath.Join(t.TempDir(), "wh.duckdb"))
	ensure(t, w, "PURCHASES", "purchases")
	var wg sync.WaitGroup
	errs := make([]error, parts)
	for p := range int32(parts) {
		wg.Go(func() {
			epoch, next, err := w.Claim(t.Context(), topic, p)
			for err == nil && next < perPart {
				end := min(perPart, next+7)
				if err = w.Write(t.Context(), purchases(p, next, end, epoch)); err == nil {
					next = end
				}
			}
			errs[p] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	checkPartitions(t, w, topic, parts, perPart)
}

// checkPartitions asserts that every partition committed perPart offsets and rows, each
// event once, and no staged row is left.
func checkPartitions(t *testing.T, w sink.Warehouse, topic string, parts, perPart int64) {
	t.Helper()
	if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != parts*perPart {
		t.Fatalf("rows = %d, want %d", n, parts*perPart)
	}
	if n := scalar(t, w, `SELECT count(DISTINCT event_id) FROM purchases`); n != parts*perPart {
		t.Fatalf("distinct events = %d, want %d", n, parts*perPart)
	}
	if n := scalar(t, w, `SELECT count(*) FROM sluice_offsets WHERE topic = ? AND next_offset = ?`, topic, perPart); n != parts {
		t.Fatalf("partitions at offset %d = %d, want %d", perPart, n, parts)
	}
	if n := scalar(t, w, `SELECT count(*) FROM (SELECT record_metadata->>'partition' AS p, count(*) AS n
		FROM purchases GROUP BY p) WHERE n <> ?`, perPart); n != 0 {
		t.Fatalf("%d partitions with a wrong row count", n)
	}
	if n := scalar(t, w, `SELECT count(*) FROM sluice_stage_purchases`); n != 0 {
		t.Fatalf("staged rows left = %d", n)
	}
}
