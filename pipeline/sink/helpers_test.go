package sink_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/sink"
)

// t0 is the fixed event time of generated rows.
var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// openDuck opens a migrated in-memory DuckDB warehouse, closed at cleanup.
func openDuck(t testing.TB, opts ...sink.Option) *sink.SQLWarehouse {
	t.Helper()
	return openDuckAt(t, "", opts...)
}

// openDuckAt opens a migrated DuckDB warehouse at path ("" = in memory).
func openDuckAt(t testing.TB, path string, opts ...sink.Option) *sink.SQLWarehouse {
	t.Helper()
	w, err := sink.OpenDuckDB(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := w.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return w
}

// cleanSchema is the schema of <name>.clean: the built-in .avsc plus processed_at.
func cleanSchema(t testing.TB, name string) avro.Schema {
	t.Helper()
	raw, ok := schema.Builtin(name + ".avsc")
	if !ok {
		t.Fatalf("no built-in schema %s", name)
	}
	clean, err := schema.Clean(raw)
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, clean)
}

func mustParse(t testing.TB, avsc string) avro.Schema {
	t.Helper()
	s, err := avro.Parse(avsc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ensure creates table from the clean schema of name.
func ensure(t testing.TB, w sink.Warehouse, table, name string) {
	t.Helper()
	if err := w.EnsureTable(t.Context(), table, cleanSchema(t, name)); err != nil {
		t.Fatal(err)
	}
}

// purchase is the decoded clean purchase at offset off of a partition.
func purchase(p int32, off int64) sink.Row {
	id := fmt.Sprintf("ev-%02d-%06d", p, off)
	return sink.Row{
		Offset:   off,
		EventID:  id,
		IngestTS: t0.Add(time.Duration(off) * time.Millisecond),
		Values: map[string]any{
			"event_id":     id,
			"event_time":   t0.Add(time.Duration(off) * time.Second),
			"user_id":      fmt.Sprintf("u-%d", off%7),
			"session_id":   "s-1",
			"country":      "DE",
			"device":       "mobile",
			"order_id":     fmt.Sprintf("o-%d", off),
			"amount":       float64(off) + 0.5,
			"currency":     "EUR",
			"items":        int(off%3) + 1,
			"product_id":   "p-9",
			"processed_at": t0.Add(time.Minute),
		},
	}
}

// purchases builds the PURCHASES batch of topic purchases.clean covering [start, end),
// with one row per offset.
func purchases(p int32, start, end, epoch int64) sink.Batch {
	b := sink.Batch{Table: "PURCHASES", Topic: "purchases.clean", Partition: p, Start: start, End: end, Epoch: epoch}
	for off := start; off < end; off++ {
		b.Rows = append(b.Rows, purchase(p, off))
	}
	return b
}

// claim claims a partition and fails the test on error.
func claim(t testing.TB, w sink.Warehouse, topic string, p int32) (epoch, next int64) {
	t.Helper()
	epoch, next, err := w.Claim(t.Context(), topic, p)
	if err != nil {
		t.Fatal(err)
	}
	return epoch, next
}

// write writes b and fails the test on error.
func write(t testing.TB, w sink.Warehouse, b sink.Batch) {
	t.Helper()
	if err := w.Write(t.Context(), b); err != nil {
		t.Fatal(err)
	}
}

// scalar runs a query returning one integer.
func scalar(t testing.TB, w sink.Warehouse, query string, args ...any) int64 {
	t.Helper()
	rows, err := w.Query(t.Context(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n sql.NullInt64
	if !rows.Next() {
		t.Fatalf("%s: no row (%v)", query, rows.Err())
	}
	if err := rows.Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n.Int64
}

// queryStrings runs a query returning one string column.
func queryStrings(t testing.TB, w sink.Warehouse, query string, args ...any) []string {
	t.Helper()
	rows, err := w.Query(t.Context(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s.String)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// nextOffset reads SLUICE_OFFSETS for a partition (-1 if absent).
func nextOffset(t testing.TB, w sink.Warehouse, topic string, p int32) int64 {
	t.Helper()
	rows, err := w.Query(t.Context(), `SELECT "NEXT_OFFSET" FROM "SLUICE_OFFSETS" WHERE "TOPIC" = ? AND "PARTITION" = ?`, topic, p)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		return -1
	}
	var n int64
	if err := rows.Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// crasher is a failpoint hook that fails once at an armed step.
type crasher struct{ at string }

var errCrash = errors.New("simulated crash")

func (c *crasher) hook(step string) error {
	if c.at != "" && step == c.at {
		c.at = ""
		return fmt.Errorf("%w at %s", errCrash, step)
	}
	return nil
}

// checkPurchaseRows checks what write(purchases(3, 0, 3, epoch)) left: the three rows
// with their values and RECORD_METADATA (read through metadata, an expression that gives
// it as JSON text in the warehouse's dialect), the offset moved to 3, nothing staged.
func checkPurchaseRows(t *testing.T, w sink.Warehouse, metadata string) {
	t.Helper()
	rows, err := w.Query(t.Context(), `SELECT event_id, event_time, amount, items, device, processed_at,
		`+metadata+` FROM purchases ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int64
	for ; rows.Next(); n++ {
		var (
			id, device, md string
			evt, proc      time.Time
			amount         float64
			items          int32
		)
		if err := rows.Scan(&id, &evt, &amount, &items, &device, &proc, &md); err != nil {
			t.Fatal(err)
		}
		want := purchase(3, n)
		if id != want.EventID || !evt.Equal(want.Values["event_time"].(time.Time)) ||
			amount != want.Values["amount"] || int(items) != want.Values["items"] || device != "mobile" ||
			!proc.Equal(t0.Add(time.Minute)) {
			t.Fatalf("row %d = %s %s %v %d %s %s", n, id, evt, amount, items, device, proc)
		}
		var meta map[string]any
		if err := json.Unmarshal([]byte(md), &meta); err != nil {
			t.Fatal(err)
		}
		wantMeta := map[string]any{"topic": "purchases.clean", "partition": 3.0, "offset": float64(n),
			"event_id": want.EventID, "ingest_ts": float64(want.IngestTS.UnixMicro())}
		for k, v := range wantMeta {
			if meta[k] != v {
				t.Fatalf("RECORD_METADATA[%s] = %v, want %v (%s)", k, meta[k], v, md)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("rows = %d, want 3", n)
	}
	if got := nextOffset(t, w, "purchases.clean", 3); got != 3 {
		t.Fatalf("next offset = %d, want 3", got)
	}
	if n := scalar(t, w, `SELECT count(*) FROM sluice_stage_purchases`); n != 0 {
		t.Fatalf("staged rows left = %d", n)
	}
}
