package process_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
)

// TestMeasureRestart prints how long a stage takes, from NewStage until its first
// output, to restart on a task whose local state holds N ids with an intact directory
// and checkpoint (a tail restore), on kfake. N ids are written straight to the store the
// way committed transactions leave them; the changelog holds a few records with the
// checkpoint at its end. Run with:
//
//	SLUICE_RESTART_IDS=10000000 SLUICE_STATE_DIR=/tmp/restart10M \
//	  go test -count=1 -timeout 3600s -run TestMeasureRestart -v ./pipeline/process/
//
// SLUICE_STATE_DIR keeps the filled directory for the next run (filled once).
// SLUICE_RESTORE_RECORDS=M instead writes M changelog records and times a full restore
// of them into an empty directory (records/s); with SLUICE_STATE_BACKEND=memory into
// memory. SLUICE_RESTORE_BROKERS=host:port,... runs on those brokers instead of kfake.
func TestMeasureRestart(t *testing.T) {
	n, errN := strconv.Atoi(os.Getenv("SLUICE_RESTART_IDS"))
	m, errM := strconv.Atoi(os.Getenv("SLUICE_RESTORE_RECORDS"))
	if errN != nil && errM != nil {
		t.Skip("set SLUICE_RESTART_IDS or SLUICE_RESTORE_RECORDS (a measurement, not a test)")
	}
	var brokers []string
	if b := os.Getenv("SLUICE_RESTORE_BROKERS"); b != "" {
		brokers = strings.Split(b, ",")
	}
	ls := newLocalStateOn(t, brokers)
	ls.wait = 30 * time.Minute
	dir := os.Getenv("SLUICE_STATE_DIR")
	if dir == "" || errM == nil {
		dir = t.TempDir()
	}
	if errM == nil && os.Getenv("SLUICE_STATE_BACKEND") == "memory" {
		dir = ""
	}
	ctx := t.Context()
	cl, err := kgo.NewClient(append(ls.kc.Opts(), kgo.TransactionalID("filler"), kgo.DefaultProduceTopic(ddChangelog),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	records := 100
	if errM == nil {
		records = m
	}
	start := time.Now()
	const txn = 50_000
	for i := 0; i < records; i += txn {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for j := i; j < min(i+txn, records); j++ {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "01J9ZZZZZY%016d", j), Value: stream.Int64Codec{}.Encode(nil, 1_700_000_000_000+int64(time.Hour/time.Millisecond))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	_, end, err := kafka.PartitionBounds(ctx, ls.kc, ddChangelog, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("changelog: %d records in %v (end offset %d)", records, time.Since(start).Round(time.Millisecond), end)

	if errN == nil {
		b, err := pebblestore.Open[int64](storeDir(dir), stream.Int64Codec{}, pebblestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s := stream.NewStoreOn[int64]("dedup", stream.Int64Codec{}, b).PackKeys(stream.ULIDKeys{})
		d := stream.NewDedup(s, time.Hour)
		fill := time.Now()
		have := s.Len()
		for i := have; i < n; i++ {
			d.Add(fmt.Sprintf("01J9ZZZZZZ%016d", i), 1_700_000_000_000)
			if (i+1)%100_000 == 0 || i == n-1 {
				if err := s.CommitAt(stream.NoCheckpoint); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n > have {
			t.Logf("filled %d ids in %v", n-have, time.Since(fill).Round(time.Millisecond))
		}
		if err := s.CommitAt(end); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// An id no earlier run on this directory has seen.
	ls.next = os.Getpid() % 900_000
	t0 := time.Now()
	in := ls.start("a", dir, nil)
	ls.produce(1, false)
	ls.waitOut(1)
	took := time.Since(t0)
	if errN == nil {
		t.Logf("restart with %d ids, intact directory: first output %v after NewStage (tail restores %v, full %v)",
			n, took.Round(time.Millisecond), in.restores("tail"), in.restores("full"))
	} else {
		t.Logf("full restore of %d changelog records: first output %v after NewStage, %.0f records/s (full restores %v)",
			records, took.Round(time.Millisecond), float64(records)/took.Seconds(), in.restores("full"))
	}
	in.stop(t)
	if errM == nil && dir != "" {
		// The bulk restore counted and indexed every key: the ids restored plus the one
		// produced.
		b, err := pebblestore.Open[int64](storeDir(dir), stream.Int64Codec{}, pebblestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		st := stream.NewStoreOn[int64]("dedup", stream.Int64Codec{}, b)
		d := stream.NewDedup(st, time.Hour)
		if st.Len() != records+1 || d.ExpiryBacklog() != 0 {
			t.Fatalf("after the full restore: %d keys, expiry backlog %d; want %d keys", st.Len(), d.ExpiryBacklog(), records+1)
		}
		if bl := st.ExpiryBacklog(1_700_000_000_000 + int64(3*time.Hour/time.Millisecond)); bl != records+1 {
			t.Fatalf("after the full restore the expiry index holds %d ids, want %d", bl, records+1)
		}
	}
}
