package process

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/stagekit"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

func (s *Stage) hasTickers() bool { return s.cfg.TickInterval > 0 }

// batch runs one transaction: the records of fs, then whatever more is already buffered,
// until MaxRecords or MaxTime; then ticks, changelog records, flush and commit.
func (s *Stage) batch(ctx context.Context, fs kgo.Fetches) error {
	start := s.cfg.Now()
	s.cfg.Metrics.txnOpen(s, start)
	defer s.cfg.Metrics.txnClosed(s)
	if err := s.sess.Begin(); err != nil {
		// The producer is in a failed state (fenced, or a transaction it could not end):
		// only a new session recovers. The polled records are consumed again by it.
		s.markBroken(fmt.Errorf("begin: %w", err))
		return nil
	}
	tx := s.newTxn(ctx)
	handleErr := s.fill(ctx, tx, fs, start)
	committed, failed := s.end(ctx, tx, handleErr)
	if committed && s.cfg.AfterCommit != nil {
		if err := s.cfg.AfterCommit(); err != nil {
			s.Kill()
			return fmt.Errorf("stage %s: after commit: %w: %w", s.cfg.Name, stagekit.ErrKilled, err)
		}
	}
	applyErr := s.apply(tx, committed)
	s.cfg.Metrics.txn(s.cfg.Name, committed, s.cfg.Now().Sub(start))
	s.settleHolds(committed)
	if applyErr != nil {
		// Kafka has the transaction; the local state does not. Stop: the next start
		// restores the stores from their changelogs (their checkpoints are older).
		return fmt.Errorf("stage %s: applying committed state: %w", s.cfg.Name, applyErr)
	}
	if committed {
		s.mu.Lock()
		s.startFailures = 0
		s.mu.Unlock()
		return nil
	}
	s.log.Warn("transaction aborted; retrying from the last commit", "records", tx.n, "err", failed)
	return s.afterAbort(ctx, tx)
}

// batchTxn is what one transaction of a batch gathers: its outputs' acks, the changelog end
// offset of every store it wrote, and the tasks it touched.
type batchTxn struct {
	s   *Stage
	ctx context.Context

	mu      sync.Mutex
	prodErr error
	// ends is, per store written in this transaction, the offset after its last
	// changelog record (from the produce acks): its checkpoint once committed.
	ends map[Changelogged]int64
	// outs are the output counters of this transaction by topic: a label lookup per
	// record cost as much as producing it. emit runs on the polling goroutine only.
	outs    map[string]prometheus.Counter
	touched map[TaskID]Task
	// n counts the records polled into the transaction.
	n int
}

func (s *Stage) newTxn(ctx context.Context) *batchTxn {
	return &batchTxn{s: s, ctx: ctx, ends: make(map[Changelogged]int64), outs: make(map[string]prometheus.Counter, 4),
		touched: make(map[TaskID]Task)}
}

// promise records a failed produce of the transaction.
func (tx *batchTxn) promise(r *kgo.Record, err error) {
	if err != nil {
		tx.mu.Lock()
		tx.prodErr = errors.Join(tx.prodErr, fmt.Errorf("produce %s/%d: %w", r.Topic, r.Partition, err))
		tx.mu.Unlock()
	}
}

// produceErr is the transaction's failed produces so far.
func (tx *batchTxn) produceErr() error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.prodErr
}

// emitWith produces r in the transaction, counted, answering promise.
func (tx *batchTxn) emitWith(r *kgo.Record, promise func(*kgo.Record, error)) {
	if m := tx.s.cfg.Metrics; m != nil {
		c, ok := tx.outs[r.Topic]
		if !ok {
			c = m.outCounter(tx.s.cfg.Name, r.Topic)
			tx.outs[r.Topic] = c
		}
		c.Inc()
	}
	tx.s.sess.Produce(tx.ctx, r, promise)
}

// emit is the tasks' emit: an output of the transaction.
func (tx *batchTxn) emit(r *kgo.Record) { tx.emitWith(r, tx.promise) }

// fill handles fs and what else is buffered (up to MaxRecords and MaxTime), runs the
// tickers, and writes every dirty store's changes to its changelog. It returns the
// first error of a task or a store: the transaction must not commit then.
func (s *Stage) fill(ctx context.Context, tx *batchTxn, fs kgo.Fetches, start time.Time) error {
	err := s.handle(ctx, fs, tx.touched, tx.emit)
	tx.n += fs.NumRecords()
	// A nil context returns at once with what is already buffered: batching under load,
	// no added latency when idle. Under a CommitInterval each poll waits up to
	// CommitLinger for more, until the interval has passed (real-time timers: the
	// interval is a cost knob, and a test's fake clock must not hold a transaction open).
	realStart := time.Now()
	for err == nil && tx.n < s.cfg.MaxRecords && s.cfg.Now().Sub(start) < s.cfg.MaxTime {
		more := s.pollMore(ctx, realStart, s.cfg.MaxRecords-tx.n)
		if more.NumRecords() == 0 {
			break
		}
		tx.n += more.NumRecords()
		err = s.handle(ctx, more, tx.touched, tx.emit)
	}
	if err == nil {
		err = s.tick(ctx, tx.touched, tx.emit)
	}
	if err == nil {
		// A store whose disk failed may have missed committed keys: nothing it decided
		// may commit.
		err = storeErrors(tx.touched)
	}
	if err != nil {
		return err
	}
	for id, t := range tx.touched {
		for _, st := range t.Stores() {
			if !st.Dirty() {
				continue
			}
			topic := s.cfg.Changelog(id.Topic, st.Name())
			acked := func(r *kgo.Record, err error) {
				tx.promise(r, err)
				if err == nil {
					tx.mu.Lock()
					tx.ends[st] = max(tx.ends[st], r.Offset+1)
					tx.mu.Unlock()
				}
			}
			st.Changes(func(k string, v []byte) {
				tx.emitWith(&kgo.Record{Topic: topic, Partition: id.Partition, Key: []byte(k), Value: v}, acked)
			})
		}
	}
	return nil
}

// end flushes the transaction and commits it if handleErr, the flush and every produce
// succeeded, else aborts it. failed joins why it did not commit.
func (s *Stage) end(ctx context.Context, tx *batchTxn, handleErr error) (committed bool, failed error) {
	// Flush before ending: without it every transaction waits out the producer linger.
	// Past the transaction timeout the brokers abort it anyway: stop waiting then.
	fctx, cancelFlush := context.WithTimeout(ctx, s.cfg.TxnTimeout)
	flushErr := s.sess.Client().Flush(fctx)
	cancelFlush()
	if handleErr == nil && flushErr == nil {
		// Held partitions commit the offset of the record they wait on, not of the
		// records polled after it.
		s.rewindHolds()
	}
	perr := tx.produceErr()
	ok := handleErr == nil && flushErr == nil && perr == nil
	// End is bounded (EndTimeout): unbounded, it can wait for a heartbeat that the
	// group loop, itself waiting for AllowRebalance, never sends. Any error leaves the
	// producer in a state kgo does not promise to recover from: the session is replaced
	// before the next poll (rebuild), which fences this producer, so the transaction is
	// not committed later behind our back, and its offsets stay where they were.
	ectx, cancelEnd := context.WithTimeout(ctx, s.cfg.EndTimeout)
	committed, endErr := s.sess.End(ectx, kgo.TransactionEndTry(ok))
	timedOut := ectx.Err() != nil && ctx.Err() == nil
	cancelEnd()
	if endErr != nil && !committed {
		if timedOut {
			endErr = fmt.Errorf("transaction did not end within %s: %w", s.cfg.EndTimeout, endErr)
		}
		s.markBroken(endErr)
	}
	return committed, errors.Join(handleErr, flushErr, perr, endErr)
}

// apply makes the transaction's state writes reach the stores now that it committed:
// each store applies them in one batch with its checkpoint (on disk, the changelog
// offset they reach), so a restart reads only the changelog after it. An aborted
// transaction's writes are dropped.
func (s *Stage) apply(tx *batchTxn, committed bool) error {
	var applyErr error
	tx.mu.Lock()
	defer tx.mu.Unlock()
	for _, t := range tx.touched {
		for _, st := range t.Stores() {
			if !committed {
				st.Abort()
				continue
			}
			cp, ok := tx.ends[st]
			if !ok {
				cp = stream.NoCheckpoint // nothing written: the checkpoint stands
			}
			if err := st.CommitAt(cp); err != nil {
				applyErr = errors.Join(applyErr, fmt.Errorf("store %s: %w", st.Name(), err))
			}
		}
		t.Done(committed)
	}
	return applyErr
}

// afterAbort readies the stage to handle an aborted transaction's records again: it
// stops on a fatal or store error, leaves a broken session to Run's rebuild, and else
// rebuilds the touched tasks from their changelogs and waits RetryBackoff.
func (s *Stage) afterAbort(ctx context.Context, tx *batchTxn) error {
	s.mu.Lock()
	fatal := s.fatal
	s.mu.Unlock()
	if fatal != nil {
		return fatal
	}
	if err := storeErrors(tx.touched); err != nil {
		return fmt.Errorf("stage %s: %w", s.cfg.Name, err)
	}
	if s.isBroken() {
		// The new session restores every task from its changelog.
		return nil
	}
	// Tasks may keep state outside their stores' pending layers (windows mutate in
	// place): rebuild every touched task from its changelog, the committed truth.
	for id := range tx.touched {
		if err := s.rebuildTask(ctx, id); err != nil {
			if s.startFailed(err) {
				s.log.Warn("task rebuild failed; the Kafka session is replaced to try again", "topic", id.Topic, "partition", id.Partition, "err", err)
				return nil
			}
			return err
		}
	}
	t := time.NewTimer(s.cfg.RetryBackoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return nil
}

// noWait is the nil context that makes PollRecords return only what is buffered.
var noWait context.Context

// pollMore polls the records a transaction begun at realStart takes next: what is
// buffered, or under a CommitInterval what arrives within CommitLinger while the
// interval lasts. None means the transaction ends.
func (s *Stage) pollMore(ctx context.Context, realStart time.Time, max int) kgo.Fetches {
	if s.cfg.CommitInterval <= 0 {
		return s.sess.PollRecords(noWait, max)
	}
	left := s.cfg.CommitInterval - time.Since(realStart)
	if left <= 0 {
		return s.sess.PollRecords(noWait, max)
	}
	wctx, cancel := context.WithTimeout(ctx, min(left, s.cfg.CommitLinger))
	defer cancel()
	return s.sess.PollRecords(wctx, max)
}

// handle runs every record of fs through its task.
func (s *Stage) handle(ctx context.Context, fs kgo.Fetches, touched map[TaskID]Task, emit func(*kgo.Record)) error {
	var handleErr error
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if handleErr != nil || len(p.Records) == 0 {
			return
		}
		id := TaskID{p.Topic, p.Partition}
		t, err := s.task(id)
		if err != nil {
			handleErr = err
			return
		}
		if s.isHeld(id) {
			// Records polled after a held one: not handled now, not committed.
			return
		}
		touched[id] = t
		for i, rec := range p.Records {
			err := t.Handle(ctx, rec, emit)
			if err == nil {
				continue
			}
			if w, ok := dlq.AsWait(err); ok && ctx.Err() == nil {
				s.hold(id, rec, w)
				s.cfg.Metrics.in(s.cfg.Name, p.Topic, i)
				return
			}
			handleErr = fmt.Errorf("%s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
			return
		}
		if pt, ok := t.(ProgressTracker); ok {
			last := p.Records[len(p.Records)-1].Offset
			pt.Progress(p.HighWatermark - (last + 1))
		}
		s.cfg.Metrics.in(s.cfg.Name, p.Topic, len(p.Records))
	})
	return handleErr
}

// tick gives every task that implements Ticker the clock; a task that emits joins the
// transaction.
func (s *Stage) tick(ctx context.Context, touched map[TaskID]Task, emit func(*kgo.Record)) error {
	s.mu.Lock()
	tasks := make(map[TaskID]Task, len(s.tasks))
	for id, t := range s.tasks {
		tasks[id] = t
	}
	s.mu.Unlock()
	now := s.cfg.Now()
	for id, t := range tasks {
		tk, ok := t.(Ticker)
		if !ok {
			continue
		}
		emitted := false
		err := tk.Tick(ctx, now, func(r *kgo.Record) { emitted = true; emit(r) })
		if err != nil {
			return fmt.Errorf("tick %s/%d: %w", id.Topic, id.Partition, err)
		}
		if emitted || t.Stores() != nil {
			touched[id] = t
		}
	}
	return nil
}
