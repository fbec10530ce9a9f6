package sink_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/sink"
)

func TestMigrateIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wh.duckdb")
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := first
	now := func() time.Time { return clock }

	w, err := sink.OpenDuckDB(path, sink.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := w.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	clock = first.Add(time.Hour) // a re-run must not record anything new
	w = openDuckAt(t, path, sink.WithClock(now))
	if err := w.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := queryStrings(t, w, `SELECT CAST(version AS VARCHAR) || ' ' || strftime(applied_at, '%H:%M') FROM sluice_migrations ORDER BY version`); len(got) != 2 || got[0] != "1 00:00" || got[1] != "2 00:00" {
		t.Fatalf("migrations = %q, want versions 1 and 2 applied at 00:00", got)
	}
	tables := queryStrings(t, w, `SELECT table_name FROM information_schema.tables ORDER BY table_name`)
	want := []string{"AGGREGATES", "SLUICE_MIGRATIONS", "SLUICE_OFFSETS", "SLUICE_STAGE_AGGREGATES"}
	if len(tables) != len(want) {
		t.Fatalf("tables = %q, want %q", tables, want)
	}
	for i := range want {
		if tables[i] != want[i] {
			t.Fatalf("tables = %q, want %q", tables, want)
		}
	}
}

func TestFixedTablesAreKeyed(t *testing.T) {
	w := openDuck(t)
	tests := []struct {
		name, table, key string
	}{
		{"offsets", "SLUICE_OFFSETS", "TOPIC,PARTITION"},
		{"aggregates", "AGGREGATES", "AGGREGATION,GROUP_KEY,WINDOW_START,WINDOW_END"},
		{"migrations", "SLUICE_MIGRATIONS", "VERSION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := queryStrings(t, w, `SELECT array_to_string(constraint_column_names, ',') FROM duckdb_constraints()
				WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'`, tt.table)
			if len(got) != 1 || got[0] != tt.key {
				t.Fatalf("primary key of %s = %q, want %q", tt.table, got, tt.key)
			}
		})
	}
}
