package sink

import (
	"context"
	"errors"
	"fmt"
)

// Claim takes ownership of topic-partition for a new writer, in one transaction: it
// creates the offset row (NEXT_OFFSET 0, OWNER_EPOCH 0) if absent, increments
// OWNER_EPOCH, and returns the new epoch and NEXT_OFFSET. Every Write with an older epoch
// fails with ErrFenced from then on. The sink calls it on partition assignment and seeks
// the consumer to next; it also calls it again after ErrOffsetMismatch.
func (w *SQLWarehouse) Claim(ctx context.Context, topic string, partition int32) (epoch, next int64, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("sink: claim %s/%d: %w", topic, partition, err)
		}
	}()
	tx, err := w.begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	q := w.d.Quote
	p := w.d.Placeholder
	sel := "SELECT " + p(1) + " AS " + q("TOPIC") + ", " + p(2) + " AS " + q("PARTITION") + ", " +
		"CAST(0 AS " + w.d.TypeName(ColumnType{Kind: KindLong}) + ") AS " + q("NEXT_OFFSET") + ", " +
		"CAST(0 AS " + w.d.TypeName(ColumnType{Kind: KindLong}) + ") AS " + q("OWNER_EPOCH")
	insert := w.d.InsertSelect(OffsetsTable, offsetColumns, []string{"TOPIC", "PARTITION"}, sel, ConflictIgnore)
	if _, err := tx.ExecContext(ctx, insert, topic, partition); err != nil {
		return 0, 0, err
	}
	where := " WHERE " + q("TOPIC") + " = " + p(1) + " AND " + q("PARTITION") + " = " + p(2)
	bump := "UPDATE " + q(OffsetsTable) + " SET " + q("OWNER_EPOCH") + " = " + q("OWNER_EPOCH") + " + 1" + where
	if _, err := tx.ExecContext(ctx, bump, topic, partition); err != nil {
		return 0, 0, err
	}
	read := "SELECT " + q("OWNER_EPOCH") + ", " + q("NEXT_OFFSET") + " FROM " + q(OffsetsTable) + where
	if err := tx.QueryRowContext(ctx, read, topic, partition).Scan(&epoch, &next); err != nil {
		return 0, 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, err
	}
	return epoch, next, nil
}
