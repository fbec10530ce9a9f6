package sink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Write commits batch b exactly once (see the package documentation for the protocol).
//
// Outcomes:
//   - nil: the rows and NEXT_OFFSET = b.End are committed. This includes a retry of a
//     batch that already committed (NEXT_OFFSET = b.End and the same epoch, e.g. after
//     a lost commit acknowledgement): Write is idempotent for the same batch.
//   - ErrFenced: another owner claimed the partition; stop writing it.
//   - ErrOffsetMismatch: NEXT_OFFSET is neither b.Start nor b.End; Claim again and
//     rebuild the batch from the returned offset.
//   - *RejectedError (ErrRowRejected): rows that do not fit, nothing staged.
//   - ErrUnknownTable, ErrInvalidBatch: caller bugs.
//   - anything else (connection, conflict): nothing or everything committed; retry the
//     same batch, whose outcome then tells which.
func (w *SQLWarehouse) Write(ctx context.Context, b Batch) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("sink: write %s/%d [%d,%d): %w", b.Topic, b.Partition, b.Start, b.End, err)
		}
	}()
	t, err := w.batchTable(&b)
	if err != nil {
		return err
	}
	if err := b.check(); err != nil {
		return err
	}
	done, err := w.precheck(ctx, &b)
	if err != nil || done {
		return err
	}
	rows, err := t.stageRows(&b)
	if err != nil {
		return err
	}
	if err := w.stage(ctx, t, &b, rows); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	if err := w.opts.fail(StepStaged); err != nil {
		return fmt.Errorf("%s: %w", StepStaged, err)
	}
	done, err = w.commit(ctx, t, &b)
	if err != nil {
		return err
	}
	if done { // committed by an earlier attempt between precheck and CAS
		return w.dropStaged(ctx, t, &b)
	}
	if err := w.opts.fail(StepCommitted); err != nil {
		return fmt.Errorf("%s: %w", StepCommitted, err)
	}
	return nil
}

func (w *SQLWarehouse) batchTable(b *Batch) (*tableDef, error) {
	name := b.Table
	if b.Aggregate {
		name = AggregatesTable
	}
	t, ok := w.table(name)
	if !ok || t.aggregate != b.Aggregate {
		return nil, fmt.Errorf("%w: %q (call EnsureTable, or Migrate for aggregates)", ErrUnknownTable, name)
	}
	return t, nil
}

// check validates the batch's shape: a topic, 0 <= Start <= End, rows strictly
// increasing within [Start, End).
func (b *Batch) check() error {
	switch {
	case b.Topic == "":
		return fmt.Errorf("%w: no topic", ErrInvalidBatch)
	case b.Start < 0 || b.End < b.Start:
		return fmt.Errorf("%w: offsets [%d,%d)", ErrInvalidBatch, b.Start, b.End)
	}
	prev := b.Start - 1
	for _, r := range b.Rows {
		if r.Offset <= prev || r.Offset >= b.End {
			return fmt.Errorf("%w: row offset %d out of order or outside [%d,%d)", ErrInvalidBatch, r.Offset, b.Start, b.End)
		}
		prev = r.Offset
	}
	return nil
}

// precheck reads the offset row before any staging, so that a fenced writer or a retry
// of a committed batch costs one read. done means the batch is already committed.
// The compare-and-set in commit stays the authority.
func (w *SQLWarehouse) precheck(ctx context.Context, b *Batch) (done bool, err error) {
	next, epoch, found, err := w.readOffset(ctx, w.db, b)
	if err != nil {
		return false, fmt.Errorf("read offset: %w", err)
	}
	return classifyOffset(b, next, epoch, found)
}

// classifyOffset explains a stored offset row that does not match the batch: done for a
// batch already committed, else ErrFenced or ErrOffsetMismatch. A matching row gives
// (false, nil).
func classifyOffset(b *Batch, next, epoch int64, found bool) (bool, error) {
	switch {
	case !found:
		return false, fmt.Errorf("%w: partition never claimed", ErrFenced)
	case epoch != b.Epoch:
		return false, fmt.Errorf("%w: owner epoch is %d, batch epoch %d", ErrFenced, epoch, b.Epoch)
	case next == b.Start:
		return false, nil
	case next == b.End:
		return true, nil
	}
	return false, fmt.Errorf("%w: stored next offset is %d", ErrOffsetMismatch, next)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (w *SQLWarehouse) readOffset(ctx context.Context, q querier, b *Batch) (next, epoch int64, found bool, err error) {
	query := "SELECT " + w.d.Quote("NEXT_OFFSET") + ", " + w.d.Quote("OWNER_EPOCH") + " FROM " +
		w.d.Quote(OffsetsTable) + " WHERE " + w.d.Quote("TOPIC") + " = " + w.d.Placeholder(1) +
		" AND " + w.d.Quote("PARTITION") + " = " + w.d.Placeholder(2)
	err = q.QueryRowContext(ctx, query, b.Topic, b.Partition).Scan(&next, &epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	return next, epoch, true, nil
}

// stage replaces whatever an earlier attempt staged under this batch id (topic,
// partition, start, epoch) with rows: with the dialect's RowAppender on one connection
// when it has one, else in a transaction of INSERT ... VALUES statements. Either way a
// repeat of the same batch replaces, never adds.
func (w *SQLWarehouse) stage(ctx context.Context, t *tableDef, b *Batch, rows [][]any) (err error) {
	q, p := w.d.Quote, w.d.Placeholder
	clear := "DELETE FROM " + q(t.stage) + " WHERE " + q(colStageTopic) + " = " + p(1) +
		" AND " + q(colStagePartition) + " = " + p(2) + " AND " + q(colStageStart) + " = " + p(3) +
		" AND " + q(colStageEpoch) + " = " + p(4)
	clearArgs := []any{b.Topic, b.Partition, b.Start, b.Epoch}
	if app, ok := w.d.(RowAppender); ok {
		conn, err := w.db.Conn(ctx)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, conn.Close()) }()
		if _, err := conn.ExecContext(ctx, clear, clearArgs...); err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		return app.AppendRows(ctx, conn, t.stage, t.stageCols(), rows)
	}

	tx, err := w.begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	if _, err := tx.ExecContext(ctx, clear, clearArgs...); err != nil {
		return err
	}
	cols := t.stageCols()
	per := max(1, w.opts.chunkArgs/len(cols))
	var full *sql.Stmt
	for len(rows) > 0 {
		n := min(per, len(rows))
		args := make([]any, 0, n*len(cols))
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		if n == per {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, w.d.InsertValues(t.stage, cols, per)); err != nil {
					return err
				}
				defer full.Close()
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, w.d.InsertValues(t.stage, cols, n), args...)
		}
		if err != nil {
			return err
		}
		rows = rows[n:]
	}
	return tx.Commit()
}

// commit runs the one short transaction: CAS the offset, insert the staged rows into the
// target, delete the partition's staged rows of batches starting before End, commit.
// done means the CAS found the batch already committed (nothing was changed).
func (w *SQLWarehouse) commit(ctx context.Context, t *tableDef, b *Batch) (done bool, err error) {
	// Once begun, the transaction runs to its commit whatever happens to the caller's
	// context (shutdown, the drain deadline, a revoked partition): the statements are few
	// and short, txTimeout bounds them, and a batch that got this far is not thrown away.
	// (That the transaction always ends on the server, even when it fails, is begin's
	// job.)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), txTimeout)
	defer cancel()
	tx, err := w.begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil || done {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	q, p := w.d.Quote, w.d.Placeholder

	cas := "UPDATE " + q(OffsetsTable) + " SET " + q("NEXT_OFFSET") + " = " + p(1) +
		" WHERE " + q("TOPIC") + " = " + p(2) + " AND " + q("PARTITION") + " = " + p(3) +
		" AND " + q("NEXT_OFFSET") + " = " + p(4) + " AND " + q("OWNER_EPOCH") + " = " + p(5)
	res, err := tx.ExecContext(ctx, cas, b.End, b.Topic, b.Partition, b.Start, b.Epoch)
	if err != nil {
		return false, fmt.Errorf("%s: %w", StepCAS, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%s: %w", StepCAS, err)
	}
	if n != 1 {
		next, epoch, found, err := w.readOffset(ctx, tx, b)
		if err != nil {
			return false, fmt.Errorf("%s: read offset: %w", StepCAS, err)
		}
		done, err := classifyOffset(b, next, epoch, found)
		if err == nil && !done { // the row matched after all: a driver miscount
			err = fmt.Errorf("%w: compare-and-set changed %d rows", ErrOffsetMismatch, n)
		}
		return done, err
	}
	if err := w.opts.fail(StepCAS); err != nil {
		return false, fmt.Errorf("%s: %w", StepCAS, err)
	}

	batchID := " WHERE " + q(colStageTopic) + " = " + p(1) + " AND " + q(colStagePartition) + " = " + p(2) +
		" AND " + q(colStageStart) + " = " + p(3) + " AND " + q(colStageEpoch) + " = " + p(4)
	sel := "SELECT " + fromStage(w.d, t.cols) + " FROM " + q(t.stage) + batchID +
		" AND " + q(colStageOffset) + " < " + p(5)
	merge := w.d.InsertSelect(t.name, t.cols, t.key, sel, t.conflict)
	if _, err := tx.ExecContext(ctx, merge, b.Topic, b.Partition, b.Start, b.Epoch, b.End); err != nil {
		return false, fmt.Errorf("merge: %w", err)
	}
	if err := w.opts.fail(StepMerged); err != nil {
		return false, fmt.Errorf("%s: %w", StepMerged, err)
	}

	if _, err := tx.ExecContext(ctx, w.dropStagedSQL(t), b.Topic, b.Partition, b.End); err != nil {
		return false, fmt.Errorf("delete staged: %w", err)
	}
	if err := w.opts.fail(StepDeleted); err != nil {
		return false, fmt.Errorf("%s: %w", StepDeleted, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return false, nil
}

// dropStagedSQL deletes the partition's staged rows of every batch that starts before
// End: once NEXT_OFFSET reaches End such a batch can never commit, whichever epoch or
// attempt staged it. Arguments: topic, partition, end.
func (w *SQLWarehouse) dropStagedSQL(t *tableDef) string {
	q, p := w.d.Quote, w.d.Placeholder
	return "DELETE FROM " + q(t.stage) + " WHERE " + q(colStageTopic) + " = " + p(1) +
		" AND " + q(colStagePartition) + " = " + p(2) + " AND " + q(colStageStart) + " < " + p(3)
}

// dropStaged removes what a retry of an already committed batch just staged.
func (w *SQLWarehouse) dropStaged(ctx context.Context, t *tableDef, b *Batch) error {
	if _, err := w.db.ExecContext(ctx, w.dropStagedSQL(t), b.Topic, b.Partition, b.End); err != nil {
		return fmt.Errorf("delete staged: %w", err)
	}
	return nil
}

// fromStage is the select list reading staged columns as the target's types.
func fromStage(d Dialect, cols []Column) string {
	s := ""
	for i, c := range cols {
		if i > 0 {
			s += ", "
		}
		s += d.FromStage(c) + " AS " + d.Quote(c.Name)
	}
	return s
}
