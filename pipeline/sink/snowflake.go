package sink

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Snowflake is the Dialect of Snowflake, through gosnowflake (OpenSnowflake). Its
// choices:
//
//   - types: VARCHAR (TEXT), NUMBER(10,0) for int and NUMBER(19,0) for long (the digits each
//     holds), FLOAT for float and double (Snowflake has only a 64-bit float), BOOLEAN,
//     TIMESTAMP_NTZ (the instant in UTC, like DuckDB's TIMESTAMP), DATE, TIME, BINARY,
//     NUMBER(p,s) and VARIANT for JSON;
//   - upserts are MERGE statements in plain SQL whose only bind parameters are the batch
//     id: the rows reach the staging table first, by multi-row INSERT ... VALUES
//     (AppendRows), never by an array-bound MERGE;
//   - primary keys are declared but, as Snowflake does not enforce them, the MERGE is
//     what keeps a replay from duplicating a row.
//
// ParseType cannot tell a float column from a double one, nor a decimal(10,0) or
// decimal(19,0) column from an int or long one: Snowflake stores them alike.
type Snowflake struct{}

var (
	_ Dialect     = Snowflake{}
	_ RowAppender = Snowflake{}
)

// Name returns "snowflake".
func (Snowflake) Name() string { return "snowflake" }

// DriverName returns "snowflake", the database/sql driver gosnowflake registers.
func (Snowflake) DriverName() string { return "snowflake" }

// Quote double-quotes ident: quoted names keep their (upper) case in Snowflake.
func (Snowflake) Quote(ident string) string { return quoteIdent(ident) }

// Placeholder returns "?": gosnowflake binds positional parameters in order.
func (Snowflake) Placeholder(int) string { return "?" }

// Snowflake's names for the integer kinds. INFORMATION_SCHEMA reports every integer
// type as NUMBER(38,0), so the sink declares the width it needs, which reads back.
const (
	sfIntType  = "NUMBER(10,0)"
	sfLongType = "NUMBER(19,0)"
)

// TypeName maps a column type to Snowflake's name for it.
func (Snowflake) TypeName(t ColumnType) string {
	switch t.Kind {
	case KindString:
		return "VARCHAR"
	case KindInt:
		return sfIntType
	case KindLong:
		return sfLongType
	case KindFloat, KindDouble:
		return "FLOAT"
	case KindBool:
		return "BOOLEAN"
	case KindTimestamp:
		return "TIMESTAMP_NTZ"
	case KindDate:
		return "DATE"
	case KindTime:
		return "TIME"
	case KindBytes:
		return "BINARY"
	case KindDecimal:
		return fmt.Sprintf("NUMBER(%d,%d)", t.Precision, t.Scale)
	case KindJSON:
		return "VARIANT"
	}
	return t.Raw
}

// ParseType maps a type as ColumnsQuery renders it (INFORMATION_SCHEMA.COLUMNS.DATA_TYPE,
// with precision and scale for NUMBER) back to a column type. FLOAT reads as double,
// NUMBER(10,0) as int and NUMBER(19,0) as long; TIMESTAMP_TZ, TIMESTAMP_LTZ, OBJECT,
// ARRAY and the like are KindOther.
func (Snowflake) ParseType(name string) ColumnType {
	n := strings.ToUpper(strings.TrimSpace(name))
	switch n {
	case "TEXT", "VARCHAR", "STRING":
		return ColumnType{Kind: KindString}
	case "FLOAT", "DOUBLE", "REAL":
		return ColumnType{Kind: KindDouble}
	case "BOOLEAN":
		return ColumnType{Kind: KindBool}
	case "TIMESTAMP_NTZ", "TIMESTAMP":
		return ColumnType{Kind: KindTimestamp}
	case "DATE":
		return ColumnType{Kind: KindDate}
	case "TIME":
		return ColumnType{Kind: KindTime}
	case "BINARY", "VARBINARY":
		return ColumnType{Kind: KindBytes}
	case "VARIANT":
		return ColumnType{Kind: KindJSON}
	case sfIntType:
		return ColumnType{Kind: KindInt}
	case sfLongType:
		return ColumnType{Kind: KindLong}
	}
	if t, ok := parseDecimal(n, "NUMBER"); ok {
		return t
	}
	return ColumnType{Kind: KindOther, Raw: name}
}

// CreateTable returns CREATE TABLE IF NOT EXISTS with a (declared, not enforced) PRIMARY
// KEY on key.
func (d Snowflake) CreateTable(table string, cols []Column, key []string) string {
	return createTableSQL(d, table, cols, key)
}

// AddColumn returns ALTER TABLE ... ADD COLUMN IF NOT EXISTS.
func (d Snowflake) AddColumn(table string, col Column) string { return addColumnSQL(d, table, col) }

// ColumnsQuery reads INFORMATION_SCHEMA.COLUMNS of the session's schema, rendering NUMBER
// with its precision and scale ("NUMBER(19,0)").
func (Snowflake) ColumnsQuery() string {
	return "SELECT column_name, CASE WHEN data_type = 'NUMBER' THEN 'NUMBER(' || " +
		"CAST(numeric_precision AS TEXT) || ',' || CAST(numeric_scale AS TEXT) || ')' " +
		"ELSE data_type END FROM information_schema.columns " +
		"WHERE table_schema = CURRENT_SCHEMA() AND table_name = ? ORDER BY ordinal_position"
}

// InsertValues returns a multi-row INSERT ... VALUES with a plain placeholder per value,
// for callers that bind values gosnowflake binds faithfully (AppendRows converts them
// first; see sfBindValue).
func (d Snowflake) InsertValues(table string, cols []Column, rows int) string {
	return insertValuesSQL(d, table, cols, rows, placeholderTuple(len(cols)))
}

// FromStage reads the staged text of a JSON column with PARSE_JSON and casts that of
// DECIMAL and TIME columns to their type.
func (d Snowflake) FromStage(col Column) string {
	q := d.Quote(col.Name)
	switch col.Type.Kind {
	case KindJSON:
		return "PARSE_JSON(" + q + ")"
	case KindDecimal, KindTime:
		return "CAST(" + q + " AS " + d.TypeName(col.Type) + ")"
	}
	return q
}

// InsertSelect returns a MERGE of sel into table on key: WHEN NOT MATCHED THEN INSERT,
// and for ConflictReplace also WHEN MATCHED THEN UPDATE of the non-key columns. sel must
// not return two rows with the same key (the sink deduplicates each batch), which
// Snowflake would reject for an update as nondeterministic. With no key it is a plain
// INSERT ... SELECT.
func (d Snowflake) InsertSelect(table string, cols []Column, key []string, sel string, c Conflict) string {
	if len(key) == 0 {
		return "INSERT INTO " + d.Quote(table) + " (" + quoteColumns(d, cols) + ") " + sel
	}
	var b strings.Builder
	b.WriteString("MERGE INTO ")
	b.WriteString(d.Quote(table))
	b.WriteString(" AS T USING (")
	b.WriteString(sel)
	b.WriteString(") AS S ON ")
	isKey := make(map[string]bool, len(key))
	for i, k := range key {
		isKey[k] = true
		if i > 0 {
			b.WriteString(" AND ")
		}
		q := d.Quote(k)
		b.WriteString("T." + q + " = S." + q)
	}
	if c == ConflictReplace {
		var sets []string
		for _, col := range cols {
			if !isKey[col.Name] {
				q := d.Quote(col.Name)
				sets = append(sets, q+" = S."+q)
			}
		}
		if len(sets) > 0 {
			b.WriteString(" WHEN MATCHED THEN UPDATE SET ")
			b.WriteString(strings.Join(sets, ", "))
		}
	}
	b.WriteString(" WHEN NOT MATCHED THEN INSERT (")
	b.WriteString(quoteColumns(d, cols))
	b.WriteString(") VALUES (")
	for i, col := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("S." + d.Quote(col.Name))
	}
	b.WriteString(")")
	return b.String()
}

// sfStageArgs is how many bind parameters one staging INSERT carries at most.
const sfStageArgs = 4000

// AppendRows stages rows with multi-row INSERT ... VALUES statements of at most
// sfStageArgs parameters, each value converted by sfBindValue so that gosnowflake binds
// it without loss. BINARY values travel as hex text through TO_BINARY(?, 'HEX').
func (d Snowflake) AppendRows(ctx context.Context, conn *sql.Conn, table string, cols []Column, rows [][]any) error {
	if len(cols) == 0 || len(rows) == 0 {
		return nil
	}
	ph := make([]string, len(cols))
	for i, c := range cols {
		ph[i] = "?"
		if c.Type.Kind == KindBytes {
			ph[i] = "TO_BINARY(?, 'HEX')"
		}
	}
	tuple := "(" + strings.Join(ph, ", ") + ")"
	per := max(1, sfStageArgs/len(cols))
	for len(rows) > 0 {
		n := min(per, len(rows))
		args := make([]any, 0, n*len(cols))
		for _, r := range rows[:n] {
			if len(r) != len(cols) {
				return fmt.Errorf("snowflake stage %s: row of %d values for %d columns", table, len(r), len(cols))
			}
			for i, v := range r {
				bv, err := sfBindValue(cols[i].Type, v)
				if err != nil {
					return fmt.Errorf("snowflake stage %s: column %s: %w", table, cols[i].Name, err)
				}
				args = append(args, bv)
			}
		}
		if _, err := conn.ExecContext(ctx, insertValuesSQL(d, table, cols, n, tuple), args...); err != nil {
			return fmt.Errorf("snowflake stage %s: %w", table, err)
		}
		rows = rows[n:]
	}
	return nil
}

// sfBindValue converts a staged value (as convertValue makes it) into one gosnowflake
// binds faithfully:
//
//   - floats as their shortest exact decimal text (gosnowflake 2.1.0 formats every
//     float64 bind with 32-bit precision, 1234567.891 -> "1.2345679e+06"), NaN and
//     infinities as Snowflake spells them;
//   - bytes as hex text, for TO_BINARY(?, 'HEX') (a []byte bind is sent as an ARRAY);
//   - timestamps as UTC time.Time, bound as TIMESTAMP_NTZ nanoseconds (exact for years
//     1..9999); dates likewise, which the DATE column truncates to the day;
//   - NULL as an untyped NULL (gosnowflake sends it as TEXT; a typed NULL bind such as a
//     FIXED null crashes fakesnow's server);
//   - 32-bit integers widened to int64; strings and booleans as they are.
func sfBindValue(t ColumnType, v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string, bool, int64:
		return x, nil
	case int32:
		return int64(x), nil
	case int:
		return int64(x), nil
	case float64:
		return sfFloatText(x, 64), nil
	case float32:
		return sfFloatText(float64(x), 32), nil
	case []byte:
		return strings.ToUpper(hex.EncodeToString(x)), nil
	case time.Time:
		return x.UTC(), nil
	}
	return nil, fmt.Errorf("%w: %T for a %s column", errWrongType, v, t)
}

// sfFloatText renders f as the shortest text that reads back as the same float of the
// given bit size, with NaN and the infinities as Snowflake reads them.
func sfFloatText(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}
