package sink_test

import (
	"errors"
	"testing"

	"github.com/sluicehq/sluice/pipeline/sink"
)

// TestCrashAtEveryStepThenRetry crashes a writer after each protocol step of a batch and
// recovers the way the sink does, then checks every record landed exactly once.
func TestCrashAtEveryStepThenRetry(t *testing.T) {
	steps := []struct {
		step           string
		committedAfter int64 // NEXT_OFFSET and rows right after the crash
	}{
		{sink.StepStaged, 4},
		{sink.StepCAS, 4},
		{sink.StepMerged, 4},
		{sink.StepDeleted, 4},
		{sink.StepCommitted, 9},
	}
	recoveries := []struct {
		name string
		// recover finishes the log [0, 12) after the crashed write of [4, 9) at oldEpoch.
		recover func(t *testing.T, w sink.Warehouse, oldEpoch int64)
	}{
		{"new owner seeks to the stored offset", func(t *testing.T, w sink.Warehouse, oldEpoch int64) {
			epoch, next := claim(t, w, "purchases.clean", 0)
			if epoch != oldEpoch+1 {
				t.Fatalf("epoch after claim = %d, want %d", epoch, oldEpoch+1)
			}
			write(t, w, purchases(0, next, 12, epoch)) // a different batch end than the crashed one
			if err := w.Write(t.Context(), purchases(0, 4, 9, oldEpoch)); !errors.Is(err, sink.ErrFenced) {
				t.Fatalf("the crashed writer's retry = %v, want ErrFenced", err)
			}
		}},
		{"same owner retries the batch", func(t *testing.T, w sink.Warehouse, oldEpoch int64) {
			write(t, w, purchases(0, 4, 9, oldEpoch))
			write(t, w, purchases(0, 9, 12, oldEpoch))
		}},
	}
	for _, rc := range recoveries {
		for _, st := range steps {
			t.Run(rc.name+"/"+st.step, func(t *testing.T) {
				c := &crasher{}
				w := openDuck(t, sink.WithFailpoint(c.hook))
				ensure(t, w, "PURCHASES", "purchases")
				epoch, _ := claim(t, w, "purchases.clean", 0)
				write(t, w, purchases(0, 0, 4, epoch))

				c.at = st.step
				if err := w.Write(t.Context(), purchases(0, 4, 9, epoch)); !errors.Is(err, errCrash) {
					t.Fatalf("Write with a crash at %s = %v", st.step, err)
				}
				if got := nextOffset(t, w, "purchases.clean", 0); got != st.committedAfter {
					t.Fatalf("next offset after the crash = %d, want %d", got, st.committedAfter)
				}
				if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != st.committedAfter {
					t.Fatalf("rows after the crash = %d, want %d", n, st.committedAfter)
				}

				rc.recover(t, w, epoch)
				if got := nextOffset(t, w, "purchases.clean", 0); got != 12 {
					t.Fatalf("next offset = %d, want 12", got)
				}
				if n := scalar(t, w, `SELECT count(DISTINCT event_id) FROM purchases`); n != 12 {
					t.Fatalf("distinct events = %d, want 12", n)
				}
				if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != 12 {
					t.Fatalf("rows = %d, want 12", n)
				}
				if n := scalar(t, w, `SELECT count(*) FROM purchases
					WHERE CAST(json_extract(record_metadata, '$.offset') AS BIGINT) <> CAST(substr(event_id, 7) AS BIGINT)`); n != 0 {
					t.Fatalf("%d rows carry another record's metadata", n)
				}
				if n := scalar(t, w, `SELECT count(*) FROM sluice_stage_purchases`); n != 0 {
					t.Fatalf("staged rows left = %d", n)
				}
			})
		}
	}
}
