package sink

import (
	"context"
	"database/sql"
	"fmt"
)

// Kind is a warehouse-neutral column type; a Dialect names it.
type Kind uint8

// Column kinds. Avro types map to them as documented on ColumnOf.
const (
	// KindOther is a column type the dialect cannot map back (a column someone added by
	// hand). The sink leaves such columns NULL.
	KindOther Kind = iota
	KindString
	KindInt    // 32-bit
	KindLong   // 64-bit
	KindFloat  // 32-bit IEEE
	KindDouble // 64-bit IEEE
	KindBool
	KindTimestamp // instant, stored as UTC without zone
	KindDate
	KindTime // time of day
	KindBytes
	KindDecimal // with Precision and Scale
	KindJSON    // JSON document (DuckDB JSON, Snowflake VARIANT)
)

var kindNames = [...]string{"other", "string", "int", "long", "float", "double", "bool",
	"timestamp", "date", "time", "bytes", "decimal", "json"}

// String names the kind ("long").
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// ColumnType is a column's type. Precision and Scale are set for KindDecimal only; Raw
// holds the warehouse's own name for KindOther.
type ColumnType struct {
	Kind             Kind
	Precision, Scale int
	Raw              string
}

// String renders the type for messages ("decimal(10,2)", "long").
func (t ColumnType) String() string {
	switch t.Kind {
	case KindDecimal:
		return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale)
	case KindOther:
		return "other(" + t.Raw + ")"
	}
	return t.Kind.String()
}

// Column is one column of a table. Names are upper case and quoted in every statement.
type Column struct {
	Name string
	Type ColumnType
}

// Conflict says what InsertSelect does with a row whose key already exists.
type Conflict uint8

const (
	// ConflictIgnore keeps the existing row (events: a replay cannot duplicate a row).
	ConflictIgnore Conflict = iota
	// ConflictReplace overwrites the existing row's non-key columns (aggregates: a later
	// result for the same window replaces the earlier one).
	ConflictReplace
)

// Dialect holds every SQL difference between warehouses. Statements it returns use its
// own placeholders; callers bind arguments in the order the method documents.
type Dialect interface {
	// Name is the warehouse's name ("duckdb", "snowflake").
	Name() string
	// DriverName is the database/sql driver to open ("duckdb", "snowflake").
	DriverName() string
	// Quote quotes an identifier (already upper case).
	Quote(ident string) string
	// Placeholder is the n-th (1-based) bind parameter: "?" or "$1".
	Placeholder(n int) string
	// TypeName is the SQL type of a column type ("BIGINT", "VARIANT").
	TypeName(t ColumnType) string
	// ParseType maps a type name as ColumnsQuery reports it back to a ColumnType; an
	// unknown name gives KindOther.
	ParseType(name string) ColumnType
	// CreateTable creates a table if it does not exist, with a primary or unique key
	// when key is not empty.
	CreateTable(table string, cols []Column, key []string) string
	// AddColumn adds a nullable column if the table lacks it.
	AddColumn(table string, col Column) string
	// ColumnsQuery lists a table's columns as rows (column_name, data_type) in table
	// order; it takes one argument, the table name.
	ColumnsQuery() string
	// InsertValues inserts rows rows of len(cols) values each into a staging table;
	// arguments are bound row by row in column order.
	InsertValues(table string, cols []Column, rows int) string
	// FromStage is the expression that reads staged column col (stored as StageType)
	// as the target's type, e.g. CAST("MEASURES" AS JSON).
	FromStage(col Column) string
	// InsertSelect inserts the rows of query sel (whose result columns are named and
	// ordered as cols) into table, resolving rows whose key exists as c says. The
	// arguments are those of sel. For Snowflake this is a MERGE.
	InsertSelect(table string, cols []Column, key []string, sel string, c Conflict) string
}

// RowAppender is an optional fast path of a Dialect for loading staged rows, used
// instead of InsertValues when the dialect implements it (DuckDB's appender).
type RowAppender interface {
	// AppendRows appends rows (values in cols order, as StageType columns hold them) to
	// table over conn. It need not be atomic: staging is repeated on retry.
	AppendRows(ctx context.Context, conn *sql.Conn, table string, cols []Column, rows [][]any) error
}

// StageType is how a staging table stores a column of type t: JSON, decimals and times of
// day travel as their text (what the sink binds for them) and are cast by FromStage when
// merged, so that every dialect can bulk-load the staging table with plain types.
func StageType(t ColumnType) ColumnType {
	switch t.Kind {
	case KindJSON, KindDecimal, KindTime:
		return ColumnType{Kind: KindString}
	}
	return t
}
