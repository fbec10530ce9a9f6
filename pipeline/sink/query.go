package sink

import (
	"context"
	"database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"
)

// QueryResult is the answer to one ad-hoc query: column names and rows of JSON-ready
// values (times as RFC 3339 strings in UTC, text blobs as strings, other blobs base64).
type QueryResult struct {
	Columns []string `json:"columns"`
	Rows    [][]any  `json:"rows"`
	// Truncated is true when the query had more rows than were returned.
	Truncated bool `json:"truncated,omitempty"`
}

// ErrQuery marks an error in the query itself (syntax, unknown table, a statement that
// is not a read, a file it may not touch): the caller's fault, not the warehouse's.
var ErrQuery = errors.New("query failed")

// readStatements are the statement types an ad-hoc query may be: SELECT (with FROM-first,
// VALUES, DESCRIBE, SHOW, SUMMARIZE and PRAGMA table_info, which DuckDB plans as SELECT)
// and EXPLAIN. Everything else (INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, COPY,
// ATTACH, DETACH, INSTALL, LOAD, SET, CALL, EXPORT, CHECKPOINT, transactions ...) is
// refused before it runs.
var readStatements = map[duckdb.StmtType]bool{
	duckdb.STATEMENT_TYPE_SELECT:  true,
	duckdb.STATEMENT_TYPE_EXPLAIN: true,
}

// ReadQuery runs one ad-hoc query (sluice query) and returns at most maxRows rows. It is
// a read, enforced three ways:
//   - the SQL must be exactly one statement, of a type in readStatements, checked on the
//     prepared statement before it runs;
//   - it runs in a READ ONLY transaction (DuckDB refuses any write in it, EXPLAIN ANALYZE
//     of a DELETE included), which is then rolled back;
//   - the database has no external access (OpenDuckDB), so no statement can read or write
//     a file or reach the network: read_text, read_csv, glob, COPY, ATTACH, INSTALL, LOAD
//     all fail.
//
// Every refusal wraps ErrQuery. Ad-hoc queries run on DuckDB only.
func (w *SQLWarehouse) ReadQuery(ctx context.Context, query string, maxRows int) (*QueryResult, error) {
	query = strings.TrimSpace(query)
	if query == "" {
		return nil, fmt.Errorf("%w: empty query", ErrQuery)
	}
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sink: query: %w", err)
	}
	var res *QueryResult
	ended := true
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdb.Conn)
		if !ok {
			return fmt.Errorf("sink: query: ad-hoc queries run on DuckDB only (connection is %T)", dc)
		}
		if _, err := c.ExecContext(ctx, "BEGIN TRANSACTION READ ONLY", nil); err != nil {
			return fmt.Errorf("sink: query: begin: %w", err)
		}
		defer func() {
			// The ROLLBACK goes out even when the caller gave up (as in sqlTx).
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), txTimeout)
			defer cancel()
			_, rerr := c.ExecContext(rctx, "ROLLBACK", nil)
			ended = rerr == nil
		}()
		var err error
		res, err = readOne(ctx, c, query, maxRows)
		return err
	})
	if ended {
		err = errors.Join(err, ignoreConnDone(conn.Close()))
	} else {
		// A transaction may still be open on it: the connection is not used again.
		err = errors.Join(err, discard(conn))
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// readOne prepares query as one statement, refuses it unless it is a read, and returns
// at most maxRows of its rows.
func readOne(ctx context.Context, c *duckdb.Conn, query string, maxRows int) (*QueryResult, error) {
	// Prepare, unlike PrepareContext, refuses several statements instead of running all
	// but the last.
	ds, err := c.Prepare(query)
	if err != nil {
		if strings.Contains(err.Error(), "multi-statement") {
			return nil, fmt.Errorf("%w: one statement at a time, not several", ErrQuery)
		}
		return nil, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	st := ds.(*duckdb.Stmt)
	defer func() { _ = st.Close() }()
	typ, err := st.StatementType()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	if !readStatements[typ] {
		return nil, fmt.Errorf("%w: only SELECT and EXPLAIN run here, not %s: sluice query reads the warehouse and never changes it", ErrQuery, statementName(typ))
	}
	rows, err := st.QueryContext(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	defer rows.Close()
	cols := rows.Columns()
	res := &QueryResult{Columns: cols, Rows: [][]any{}}
	for {
		vals := make([]driver.Value, len(cols))
		if err := rows.Next(vals); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrQuery, err)
		}
		if len(res.Rows) >= maxRows {
			res.Truncated = true
			break
		}
		row := make([]any, len(cols))
		for i, v := range vals {
			row[i] = jsonValue(v)
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// statementName names a statement type for an error message.
func statementName(t duckdb.StmtType) string {
	switch t {
	case duckdb.STATEMENT_TYPE_INSERT:
		return "INSERT"
	case duckdb.STATEMENT_TYPE_UPDATE:
		return "UPDATE"
	case duckdb.STATEMENT_TYPE_DELETE:
		return "DELETE"
	case duckdb.STATEMENT_TYPE_CREATE, duckdb.STATEMENT_TYPE_CREATE_FUNC:
		return "CREATE"
	case duckdb.STATEMENT_TYPE_DROP:
		return "DROP"
	case duckdb.STATEMENT_TYPE_ALTER:
		return "ALTER"
	case duckdb.STATEMENT_TYPE_COPY:
		return "COPY"
	case duckdb.STATEMENT_TYPE_ATTACH:
		return "ATTACH"
	case duckdb.STATEMENT_TYPE_DETACH:
		return "DETACH"
	case duckdb.STATEMENT_TYPE_LOAD:
		return "INSTALL or LOAD"
	case duckdb.STATEMENT_TYPE_SET, duckdb.STATEMENT_TYPE_VARIABLE_SET:
		return "SET or USE"
	case duckdb.STATEMENT_TYPE_PRAGMA:
		return "PRAGMA"
	case duckdb.STATEMENT_TYPE_CALL:
		return "CALL or CHECKPOINT"
	case duckdb.STATEMENT_TYPE_EXPORT:
		return "EXPORT"
	case duckdb.STATEMENT_TYPE_TRANSACTION:
		return "a transaction statement"
	}
	return fmt.Sprintf("a statement of type %d", t)
}

// jsonValue turns a scanned database value into one encoding/json writes faithfully.
func jsonValue(v any) any {
	switch x := v.(type) {
	case nil, bool, string, int64, int32, int16, int8, int, uint64, uint32, uint16, uint8:
		return x
	case float32:
		return jsonValue(float64(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64) // JSON has no NaN or Inf
		}
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return base64.StdEncoding.EncodeToString(x)
	case fmt.Stringer:
		if _, err := json.Marshal(x); err != nil {
			return x.String()
		}
		return x
	}
	if _, err := json.Marshal(v); err != nil {
		return fmt.Sprint(v)
	}
	return v
}

// OpenDuckDBReadOnly opens an existing DuckDB file for reading only (sluice query). It
// fails while another process has the file open for writing: DuckDB allows one writer
// process, and it locks the file.
func OpenDuckDBReadOnly(path string) (*SQLWarehouse, error) {
	if path == "" {
		return nil, errors.New("sink: open duckdb read-only: a file path is required")
	}
	return openDuckDB(path, url.Values{"access_mode": {"read_only"}})
}
