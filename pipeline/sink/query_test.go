package sink

import (
	"context"
	"errors"
	"os"
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

// Only reads run: every statement that writes, reaches a file or the network, or changes
// a setting is refused with ErrQuery before it does anything (issue 15, defect 2: a query
// ran COPY ... TO a file and read_text('/etc/hostname')). Each case runs on a real DuckDB
// opened as the sink opens it.
func TestReadQueryRefusesAllButReads(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("a,b\nsecret,1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := OpenDuckDB(filepath.Join(dir, "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.db.ExecContext(ctx, `CREATE TABLE T (A INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.ExecContext(ctx, `INSERT INTO T VALUES (1), (2)`); err != nil {
		t.Fatal(err)
	}
	written := filepath.Join(dir, "owned.txt")
	for _, tc := range []struct{ name, query string }{
		{"COPY TO a file", "COPY (select 'echo owned') TO '" + written + "'"},
		{"COPY FROM a file", "COPY T FROM '" + secret + "'"},
		{"read_text", "select * from read_text('" + secret + "')"},
		{"read_csv", "select * from read_csv('" + secret + "')"},
		{"a file as a table", "select * from '" + secret + "'"},
		{"glob", "select * from glob('" + dir + "/*')"},
		{"http (httpfs)", "select * from read_csv('http://127.0.0.1:1/x.csv')"},
		{"ATTACH", "ATTACH '" + written + "' AS x"},
		{"INSTALL", "INSTALL httpfs FROM 'http://127.0.0.1:1'"},
		{"LOAD", "LOAD '" + filepath.Join(dir, "x.duckdb_extension") + "'"},
		{"EXPORT DATABASE", "EXPORT DATABASE '" + written + "'"},
		{"INSERT", "insert into T values (3)"},
		{"UPDATE", "update T set A = 0"},
		{"DELETE", "delete from T"},
		{"CREATE", "create table X as select 1 as a"},
		{"DROP", "drop table T"},
		{"ALTER", "alter table T add column B INTEGER"},
		{"SET", "SET threads = 1"},
		{"CHECKPOINT", "checkpoint"},
		{"a transaction", "commit"},
		{"EXPLAIN ANALYZE of a write", "explain analyze delete from T"},
		{"a write after a read", "select 1; delete from T"},
		{"only a comment", "-- select 1"},
		{"a parameter", "select ?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := w.ReadQuery(ctx, tc.query, 10)
			if !errors.Is(err, ErrQuery) {
				t.Fatalf("ran: res %v err %v", res, err)
			}
			t.Log(err)
		})
	}
	if _, err := os.Stat(written); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused query wrote %s: %v", written, err)
	}
	res, err := w.ReadQuery(ctx, "select count(*), sum(A) from T", 1)
	if err != nil || res.Rows[0][0] != int64(2) {
		t.Fatalf("T changed: res %v err %v", res, err)
	}
	if _, err := w.ReadQuery(ctx, "select * from X", 1); !errors.Is(err, ErrQuery) {
		t.Fatalf("table X exists: err = %v", err)
	}
}

// Reads in their many DuckDB spellings still run.
func TestReadQueryAnswersReads(t *testing.T) {
	ctx := t.Context()
	w, err := OpenDuckDB("")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.db.ExecContext(ctx, `CREATE TABLE T (A INTEGER, J JSON)`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.ExecContext(ctx, `INSERT INTO T VALUES (1, '{"k": "v"}')`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"select J->>'k' from T", "from T", "values (1)", "with x as (select 1) select * from x",
		"describe T", "show tables", "summarize T", "pragma table_info('T')", "explain select * from T",
		"select * from duckdb_tables()", "select 1;",
	} {
		if res, err := w.ReadQuery(ctx, q, 10); err != nil || len(res.Rows) == 0 {
			t.Errorf("%s: res %v err %v", q, res, err)
		}
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
