package sink

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestReadQuery(t *testing.T) {
	ctx := context.Background()
	w, err := OpenDuckDB("")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.db.ExecContext(ctx, `CREATE TABLE T (A INTEGER, B VARCHAR, C TIMESTAMP, D DOUBLE, E BLOB)`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.ExecContext(ctx, `INSERT INTO T VALUES (1, 'x', TIMESTAMP '2026-01-02 03:04:05.5', 'NaN'::DOUBLE, '\xFF'::BLOB), (2, NULL, NULL, 1.5, 'ok'::BLOB), (3, 'z', NULL, 2, NULL)`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		query     string
		max       int
		wantRows  int
		truncated bool
		check     func(t *testing.T, r *QueryResult)
		wantErr   error
	}{
		{name: "count", query: "select count(*) as n from T", max: 10, wantRows: 1, check: func(t *testing.T, r *QueryResult) {
			if r.Columns[0] != "n" || r.Rows[0][0] != int64(3) {
				t.Fatalf("got %v %v", r.Columns, r.Rows)
			}
		}},
		{name: "json-ready values", query: "select * from T order by A", max: 10, wantRows: 3, check: func(t *testing.T, r *QueryResult) {
			row := r.Rows[0]
			if row[2] != "2026-01-02T03:04:05.5Z" || row[3] != "NaN" || row[4] != "/w==" {
				t.Fatalf("row 0 = %#v", row)
			}
			if r.Rows[1][1] != nil || r.Rows[1][4] != "ok" {
				t.Fatalf("row 1 = %#v", r.Rows[1])
			}
		}},
		{name: "truncated", query: "select A from T", max: 2, wantRows: 2, truncated: true},
		{name: "syntax error", query: "selec 1", max: 1, wantErr: ErrQuery},
		{name: "empty", query: "  ", max: 1, wantErr: ErrQuery},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := w.ReadQuery(ctx, tc.query, tc.max)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Rows) != tc.wantRows || r.Truncated != tc.truncated {
				t.Fatalf("rows %d truncated %v, want %d %v", len(r.Rows), r.Truncated, tc.wantRows, tc.truncated)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// A query that writes is rolled back: ad-hoc queries never change the warehouse.
func TestReadQueryRollsBack(t *testing.T) {
	ctx := context.Background()
	w, err := OpenDuckDB("")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.ReadQuery(ctx, "create table X as select 1 as a", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ReadQuery(ctx, "select * from X", 10); !errors.Is(err, ErrQuery) {
		t.Fatalf("table X outlived the query: err = %v", err)
	}
}

// A DuckDB file another process (here: another database handle) holds for writing cannot
// be opened read-only; once it is closed it can.
func TestOpenDuckDBReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w, err := OpenDuckDB(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := OpenDuckDBReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.ReadQuery(ctx, "select count(*) from SLUICE_OFFSETS", 1)
	if err != nil || res.Rows[0][0] != int64(0) {
		t.Fatalf("res %v err %v", res, err)
	}
	if _, err := r.db.ExecContext(ctx, "create table Y (a int)"); err == nil {
		t.Fatal("a read-only handle could write")
	}
	if _, err := OpenDuckDBReadOnly(""); err == nil {
		t.Fatal("empty path accepted")
	}
}
