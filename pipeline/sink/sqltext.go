package sink

import (
	"strconv"
	"strings"
)

// The SQL both dialects write the same way, built once here; each Dialect method that
// has nothing of its own to add is one call to these.

// quoteIdent double-quotes ident, doubling any quote in it. Both DuckDB and Snowflake
// keep the case of a quoted name.
func quoteIdent(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}

// quoteNames is names quoted by d, comma-separated.
func quoteNames(d Dialect, names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = d.Quote(n)
	}
	return strings.Join(q, ", ")
}

// quoteColumns is the names of cols quoted by d, comma-separated.
func quoteColumns(d Dialect, cols []Column) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = d.Quote(c.Name)
	}
	return strings.Join(q, ", ")
}

// createTableSQL is CREATE TABLE IF NOT EXISTS table (cols) with a PRIMARY KEY on key.
func createTableSQL(d Dialect, table string, cols []Column, key []string) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS ")
	b.WriteString(d.Quote(table))
	b.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.Quote(c.Name))
		b.WriteByte(' ')
		b.WriteString(d.TypeName(c.Type))
	}
	if len(key) > 0 {
		b.WriteString(", PRIMARY KEY (")
		b.WriteString(quoteNames(d, key))
		b.WriteByte(')')
	}
	b.WriteByte(')')
	return b.String()
}

// addColumnSQL is ALTER TABLE table ADD COLUMN IF NOT EXISTS col.
func addColumnSQL(d Dialect, table string, col Column) string {
	return "ALTER TABLE " + d.Quote(table) + " ADD COLUMN IF NOT EXISTS " +
		d.Quote(col.Name) + " " + d.TypeName(col.Type)
}

// insertValuesSQL is INSERT INTO table (cols) VALUES tuple, tuple, ... (rows times).
func insertValuesSQL(d Dialect, table string, cols []Column, rows int, tuple string) string {
	var b strings.Builder
	b.Grow(32 + 16*len(cols) + rows*(len(tuple)+2))
	b.WriteString("INSERT INTO ")
	b.WriteString(d.Quote(table))
	b.WriteString(" (")
	b.WriteString(quoteColumns(d, cols))
	b.WriteString(") VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tuple)
	}
	return b.String()
}

// placeholderTuple is "(?, ?, ...)" with n placeholders.
func placeholderTuple(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

// parseDecimal reads "<prefix>(p,s)" (prefix "DECIMAL" or "NUMBER", upper case) as a
// decimal column type with a precision both warehouses hold.
func parseDecimal(n, prefix string) (ColumnType, bool) {
	inner, ok := strings.CutPrefix(n, prefix+"(")
	if !ok {
		return ColumnType{}, false
	}
	ps, ok := strings.CutSuffix(inner, ")")
	if !ok {
		return ColumnType{}, false
	}
	p, s, _ := strings.Cut(ps, ",")
	pi, err1 := strconv.Atoi(strings.TrimSpace(p))
	si, err2 := strconv.Atoi(strings.TrimSpace(s))
	if err1 != nil || err2 != nil || pi < 1 || pi > maxDecimalPrecision || si < 0 || si > pi {
		return ColumnType{}, false
	}
	return ColumnType{Kind: KindDecimal, Precision: pi, Scale: si}, true
}
