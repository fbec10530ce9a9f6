package sink

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"time"
)

// txTimeout bounds one transaction from its BEGIN to its COMMIT or ROLLBACK.
const txTimeout = 2 * time.Minute

// sqlTx is a transaction that always ends on the server, and never leaves a connection
// in the pool with a transaction still open on it.
//
// Plain database/sql does not guarantee that with every driver. gosnowflake sends the
// ROLLBACK with the context the transaction began with: when that is the caller's
// context and the caller was cancelled (shutdown, a revoked partition), the ROLLBACK
// fails and database/sql returns the connection to the pool with the transaction still
// open. The next BEGIN on it fails ("cannot start a transaction within a transaction"),
// and on Snowflake the transaction holds its locks until the server aborts it. So a
// sqlTx begins on a connection of its own with a context detached from the caller's
// (bounded by txTimeout), and when its COMMIT or ROLLBACK fails it closes that
// connection instead of returning it to the pool: closing the session ends its
// transaction on the server.
type sqlTx struct {
	*sql.Tx
	conn   *sql.Conn
	cancel context.CancelFunc
	ended  bool
}

// begin starts a transaction. Statements in it take the caller's context as usual;
// cancelling that stops a statement, and the ROLLBACK that follows still goes out.
func (w *SQLWarehouse) begin(ctx context.Context) (*sqlTx, error) {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), txTimeout)
	tx, err := conn.BeginTx(tctx, nil)
	if err != nil {
		cancel()
		// The BEGIN may have reached the server even though its answer did not come
		// back: this connection is not trusted again.
		return nil, errors.Join(err, discard(conn))
	}
	return &sqlTx{Tx: tx, conn: conn, cancel: cancel}, nil
}

// Commit commits; when the COMMIT fails the connection is closed, not reused.
func (t *sqlTx) Commit() error {
	if t.ended {
		return sql.ErrTxDone
	}
	return t.end(t.Tx.Commit())
}

// Rollback rolls back; after Commit or an earlier Rollback it does nothing and returns
// nil, so it can sit in a defer. When the ROLLBACK fails the connection is closed.
func (t *sqlTx) Rollback() error {
	if t.ended {
		return nil
	}
	err := t.Tx.Rollback()
	if errors.Is(err, sql.ErrTxDone) {
		// database/sql already rolled it back (its context timed out) and discarded
		// the connection.
		err = nil
	}
	return t.end(err)
}

func (t *sqlTx) end(err error) error {
	t.ended = true
	defer t.cancel()
	if err != nil {
		return errors.Join(err, discard(t.conn))
	}
	return ignoreConnDone(t.conn.Close())
}

// discard closes conn's driver connection instead of returning it to the pool.
func discard(conn *sql.Conn) error {
	err := conn.Raw(func(any) error { return driver.ErrBadConn })
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) {
		err = nil
	}
	return errors.Join(err, ignoreConnDone(conn.Close()))
}

func ignoreConnDone(err error) error {
	if errors.Is(err, sql.ErrConnDone) {
		return nil
	}
	return err
}
