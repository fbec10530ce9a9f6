package sink

import (
	"context"
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"
)

// tableDef is a table the sink writes: its columns as they are in the warehouse (minus
// any KindOther column, which stays NULL) and how its key conflicts resolve.
type tableDef struct {
	name      string
	stage     string
	cols      []Column
	index     map[string]int // column name -> position in cols
	key       []string
	conflict  Conflict
	aggregate bool
}

func newTableDef(name string, cols []Column, key []string, c Conflict, aggregate bool) *tableDef {
	t := &tableDef{name: name, stage: StagePrefix + name, key: key, conflict: c, aggregate: aggregate,
		index: make(map[string]int, len(cols))}
	for _, col := range cols {
		if col.Type.Kind == KindOther {
			continue
		}
		t.index[col.Name] = len(t.cols)
		t.cols = append(t.cols, col)
	}
	return t
}

// stageCols are the staging table's columns: the batch id and offset, then the target's
// with their StageType.
func (t *tableDef) stageCols() []Column {
	out := append(make([]Column, 0, len(stageColumns)+len(t.cols)), stageColumns...)
	for _, c := range t.cols {
		out = append(out, Column{Name: c.Name, Type: StageType(c.Type)})
	}
	return out
}

// EnsureTable creates table and SLUICE_STAGE_<table> from a record schema (EventColumns,
// primary key EVENT_ID), or, when they exist, adds a nullable column for every field they
// lack; existing rows read NULL there. Columns the schema no longer has stay (NULL in new
// rows). A field whose type differs from its column's wraps ErrIncompatibleSchema and
// changes nothing. Statements are idempotent (IF NOT EXISTS), so concurrent sinks may
// race here safely.
func (w *SQLWarehouse) EnsureTable(ctx context.Context, table string, s avro.Schema) error {
	if err := checkTableName(table); err != nil {
		return err
	}
	want, err := EventColumns(s)
	if err != nil {
		return fmt.Errorf("sink: table %s: %w", table, err)
	}
	existing, err := w.columns(ctx, table)
	if err != nil {
		return fmt.Errorf("sink: table %s: %w", table, err)
	}
	if err := checkTypes(w.d, table, existing, want); err != nil {
		return err
	}
	got, err := w.ensureColumns(ctx, table, existing, want, []string{ColEventID})
	if err != nil {
		return fmt.Errorf("sink: table %s: %w", table, err)
	}
	def := newTableDef(table, got, []string{ColEventID}, ConflictIgnore, false)
	stageExisting, err := w.columns(ctx, def.stage)
	if err != nil {
		return fmt.Errorf("sink: table %s: %w", def.stage, err)
	}
	if err := checkTypes(w.d, def.stage, stageExisting, def.stageCols()); err != nil {
		return err
	}
	if _, err := w.ensureColumns(ctx, def.stage, stageExisting, def.stageCols(), nil); err != nil {
		return fmt.Errorf("sink: table %s: %w", def.stage, err)
	}
	w.setTable(def)
	return nil
}

// checkTableName rejects names that are not [A-Z_][A-Z0-9_]* or that belong to the sink.
func checkTableName(table string) error {
	switch {
	case !validIdent(table):
		return fmt.Errorf("sink: table name %q: want [A-Z_][A-Z0-9_]* (see TableName)", table)
	case table == AggregatesTable || strings.HasPrefix(table, "SLUICE_"):
		return fmt.Errorf("sink: table name %q is reserved", table)
	}
	return nil
}

// checkTypes fails if a wanted column exists with another type. The wanted type is
// compared as the warehouse stores it (d.TypeName read back by d.ParseType): Snowflake has
// one FLOAT for Avro float and double, and NUMBER(10,0) for an int and a decimal(10,0).
func checkTypes(d Dialect, table string, existing, want []Column) error {
	have := make(map[string]ColumnType, len(existing))
	for _, c := range existing {
		have[c.Name] = c.Type
	}
	for _, c := range want {
		if t, ok := have[c.Name]; ok && !sameType(t, c.Type) && !sameType(t, d.ParseType(d.TypeName(c.Type))) {
			return fmt.Errorf("sink: table %s: %w: column %s is %s, the schema wants %s",
				table, ErrIncompatibleSchema, c.Name, t, c.Type)
		}
	}
	return nil
}

func sameType(a, b ColumnType) bool {
	if a.Kind == KindOther || b.Kind == KindOther {
		return false
	}
	return a.Kind == b.Kind && a.Precision == b.Precision && a.Scale == b.Scale
}

// ensureColumns creates table with want (and key) when it has no columns yet, else adds
// the wanted columns it lacks. It returns the table's columns afterwards, in table order.
func (w *SQLWarehouse) ensureColumns(ctx context.Context, table string, existing, want []Column, key []string) ([]Column, error) {
	if len(existing) == 0 {
		if _, err := w.db.ExecContext(ctx, w.d.CreateTable(table, want, key)); err != nil {
			return nil, fmt.Errorf("create: %w", err)
		}
		return want, nil
	}
	have := make(map[string]bool, len(existing))
	for _, c := range existing {
		have[c.Name] = true
	}
	out := append([]Column(nil), existing...)
	for _, c := range want {
		if have[c.Name] {
			continue
		}
		if _, err := w.db.ExecContext(ctx, w.d.AddColumn(table, c)); err != nil {
			return nil, fmt.Errorf("add column %s: %w", c.Name, err)
		}
		out = append(out, c)
	}
	return out, nil
}
