package sink

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// QueryResult is the answer to one ad-hoc query: column names and rows of JSON-ready
// values (times as RFC 3339 strings in UTC, text blobs as strings, other blobs base64).
type QueryResult struct {
	Columns []string `json:"columns"`
	Rows    [][]any  `json:"rows"`
	// Truncated is true when the query had more rows than were returned.
	Truncated bool `json:"truncated,omitempty"`
}

// ErrQuery marks an error in the query itself (syntax, unknown table): the caller's
// fault, not the warehouse's.
var ErrQuery = errors.New("query failed")

// ReadQuery runs one ad-hoc query (sluice query) inside a transaction that is always
// rolled back, so nothing it does outlives it, and returns at most maxRows rows.
func (w *SQLWarehouse) ReadQuery(ctx context.Context, query string, maxRows int) (*QueryResult, error) {
	query = strings.TrimSpace(query)
	if query == "" {
		return nil, fmt.Errorf("%w: empty query", ErrQuery)
	}
	tx, err := w.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("sink: query: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	res := &QueryResult{Columns: cols, Rows: [][]any{}}
	for rows.Next() {
		if len(res.Rows) >= maxRows {
			res.Truncated = true
			break
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrQuery, err)
		}
		for i, v := range vals {
			vals[i] = jsonValue(v)
		}
		res.Rows = append(res.Rows, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	return res, nil
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
	return OpenDuckDB(path + "?access_mode=read_only")
}
