package dlq

import (
	"errors"
	"fmt"
	"time"
)

// WaitError asks the stage to hold the record's partition: the record is not handled
// now and must not be committed; the stage rewinds the partition to it and pauses it
// until Until, then delivers it again. Retry topics return it for a record whose
// not-before time has not come, an open circuit breaker for the records it refuses, and
// ordered mode for a head record between its retries.
type WaitError struct {
	Until time.Time
	// Reason says why, for logs: "not-before", "circuit-open", "ordered-retry".
	Reason string
	// Err is the error that caused the wait, if any.
	Err error
}

// Error describes the wait.
func (e *WaitError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("wait until %s (%s): %v", e.Until.Format(time.RFC3339Nano), e.Reason, e.Err)
	}
	return fmt.Sprintf("wait until %s (%s)", e.Until.Format(time.RFC3339Nano), e.Reason)
}

// Unwrap returns the cause.
func (e *WaitError) Unwrap() error { return e.Err }

// AsWait returns the WaitError in err's chain, if any.
func AsWait(err error) (*WaitError, bool) {
	var w *WaitError
	if errors.As(err, &w) {
		return w, true
	}
	return nil, false
}
