package sink

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrFenced: the partition's owner epoch is not the batch's, because another sink
	// claimed the partition since (or the batch's epoch never came from Claim). The writer
	// must stop writing the partition; nothing was committed.
	ErrFenced = errors.New("sink: fenced by a newer owner")
	// ErrOffsetMismatch: the stored next offset is neither the batch's Start nor (for a
	// retry of a committed batch) its End. The caller should Claim again and seek to the
	// returned offset; nothing was committed.
	ErrOffsetMismatch = errors.New("sink: offset mismatch")
	// ErrIncompatibleSchema: a schema field's type differs from its existing column, or
	// the schema cannot be mapped to a table (not a record, clashing column names).
	ErrIncompatibleSchema = errors.New("sink: incompatible schema")
	// ErrUnknownTable: Write to a table that EnsureTable has not prepared in this process.
	ErrUnknownTable = errors.New("sink: unknown table")
	// ErrInvalidBatch: the batch itself is malformed (End before Start, a row outside
	// [Start, End), rows out of order). A bug in the caller; permanent.
	ErrInvalidBatch = errors.New("sink: invalid batch")
	// ErrRowRejected: some rows do not fit their table. Write returns a *RejectedError
	// listing them; nothing was committed. Retrying without those rows (they go to the
	// DLQ, their offsets stay in the batch range) succeeds.
	ErrRowRejected = errors.New("sink: rows rejected")
)

// RowError is why one row of a batch was rejected.
type RowError struct {
	// Offset and EventID identify the row.
	Offset  int64
	EventID string
	// Err says what is wrong, naming the field.
	Err error
}

// Error renders "offset 12 (event 01J...): amount: ...".
func (e RowError) Error() string {
	if e.EventID == "" {
		return fmt.Sprintf("offset %d: %v", e.Offset, e.Err)
	}
	return fmt.Sprintf("offset %d (event %s): %v", e.Offset, e.EventID, e.Err)
}

// RejectedError lists every row of a batch that does not fit its table. It wraps
// ErrRowRejected.
type RejectedError struct {
	// Table is the target table.
	Table string
	// Rows are the rejected rows, in batch order.
	Rows []RowError
}

// Error names the table, the count and the first few rows.
func (e *RejectedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sink: %d rows rejected by %s", len(e.Rows), e.Table)
	for i, r := range e.Rows {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Rows)-i)
			break
		}
		b.WriteString("; ")
		b.WriteString(r.Error())
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrRowRejected) true.
func (e *RejectedError) Unwrap() error { return ErrRowRejected }

// Offsets returns the offsets of the rejected rows, for the caller to dead-letter.
func (e *RejectedError) Offsets() []int64 {
	out := make([]int64, len(e.Rows))
	for i, r := range e.Rows {
		out[i] = r.Offset
	}
	return out
}
