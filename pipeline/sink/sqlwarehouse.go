package sink

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// SQLWarehouse is the Warehouse over database/sql; the Dialect supplies every statement
// that differs between warehouses. It is safe for concurrent use, one writer per
// topic-partition at a time (Claim enforces that across processes).
type SQLWarehouse struct {
	db   *sql.DB
	d    Dialect
	opts options

	mu     sync.RWMutex
	tables map[string]*tableDef // by table name, filled by EnsureTable and Migrate
}

var _ Warehouse = (*SQLWarehouse)(nil)

// NewSQL wraps an open database (sql.Open(d.DriverName(), dsn)) in a Warehouse. The
// warehouse owns db from now on: Close closes it.
func NewSQL(db *sql.DB, d Dialect, opts ...Option) *SQLWarehouse {
	return &SQLWarehouse{db: db, d: d, opts: newOptions(opts), tables: map[string]*tableDef{}}
}

// Dialect returns the warehouse's dialect.
func (w *SQLWarehouse) Dialect() Dialect { return w.d }

// Query runs a query with the dialect's placeholders, for `sluice query` and tests.
func (w *SQLWarehouse) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := w.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sink: query: %w", err)
	}
	return rows, nil
}

// Close closes the connection pool; for a file database this also flushes it.
func (w *SQLWarehouse) Close() error {
	if err := w.db.Close(); err != nil {
		return fmt.Errorf("sink: close %s: %w", w.d.Name(), err)
	}
	return nil
}

// columns reads a table's columns in table order; none means the table does not exist.
func (w *SQLWarehouse) columns(ctx context.Context, table string) ([]Column, error) {
	rows, err := w.db.QueryContext(ctx, w.d.ColumnsQuery(), table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []Column
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", table, err)
		}
		cols = append(cols, Column{Name: name, Type: w.d.ParseType(typ)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	return cols, nil
}

func (w *SQLWarehouse) table(name string) (*tableDef, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	t, ok := w.tables[name]
	return t, ok
}

func (w *SQLWarehouse) setTable(t *tableDef) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tables[t.name] = t
}
