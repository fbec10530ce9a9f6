package sink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// migration is one numbered, append-only change to the fixed tables. Its statements
// must be idempotent too (IF NOT EXISTS), because Snowflake commits DDL on its own and
// a crash between a statement and the SLUICE_MIGRATIONS row must be safe to redo.
type migration struct {
	version int64
	name    string
	stmts   func(d Dialect) []string
}

// offsetColumns are the columns of SLUICE_OFFSETS; TOPIC and PARTITION are the key.
var offsetColumns = []Column{
	{Name: "TOPIC", Type: ColumnType{Kind: KindString}},
	{Name: "PARTITION", Type: ColumnType{Kind: KindInt}},
	{Name: "NEXT_OFFSET", Type: ColumnType{Kind: KindLong}},
	{Name: "OWNER_EPOCH", Type: ColumnType{Kind: KindLong}},
}

var migrationColumns = []Column{
	{Name: "VERSION", Type: ColumnType{Kind: KindLong}},
	{Name: "APPLIED_AT", Type: ColumnType{Kind: KindTimestamp}},
}

// migrations lists every migration in version order. Never edit one that has shipped;
// append a new one.
func migrations() []migration {
	return []migration{
		{version: 1, name: "offsets", stmts: func(d Dialect) []string {
			return []string{d.CreateTable(OffsetsTable, offsetColumns, []string{"TOPIC", "PARTITION"})}
		}},
		{version: 2, name: "aggregates", stmts: func(d Dialect) []string {
			agg := aggregatesDef()
			return []string{
				d.CreateTable(agg.name, agg.cols, agg.key),
				d.CreateTable(agg.stage, agg.stageCols(), nil),
			}
		}},
	}
}

// aggregatesDef is the AGGREGATES table as the latest migration leaves it.
func aggregatesDef() *tableDef {
	return newTableDef(AggregatesTable, aggregateColumns, aggregateKey, ConflictReplace, true)
}

// Migrate applies the migrations not yet recorded in SLUICE_MIGRATIONS, each in its own
// transaction with its record, in version order. Running it again changes nothing.
func (w *SQLWarehouse) Migrate(ctx context.Context) error {
	create := w.d.CreateTable(MigrationsTable, migrationColumns, []string{"VERSION"})
	if _, err := w.db.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("sink: migrate: %w", err)
	}
	applied, err := w.appliedMigrations(ctx)
	if err != nil {
		return fmt.Errorf("sink: migrate: %w", err)
	}
	for _, m := range migrations() {
		if applied[m.version] {
			continue
		}
		if err := w.applyMigration(ctx, m); err != nil {
			return fmt.Errorf("sink: migration %d (%s): %w", m.version, m.name, err)
		}
	}
	w.setTable(aggregatesDef())
	return nil
}

func (w *SQLWarehouse) appliedMigrations(ctx context.Context) (map[int64]bool, error) {
	rows, err := w.db.QueryContext(ctx, "SELECT "+w.d.Quote("VERSION")+" FROM "+w.d.Quote(MigrationsTable))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := map[int64]bool{}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

func (w *SQLWarehouse) applyMigration(ctx context.Context, m migration) (err error) {
	tx, err := w.begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	for _, stmt := range m.stmts(w.d) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	sel := "SELECT " + w.d.Placeholder(1) + " AS " + w.d.Quote("VERSION") + ", " +
		w.d.Placeholder(2) + " AS " + w.d.Quote("APPLIED_AT")
	record := w.d.InsertSelect(MigrationsTable, migrationColumns, []string{"VERSION"}, sel, ConflictIgnore)
	if _, err := tx.ExecContext(ctx, record, m.version, w.opts.now().UTC()); err != nil {
		return err
	}
	return tx.Commit()
}

// ignoreDone drops the error of rolling back a transaction that already ended.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}
