package sink

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"
	"testing"
)

// txDriver is a database/sql driver that behaves as gosnowflake does where it matters to
// sqlTx: COMMIT and ROLLBACK go out with the context the transaction began with (and
// fail when it is done), and a BEGIN on a session already in a transaction fails.
type txDriver struct {
	mu           sync.Mutex
	conns        []*txConn
	closed       int
	failRollback int // the next n ROLLBACKs fail as if the network dropped them
	failCommit   int
}

func (d *txDriver) Connect(context.Context) (driver.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := &txConn{d: d}
	d.conns = append(d.conns, c)
	return c, nil
}

func (d *txDriver) Driver() driver.Driver { return nil }

// open reports the sessions not closed that are still inside a transaction.
func (d *txDriver) openTx() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.conns {
		if c.inTx && !c.closed {
			n++
		}
	}
	return n
}

type txConn struct {
	d      *txDriver
	inTx   bool
	closed bool
	txCtx  context.Context
}

func (c *txConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("no prepare") }
func (c *txConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *txConn) Close() error {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.closed = true
	c.d.closed++
	return nil
}

func (c *txConn) BeginTx(ctx context.Context, _ driver.TxOptions) (driver.Tx, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	if c.inTx {
		return nil, errors.New("cannot start a transaction within a transaction")
	}
	c.inTx, c.txCtx = true, ctx
	return (*txTx)(c), nil
}

func (c *txConn) ExecContext(ctx context.Context, _ string, _ []driver.NamedValue) (driver.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return driver.RowsAffected(1), nil
}

type txTx txConn

func (t *txTx) Commit() error   { return t.end(&t.d.failCommit) }
func (t *txTx) Rollback() error { return t.end(&t.d.failRollback) }

func (t *txTx) end(fail *int) error {
	if err := t.txCtx.Err(); err != nil {
		return err
	}
	t.d.mu.Lock()
	defer t.d.mu.Unlock()
	if *fail > 0 {
		*fail--
		return errors.New("connection reset by peer")
	}
	t.inTx = false
	return nil
}

func newTxWarehouse(t *testing.T) (*SQLWarehouse, *txDriver) {
	t.Helper()
	d := &txDriver{}
	db := sql.OpenDB(d)
	db.SetMaxOpenConns(1) // one session: a transaction left open on it breaks the next BEGIN
	w := NewSQL(db, DuckDB{})
	t.Cleanup(func() { _ = w.Close() })
	return w, d
}

// useAgain begins, writes and commits a transaction: it fails if the pool handed out a
// session still inside an earlier transaction.
func useAgain(t *testing.T, w *SQLWarehouse) {
	t.Helper()
	tx, err := w.begin(t.Context())
	if err != nil {
		t.Fatalf("begin after the failed transaction: %v", err)
	}
	if _, err := tx.ExecContext(t.Context(), "UPDATE x"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestTxRollbackAfterCallerCancelled: the caller's context is cancelled in the middle of
// a transaction (shutdown, a revoked partition). With a plain db.BeginTx(ctx) the driver's
// ROLLBACK carries the cancelled context and fails, and the session went back to the pool
// inside its transaction (seen on fakesnow as "cannot start a transaction within a
// transaction", then a hung sink).
func TestTxRollbackAfterCallerCancelled(t *testing.T) {
	w, d := newTxWarehouse(t)
	ctx, cancel := context.WithCancel(t.Context())
	tx, err := w.begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE x"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := tx.ExecContext(ctx, "UPDATE y"); !errors.Is(err, context.Canceled) {
		t.Fatalf("statement after cancel: %v, want context.Canceled", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatalf("rollback after the caller was cancelled: %v", err)
	}
	if n := d.openTx(); n != 0 {
		t.Fatalf("%d sessions still in a transaction", n)
	}
	if d.closed != 0 { // the ROLLBACK reached the session; it was not thrown away for want of one
		t.Fatalf("%d sessions closed, want the ROLLBACK to go out on the live one", d.closed)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatalf("second rollback: %v", err)
	}
	useAgain(t, w)
}

// TestTxFailedEndDiscardsSession: when the ROLLBACK or COMMIT itself fails, the session
// may still be inside its transaction, so it is closed instead of going back to the pool.
func TestTxFailedEndDiscardsSession(t *testing.T) {
	for _, end := range []string{"rollback", "commit"} {
		t.Run(end, func(t *testing.T) {
			w, d := newTxWarehouse(t)
			tx, err := w.begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if end == "rollback" {
				d.failRollback = 1
				err = tx.Rollback()
			} else {
				d.failCommit = 1
				err = tx.Commit()
			}
			if err == nil {
				t.Fatalf("%s: no error from a failed %s", end, end)
			}
			if d.closed != 1 {
				t.Fatalf("%d sessions closed, want the failed one", d.closed)
			}
			useAgain(t, w)
			if n := d.openTx(); n != 0 {
				t.Fatalf("%d sessions still in a transaction", n)
			}
		})
	}
}
