package sink_test

import (
	"errors"
	"testing"

	"github.com/sluicehq/sluice/pipeline/sink"
)

func TestWriteLandsRows(t *testing.T) {
	w := openDuck(t)
	ensure(t, w, "PURCHASES", "purchases")
	epoch, next := claim(t, w, "purchases.clean", 3)
	if epoch != 1 || next != 0 {
		t.Fatalf("first claim = (%d, %d), want (1, 0)", epoch, next)
	}
	write(t, w, purchases(3, 0, 3, epoch))

	checkPurchaseRows(t, w, "CAST(record_metadata AS VARCHAR)")
}

func TestWriteSameBatchTwiceIsIdempotent(t *testing.T) {
	w := openDuck(t)
	ensure(t, w, "PURCHASES", "purchases")
	epoch, _ := claim(t, w, "purchases.clean", 0)
	b := purchases(0, 0, 4, epoch)
	write(t, w, b)
	write(t, w, b) // a retry after a lost commit acknowledgement
	if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != 4 {
		t.Fatalf("rows = %d, want 4", n)
	}
	if got := nextOffset(t, w, "purchases.clean", 0); got != 4 {
		t.Fatalf("next offset = %d, want 4", got)
	}
	if n := scalar(t, w, `SELECT count(*) FROM sluice_stage_purchases`); n != 0 {
		t.Fatalf("staged rows left = %d", n)
	}
}

func TestWriteOffsetMismatch(t *testing.T) {
	tests := []struct {
		name       string
		start, end int64
	}{
		{"a batch already overtaken", 0, 2},
		{"a gap after the stored offset", 5, 8},
		{"overlapping the stored offset", 2, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := openDuck(t)
			ensure(t, w, "PURCHASES", "purchases")
			epoch, _ := claim(t, w, "purchases.clean", 0)
			write(t, w, purchases(0, 0, 4, epoch))
			err := w.Write(t.Context(), purchases(0, tt.start, tt.end, epoch))
			if !errors.Is(err, sink.ErrOffsetMismatch) {
				t.Fatalf("Write = %v, want ErrOffsetMismatch", err)
			}
			if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != 4 {
				t.Fatalf("rows = %d, want 4", n)
			}
			if got := nextOffset(t, w, "purchases.clean", 0); got != 4 {
				t.Fatalf("next offset = %d, want 4", got)
			}
		})
	}
}

func TestStaleEpochIsFenced(t *testing.T) {
	w := openDuck(t)
	ensure(t, w, "PURCHASES", "purchases")
	old, _ := claim(t, w, "purchases.clean", 0)
	write(t, w, purchases(0, 0, 2, old))

	epoch, next := claim(t, w, "purchases.clean", 0) // a rebalance moved the partition
	if epoch != old+1 || next != 2 {
		t.Fatalf("claim = (%d, %d), want (%d, 2)", epoch, next, old+1)
	}
	if err := w.Write(t.Context(), purchases(0, 2, 5, old)); !errors.Is(err, sink.ErrFenced) {
		t.Fatalf("stale Write = %v, want ErrFenced", err)
	}
	write(t, w, purchases(0, next, 5, epoch))
	if err := w.Write(t.Context(), purchases(0, 5, 6, old)); !errors.Is(err, sink.ErrFenced) {
		t.Fatalf("stale Write after progress = %v, want ErrFenced", err)
	}
	if err := w.Write(t.Context(), purchases(1, 0, 1, 1)); !errors.Is(err, sink.ErrFenced) {
		t.Fatalf("Write to an unclaimed partition = %v, want ErrFenced", err)
	}
	if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != 5 {
		t.Fatalf("rows = %d, want 5", n)
	}
}

func TestWriteRejectsRowsThatDoNotFit(t *testing.T) {
	w := openDuck(t)
	ensure(t, w, "PURCHASES", "purchases")
	epoch, _ := claim(t, w, "purchases.clean", 0)
	b := purchases(0, 0, 6, epoch)
	b.Rows[1].Values["amount"] = "lots"                       // wrong type
	b.Rows[2].Values["coupon"] = "XMAS"                       // no column (EnsureTable not called)
	b.Rows[3].Values["items"] = int64(1 << 40)                // out of range for INTEGER
	b.Rows[4].EventID, b.Rows[4].Values["event_id"] = "", nil // no event id
	err := w.Write(t.Context(), b)
	var rej *sink.RejectedError
	if !errors.As(err, &rej) || !errors.Is(err, sink.ErrRowRejected) {
		t.Fatalf("Write = %v, want a RejectedError", err)
	}
	if got := rej.Offsets(); len(got) != 4 || got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 4 {
		t.Fatalf("rejected offsets = %v, want [1 2 3 4]\n%v", got, err)
	}
	if n := scalar(t, w, `SELECT count(*) FROM sluice_stage_purchases`) + scalar(t, w, `SELECT count(*) FROM purchases`); n != 0 {
		t.Fatalf("rows written by a rejected batch = %d", n)
	}

	// The sink dead-letters the rejected rows and commits the range without them.
	b.Rows = []sink.Row{b.Rows[0], b.Rows[5]}
	write(t, w, b)
	if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != 2 {
		t.Fatalf("rows = %d, want 2", n)
	}
	if got := nextOffset(t, w, "purchases.clean", 0); got != 6 {
		t.Fatalf("next offset = %d, want 6", got)
	}
}

func TestWriteDeduplicatesEventIDs(t *testing.T) {
	w := openDuck(t)
	ensure(t, w, "PURCHASES", "purchases")
	epoch, _ := claim(t, w, "purchases.clean", 0)
	b := purchases(0, 0, 3, epoch)
	dup := purchase(0, 0) // offset 2 replays the event of offset 0 with another amount
	dup.Offset = 2
	dup.Values["amount"] = 99.0
	b.Rows[2] = dup
	write(t, w, b)
	next := purchases(0, 3, 4, epoch)
	next.Rows[0].EventID = purchase(0, 1).EventID // and offset 3 the one of offset 1
	next.Rows[0].Values["event_id"] = purchase(0, 1).EventID
	write(t, w, next)
	if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != 2 {
		t.Fatalf("rows = %d, want 2", n)
	}
	if n := scalar(t, w, `SELECT count(*) FROM purchases WHERE amount = 99`); n != 0 {
		t.Fatal("a replayed event replaced the first one")
	}
}

func TestWriteEmptyRangeMovesOffset(t *testing.T) {
	w := openDuck(t)
	ensure(t, w, "PURCHASES", "purchases")
	epoch, _ := claim(t, w, "purchases.clean", 0)
	// Offsets 0..9 were transaction markers or dead letters: no rows, but committed.
	write(t, w, sink.Batch{Table: "PURCHASES", Topic: "purchases.clean", Start: 0, End: 10, Epoch: epoch})
	write(t, w, sink.Batch{Table: "PURCHASES", Topic: "purchases.clean", Start: 10, End: 10, Epoch: epoch})
	if got := nextOffset(t, w, "purchases.clean", 0); got != 10 {
		t.Fatalf("next offset = %d, want 10", got)
	}
}

func TestWriteRejectsMalformedBatches(t *testing.T) {
	w := openDuck(t)
	ensure(t, w, "PURCHASES", "purchases")
	epoch, _ := claim(t, w, "purchases.clean", 0)
	outOfOrder := purchases(0, 0, 3, epoch)
	outOfOrder.Rows[0], outOfOrder.Rows[1] = outOfOrder.Rows[1], outOfOrder.Rows[0]
	tests := []struct {
		name string
		b    sink.Batch
		want error
	}{
		{"end before start", sink.Batch{Table: "PURCHASES", Topic: "purchases.clean", Start: 3, End: 2, Epoch: epoch}, sink.ErrInvalidBatch},
		{"no topic", sink.Batch{Table: "PURCHASES", Start: 0, End: 1, Epoch: epoch}, sink.ErrInvalidBatch},
		{"row beyond end", func() sink.Batch { b := purchases(0, 0, 3, epoch); b.End = 2; return b }(), sink.ErrInvalidBatch},
		{"rows out of order", outOfOrder, sink.ErrInvalidBatch},
		{"unknown table", func() sink.Batch { b := purchases(0, 0, 3, epoch); b.Table = "CLICKS"; return b }(), sink.ErrUnknownTable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := w.Write(t.Context(), tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("Write = %v, want %v", err, tt.want)
			}
		})
	}
	if got := nextOffset(t, w, "purchases.clean", 0); got != 0 {
		t.Fatalf("next offset = %d, want 0", got)
	}
}
