package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Errors of TxnProducer.Produce. Each says what became of the call's records.
var (
	// ErrAborted: the transaction that held the call's records was aborted (or never
	// began); none of them is, or will become, visible to read_committed readers. Retry.
	ErrAborted = errors.New("kafka: transaction aborted, nothing written")
	// ErrOutcomeUnknown: the commit of the transaction holding the call's records was
	// sent, but its answer did not come in time (or the connection broke): the records
	// may or may not be visible. A retry is safe only with the same event ids (they are
	// deduplicated downstream).
	ErrOutcomeUnknown = errors.New("kafka: transaction commit sent but not confirmed, outcome unknown")
	// ErrTooLarge: the call's records are larger than the whole buffer; they can never
	// be written. Nothing was written.
	ErrTooLarge = errors.New("kafka: records larger than the producer buffer")
	// ErrClosed: the producer is closed. Nothing was written.
	ErrClosed = errors.New("kafka: producer closed")
)

// TxnProducerOptions tune a TxnProducer.
type TxnProducerOptions struct {
	// TransactionalID names the producer; client i of the pool uses
	// "<TransactionalID>.<i>". Required, and stable per instance (TransactionalID).
	TransactionalID string
	// Clients is the number of transactional clients, each committing its own
	// transactions: while one commits, the next takes the calls that arrived
	// meanwhile. Default 2.
	Clients int
	// MaxBufferedBytes bounds the record bytes of calls that wait for, or are in, a
	// transaction; a call that does not fit fails at once with ErrBufferFull, one that
	// could never fit with ErrTooLarge. Default 64 MiB.
	MaxBufferedBytes int64
	// MaxBufferedRecords bounds their records the same way. Default 100000.
	MaxBufferedRecords int
	// MaxTxnBytes bounds the record bytes of one transaction (it takes at least one
	// call): under overload the waiting calls are spread over several transactions, so
	// one slow or failed transaction does not fail them all. Default 8 MiB.
	MaxTxnBytes int64
	// TxnTimeout is the transaction timeout the brokers enforce: how long a transaction
	// left open by a crashed instance that never comes back holds back read_committed
	// readers. Default 20s; it must exceed the longest call deadline plus CommitGrace.
	TxnTimeout time.Duration
	// CommitGrace is how long past the earliest deadline of its calls a transaction's
	// commit may take before its calls get ErrOutcomeUnknown. Default 2s.
	CommitGrace time.Duration
	// DefaultDeadline bounds a call whose context has no deadline. Default 5s.
	DefaultDeadline time.Duration
	// MaxBatchBytes, if set, is the per-topic record batch limit (the topic's
	// max.message.bytes; kgo.ProducerBatchMaxBytesFn). Nil: kgo's default.
	MaxBatchBytes func(topic string) int32
	// ClientMetrics, if set, receives each client's franz-go metrics, labelled
	// client=ingest (client=ingest-<i> with more than one client).
	ClientMetrics prometheus.Registerer
}

// TxnProducer writes each call's records in a Kafka transaction, with group commit:
// calls that arrive while a client's transaction is committing wait and share the
// next transaction. Produce returns nil only when the transaction holding the call's
// records committed; ErrAborted or ErrBufferFull mean none of them is visible to
// read_committed readers; ErrOutcomeUnknown is the one ambiguous answer (a commit sent
// but not answered in time). A record failure aborts the whole transaction, so the
// other calls of that transaction fail with ErrAborted too.
type TxnProducer struct {
	cfg Config
	o   TxnProducerOptions

	mu      sync.Mutex
	cond    *sync.Cond
	pending []*txnCall
	bytes   int64 // reserved by pending and in-transaction calls
	records int
	closed  bool

	// admin is a plain client for readiness checks (the transactional clients are
	// replaced when they fail).
	admin *kgo.Client
	wg    sync.WaitGroup
}

// txnCall is one Produce call.
type txnCall struct {
	recs     []*kgo.Record
	bytes    int64
	deadline time.Time
	done     chan error // buffered 1: the committer never blocks on it
	// taken is set (under TxnProducer.mu) when a committer took the call.
	taken bool

	mu  sync.Mutex
	err error // the first record error
}

func (c *txnCall) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

func (c *txnCall) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// NewTxnProducer returns a TxnProducer and starts its committers. It does not wait for
// the brokers: each client initialises its producer id (fencing a crashed
// predecessor's open transaction) in the background.
func NewTxnProducer(cfg Config, o TxnProducerOptions) (*TxnProducer, error) {
	if o.TransactionalID == "" {
		return nil, errors.New("kafka txn producer: transactional id: required")
	}
	if o.Clients <= 0 {
		o.Clients = 2
	}
	if o.MaxBufferedBytes <= 0 {
		o.MaxBufferedBytes = 64 << 20
	}
	if o.MaxBufferedRecords <= 0 {
		o.MaxBufferedRecords = 100_000
	}
	if o.TxnTimeout <= 0 {
		o.TxnTimeout = 20 * time.Second
	}
	if o.MaxTxnBytes <= 0 {
		o.MaxTxnBytes = 8 << 20
	}
	if o.CommitGrace <= 0 {
		o.CommitGrace = 2 * time.Second
	}
	if o.DefaultDeadline <= 0 {
		o.DefaultDeadline = 5 * time.Second
	}
	admin, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		return nil, fmt.Errorf("kafka txn producer: %w", err)
	}
	p := &TxnProducer{cfg: cfg, o: o, admin: admin}
	p.cond = sync.NewCond(&p.mu)
	clients := make([]*kgo.Client, o.Clients)
	for i := range clients {
		if clients[i], err = p.newClient(i); err != nil {
			for _, cl := range clients[:i] {
				cl.Close()
			}
			admin.Close()
			return nil, err
		}
	}
	for i, cl := range clients {
		p.wg.Go(func() { p.commitLoop(i, cl) })
	}
	return p, nil
}

// newClient returns transactional client i.
func (p *TxnProducer) newClient(i int) (*kgo.Client, error) {
	opts := append(p.cfg.Opts(),
		kgo.TransactionalID(p.o.TransactionalID+"."+strconv.Itoa(i)),
		kgo.TransactionTimeout(p.o.TxnTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// The reservation in Produce bounds what is buffered; these only back it up.
		kgo.MaxBufferedBytes(int(p.o.MaxBufferedBytes)),
		kgo.MaxBufferedRecords(p.o.MaxBufferedRecords),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
	)
	if p.o.MaxBatchBytes != nil {
		opts = append(opts, kgo.ProducerBatchMaxBytesFn(p.o.MaxBatchBytes))
	}
	name := "ingest"
	if p.o.Clients > 1 {
		name += "-" + strconv.Itoa(i)
	}
	opts = append(opts, ClientMetrics(p.o.ClientMetrics, name)...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka txn producer: %w", err)
	}
	return cl, nil
}

// Client returns a plain (non-transactional) client on the same brokers, for readiness
// checks and admin requests.
func (p *TxnProducer) Client() *kgo.Client { return p.admin }

// Produce writes recs in a transaction and waits for its outcome. It returns nil only
// if the transaction committed. Any error but ErrOutcomeUnknown means none of recs is
// visible to read_committed readers. ctx's deadline bounds how long the records may
// take to be acknowledged; the commit that follows may take up to CommitGrace more.
func (p *TxnProducer) Produce(ctx context.Context, recs ...*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	c := &txnCall{recs: recs, done: make(chan error, 1)}
	for _, r := range recs {
		c.bytes += recordBytes(r)
	}
	if c.bytes > p.o.MaxBufferedBytes || len(recs) > p.o.MaxBufferedRecords {
		return fmt.Errorf("%w: %d records, %d bytes; the buffer holds %d records, %d bytes",
			ErrTooLarge, len(recs), c.bytes, p.o.MaxBufferedRecords, p.o.MaxBufferedBytes)
	}
	var ok bool
	c.deadline, ok = ctx.Deadline()
	if !ok {
		c.deadline = time.Now().Add(p.o.DefaultDeadline)
	}

	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return ErrClosed
	case p.bytes+c.bytes > p.o.MaxBufferedBytes || p.records+len(recs) > p.o.MaxBufferedRecords:
		p.mu.Unlock()
		return fmt.Errorf("%w: %d bytes of records wait for a commit", ErrBufferFull, p.bytes)
	}
	p.bytes += c.bytes
	p.records += len(recs)
	p.pending = append(p.pending, c)
	p.mu.Unlock()
	p.cond.Signal()

	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
	}
	// Not yet in a transaction: withdraw it, nothing was written.
	p.mu.Lock()
	if !c.taken {
		for i, pc := range p.pending {
			if pc == c {
				p.pending = append(p.pending[:i], p.pending[i+1:]...)
				break
			}
		}
		p.release(c)
		p.mu.Unlock()
		return fmt.Errorf("%w: not begun before the deadline: %w", ErrAborted, ctx.Err())
	}
	p.mu.Unlock()
	// In a transaction: its committer answers by the deadline plus CommitGrace. The
	// timer only guards against a committer stuck in the client.
	t := time.NewTimer(time.Until(c.deadline) + p.o.CommitGrace + time.Second)
	defer t.Stop()
	select {
	case err := <-c.done:
		return err
	case <-t.C:
		return fmt.Errorf("%w: no outcome %s after the deadline", ErrOutcomeUnknown, p.o.CommitGrace+time.Second)
	}
}

// release returns c's reservation; p.mu is held.
func (p *TxnProducer) release(c *txnCall) {
	p.bytes -= c.bytes
	p.records -= len(c.recs)
}

// take waits for pending calls and takes the oldest, up to MaxTxnBytes (at least one);
// nil when closed and drained.
func (p *TxnProducer) take() []*txnCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.pending) == 0 && !p.closed {
		p.cond.Wait()
	}
	if len(p.pending) == 0 {
		return nil // closed
	}
	n, bytes := 0, int64(0)
	for n < len(p.pending) && (n == 0 || bytes+p.pending[n].bytes <= p.o.MaxTxnBytes) {
		bytes += p.pending[n].bytes
		p.pending[n].taken = true
		n++
	}
	calls := slices.Clone(p.pending[:n])
	p.pending = append(p.pending[:0], p.pending[n:]...)
	if len(p.pending) > 0 {
		p.cond.Signal() // another client may take the rest
	}
	return calls
}

// warn logs to Config.Logger, if set.
func (p *TxnProducer) warn(msg string, args ...any) {
	if p.cfg.Logger != nil {
		p.cfg.Logger.Warn(msg, args...)
	}
}

// Close stops taking calls, lets the committers finish the calls already queued
// (bounded by their deadlines) and closes the clients. ctx bounds the wait.
func (p *TxnProducer) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("kafka txn producer close: %w", ctx.Err())
	}
	p.admin.Close()
	return err
}

// recordBytes is the size kgo accounts a record with (key, value, headers).
func recordBytes(r *kgo.Record) int64 {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}
