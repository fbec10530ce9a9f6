package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// commitLoop runs the transactions of client i until the producer is closed.
func (p *TxnProducer) commitLoop(i int, cl *kgo.Client) {
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	// Fence a crashed predecessor with this transactional id now: its open transaction
	// holds back read_committed readers of the partitions it wrote until then.
	ctx, cancel := context.WithTimeout(context.Background(), p.o.TxnTimeout)
	_, _, _ = cl.ProducerID(ctx)
	cancel()
	for {
		calls := p.take()
		if calls == nil {
			return
		}
		if calls = p.dropLate(calls); len(calls) == 0 {
			continue
		}
		// A client whose producer id failed for good cannot begin: replace it once.
		err := cl.BeginTransaction()
		if err != nil {
			if cl = p.replace(i, cl); cl != nil {
				err = cl.BeginTransaction()
			}
		}
		healthy := false
		if err != nil {
			e := fmt.Errorf("%w: begin: %v", ErrAborted, err)
			if Permanent(err) { // e.g. TRANSACTIONAL_ID_AUTHORIZATION_FAILED: retries cannot help
				e = fmt.Errorf("kafka transaction: %w", err)
			}
			for _, c := range calls {
				c.done <- e
			}
		} else {
			healthy = p.transact(cl, calls)
		}
		p.mu.Lock()
		for _, c := range calls {
			p.release(c)
		}
		p.mu.Unlock()
		if !healthy && cl != nil {
			cl = p.replace(i, cl)
		}
		if cl == nil {
			return
		}
	}
}

// minTxnTime is the least time a call must have left to join a transaction: a call
// about to reach its deadline would cut the transaction short for every other call in it.
const minTxnTime = 50 * time.Millisecond

// dropLate answers the calls with less than minTxnTime left (ErrAborted, nothing was
// written) and returns the others.
func (p *TxnProducer) dropLate(calls []*txnCall) []*txnCall {
	cut := time.Now().Add(minTxnTime)
	kept := calls[:0]
	var late []*txnCall
	for _, c := range calls {
		if c.deadline.Before(cut) {
			late = append(late, c)
			continue
		}
		kept = append(kept, c)
	}
	if len(late) > 0 {
		p.mu.Lock()
		for _, c := range late {
			p.release(c)
		}
		p.mu.Unlock()
		for _, c := range late {
			c.done <- fmt.Errorf("%w: less than %s left before the deadline to begin", ErrAborted, minTxnTime)
		}
	}
	return kept
}

// replace closes client i and returns a new one (nil if that failed, which only
// invalid options do, and they did not at start). The new client's InitProducerID
// bumps the epoch: that fences the old client and aborts whatever it left open.
func (p *TxnProducer) replace(i int, old *kgo.Client) *kgo.Client {
	old.Close()
	cl, err := p.newClient(i)
	if err != nil {
		p.warn("kafka txn producer: replace client", "client", i, "err", err)
		return nil
	}
	return cl
}

// transact runs one begun transaction of calls and answers each. It returns false if the
// client must be replaced.
func (p *TxnProducer) transact(cl *kgo.Client, calls []*txnCall) (healthy bool) {
	deadline := calls[0].deadline
	for _, c := range calls[1:] {
		if c.deadline.Before(deadline) {
			deadline = c.deadline
		}
	}
	answer := func(err error) {
		for _, c := range calls {
			e := err
			if ce := c.failed(); ce != nil && err != nil && Permanent(ce) {
				e = fmt.Errorf("kafka produce: %w", ce) // the call's own record was refused for good
			}
			c.done <- e
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range calls {
		promise := func(_ *kgo.Record, err error) {
			if err != nil {
				c.fail(err)
			}
			wg.Done()
		}
		for _, r := range c.recs {
			wg.Add(1)
			cl.TryProduce(ctx, r, promise)
		}
	}
	ferr := cl.Flush(ctx)
	if ferr == nil {
		wg.Wait() // Flush returns once nothing is buffered; the promises ran by then
	}
	var cause error
	for _, c := range calls {
		if err := c.failed(); err != nil {
			cause = err
			break
		}
	}
	if cause == nil && ferr != nil {
		cause = ferr
	}
	if cause != nil {
		// The commit is never sent, so nothing of this transaction can become
		// visible: answer at once, then clean up.
		answer(fmt.Errorf("%w: %v", ErrAborted, cause))
		return p.abort(cl, &wg)
	}

	cctx, ccancel := context.WithDeadline(context.Background(), deadline.Add(p.o.CommitGrace))
	defer ccancel()
	err := cl.EndTransaction(cctx, kgo.TryCommit)
	if err == nil {
		answer(nil)
		return true
	}
	if refused(err) {
		// The producer id failed for good; a new client fences what is left.
		answer(fmt.Errorf("%w: commit refused: %v", ErrAborted, err))
		return false
	} else {
		answer(fmt.Errorf("%w: %v", ErrOutcomeUnknown, err))
	}
	return p.abort(cl, &wg)
}

// abort ends the client's open transaction with an abort; false if that failed (the
// client must be replaced).
func (p *TxnProducer) abort(cl *kgo.Client, wg *sync.WaitGroup) bool {
	ctx, cancel := context.WithTimeout(context.Background(), p.o.TxnTimeout)
	defer cancel()
	err := cl.AbortBufferedRecords(ctx)
	if err == nil {
		wg.Wait() // every promise has run: no record of this transaction is left
		err = cl.EndTransaction(ctx, kgo.TryAbort)
	}
	return err == nil
}

// Permanent reports whether err is a Kafka error that retrying the same records cannot
// fix: a non-retriable broker error about the records or the topic (MESSAGE_TOO_LARGE,
// INVALID_RECORD, TOPIC_AUTHORIZATION_FAILED, ...). The producer-state errors of
// transactions (fenced, invalid epoch, abortable) are not: a new transaction heals them.
func Permanent(err error) bool {
	var ke *kerr.Error
	if !errors.As(err, &ke) || ke.Retriable {
		return false
	}
	switch ke.Code {
	case kerr.UnknownServerError.Code, kerr.OperationNotAttempted.Code,
		kerr.InvalidProducerEpoch.Code, kerr.ProducerFenced.Code, kerr.InvalidTxnState.Code,
		kerr.TransactionAbortable.Code, kerr.InvalidProducerIDMapping.Code, kerr.UnknownProducerID.Code,
		kerr.OutOfOrderSequenceNumber.Code, kerr.DuplicateSequenceNumber.Code,
		kerr.TransactionCoordinatorFenced.Code, kerr.ConcurrentTransactions.Code:
		return false
	}
	return true
}

// refused reports whether a failed commit is known not to have committed: the broker
// answered with a definite error (fenced, invalid state, abortable), or the client
// did not send it.
func refused(err error) bool {
	if errors.Is(err, kerr.OperationNotAttempted) {
		return true
	}
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable && ke.Code != kerr.UnknownServerError.Code
}
