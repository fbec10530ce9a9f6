package sink

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
)

// OpenDuckDB opens (creating if needed) the DuckDB database file at path; "" is a
// private in-memory database, gone at Close. Call Migrate before use.
//
// The database has no external access (DuckDB's enable_external_access=false): beyond
// its own file, WAL and temporary directory it reads and writes no file and reaches no
// network, so COPY TO/FROM, read_text, read_csv, glob, ATTACH, INSTALL and LOAD all
// fail. The sink needs none of them (it writes with the appender and INSERT), and the
// ad-hoc queries of `sluice query` run on this same database (ReadQuery).
func OpenDuckDB(path string, opts ...Option) (*SQLWarehouse, error) {
	return openDuckDB(path, url.Values{}, opts...)
}

// openDuckDB opens path with DuckDB settings params, external access always off.
func openDuckDB(path string, params url.Values, opts ...Option) (*SQLWarehouse, error) {
	d := DuckDB{}
	params.Set("enable_external_access", "false")
	db, err := sql.Open(d.DriverName(), path+"?"+params.Encode())
	if err != nil {
		return nil, fmt.Errorf("sink: open duckdb %q: %w", path, err)
	}
	if err := db.PingContext(context.Background()); err != nil {
		return nil, fmt.Errorf("sink: open duckdb %q: %w", path, errors.Join(err, db.Close()))
	}
	return NewSQL(db, d, opts...), nil
}

// DuckDB is the Dialect of the embedded DuckDB warehouse: JSON columns, TIMESTAMP in UTC,
// INSERT ... ON CONFLICT for both the ignore and the replace upsert, and the appender
// for staging. Importing this package registers the "duckdb" database/sql driver.
type DuckDB struct{}

var (
	_ Dialect     = DuckDB{}
	_ RowAppender = DuckDB{}
)

// Name returns "duckdb".
func (DuckDB) Name() string { return "duckdb" }

// DriverName returns "duckdb".
func (DuckDB) DriverName() string { return "duckdb" }

// Quote double-quotes ident (names are validated upper-case identifiers already).
func (DuckDB) Quote(ident string) string { return quoteIdent(ident) }

// Placeholder returns "?": DuckDB binds positional parameters in order.
func (DuckDB) Placeholder(int) string { return "?" }

// TypeName maps a column type to DuckDB's name for it.
func (DuckDB) TypeName(t ColumnType) string {
	switch t.Kind {
	case KindString:
		return "VARCHAR"
	case KindInt:
		return "INTEGER"
	case KindLong:
		return "BIGINT"
	case KindFloat:
		return "FLOAT"
	case KindDouble:
		return "DOUBLE"
	case KindBool:
		return "BOOLEAN"
	case KindTimestamp:
		return "TIMESTAMP"
	case KindDate:
		return "DATE"
	case KindTime:
		return "TIME"
	case KindBytes:
		return "BLOB"
	case KindDecimal:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case KindJSON:
		return "JSON"
	}
	return t.Raw
}

// ParseType maps information_schema.columns.data_type back to a column type.
func (DuckDB) ParseType(name string) ColumnType {
	n := strings.ToUpper(strings.TrimSpace(name))
	switch n {
	case "VARCHAR":
		return ColumnType{Kind: KindString}
	case "INTEGER":
		return ColumnType{Kind: KindInt}
	case "BIGINT":
		return ColumnType{Kind: KindLong}
	case "FLOAT":
		return ColumnType{Kind: KindFloat}
	case "DOUBLE":
		return ColumnType{Kind: KindDouble}
	case "BOOLEAN":
		return ColumnType{Kind: KindBool}
	case "TIMESTAMP":
		return ColumnType{Kind: KindTimestamp}
	case "DATE":
		return ColumnType{Kind: KindDate}
	case "TIME":
		return ColumnType{Kind: KindTime}
	case "BLOB":
		return ColumnType{Kind: KindBytes}
	case "JSON":
		return ColumnType{Kind: KindJSON}
	}
	if t, ok := parseDecimal(n, "DECIMAL"); ok {
		return t
	}
	return ColumnType{Kind: KindOther, Raw: name}
}

// CreateTable returns CREATE TABLE IF NOT EXISTS with a PRIMARY KEY on key.
func (d DuckDB) CreateTable(table string, cols []Column, key []string) string {
	return createTableSQL(d, table, cols, key)
}

// AddColumn returns ALTER TABLE ... ADD COLUMN IF NOT EXISTS.
func (d DuckDB) AddColumn(table string, col Column) string { return addColumnSQL(d, table, col) }

// ColumnsQuery reads information_schema.columns of the main schema.
func (DuckDB) ColumnsQuery() string {
	return "SELECT column_name, data_type FROM information_schema.columns " +
		"WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position"
}

// InsertValues returns a multi-row INSERT ... VALUES: the portable staging path, used
// when the dialect is wrapped without its appender.
func (d DuckDB) InsertValues(table string, cols []Column, rows int) string {
	return insertValuesSQL(d, table, cols, rows, placeholderTuple(len(cols)))
}

// FromStage casts the text of JSON, DECIMAL and TIME columns back to their type.
func (d DuckDB) FromStage(col Column) string {
	if StageType(col.Type) != col.Type {
		return "CAST(" + d.Quote(col.Name) + " AS " + d.TypeName(col.Type) + ")"
	}
	return d.Quote(col.Name)
}

// AppendRows loads staged rows with DuckDB's appender: columnar, no SQL to parse, two
// orders of magnitude faster than a multi-row INSERT through database/sql.
func (DuckDB) AppendRows(ctx context.Context, conn *sql.Conn, table string, cols []Column, rows [][]any) error {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("duckdb appender: connection is %T", dc)
		}
		a, err := duckdb.NewAppenderWithColumns(c, "", "", table, names)
		if err != nil {
			return fmt.Errorf("duckdb appender %s: %w", table, err)
		}
		vals := make([]driver.Value, len(cols))
		for _, r := range rows {
			for i, v := range r {
				vals[i] = v
			}
			if err := a.AppendRow(vals...); err != nil {
				return errors.Join(fmt.Errorf("duckdb appender %s: %w", table, err), a.Close())
			}
		}
		if err := a.CloseWithCancel(ctx); err != nil {
			return fmt.Errorf("duckdb appender %s: %w", table, err)
		}
		return nil
	})
}

// InsertSelect returns INSERT ... SELECT ... ON CONFLICT (key) DO NOTHING or DO UPDATE.
func (d DuckDB) InsertSelect(table string, cols []Column, key []string, sel string, c Conflict) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(d.Quote(table))
	b.WriteString(" (")
	b.WriteString(quoteColumns(d, cols))
	b.WriteString(") ")
	b.WriteString(sel)
	b.WriteString(" ON CONFLICT (")
	b.WriteString(quoteNames(d, key))
	b.WriteString(") ")
	isKey := make(map[string]bool, len(key))
	for _, k := range key {
		isKey[k] = true
	}
	var sets []string
	if c == ConflictReplace {
		for _, col := range cols {
			if !isKey[col.Name] {
				q := d.Quote(col.Name)
				sets = append(sets, q+" = EXCLUDED."+q)
			}
		}
	}
	if len(sets) == 0 {
		b.WriteString("DO NOTHING")
	} else {
		b.WriteString("DO UPDATE SET ")
		b.WriteString(strings.Join(sets, ", "))
	}
	return b.String()
}
