package stream

import "time"

// DefaultExpiryLimit is the most tombstones a Dedup writes per transaction, and the most
// windows an Aggregator closes per transaction (each a tombstone and, emitting final
// results, a result).
const DefaultExpiryLimit = 10000

// expiryChunk is the most expired ids one Seen or Add call deletes, so no call holds a
// record up for long; the per-transaction limit bounds the changelog.
const expiryChunk = 256

// expiryBuckets is how many expiry buckets a horizon spans: ids expire a bucket at a time
// (at most horizon/expiryBuckets after their expiry; answers are exact before that).
const expiryBuckets = 64

// Dedup remembers event ids for a horizon of event time, per task. Time is the task's
// watermark: the largest event time it has seen. That makes expiry a function of the
// input alone, so a replay after a crash drops exactly the same duplicates.
//
// Expired ids are deleted incrementally: the store keeps its ids in an index ordered by
// expiry, and each transaction deletes at most ExpiryLimit of those past the watermark
// (expiryChunk per call), the rest in the next ones. An id past its expiry but not
// deleted yet is treated as absent, so answers never depend on how far deletion got.
type Dedup struct {
	store     *Store[int64] // event id -> expiry (unix millis of event time)
	horizon   int64
	watermark int64

	limit     int    // tombstones per transaction
	txn       uint64 // store.Txn() the count below belongs to
	txnDone   int    // tombstones written in that transaction
	nextScan  int64  // no due bucket before the watermark reaches it
	largest   int    // most tombstones one transaction carried
	scanWidth int64
}

// NewDedup returns a Dedup over store, remembering ids for horizon. It indexes store by
// expiry (call it on a new store).
func NewDedup(store *Store[int64], horizon time.Duration) *Dedup {
	h := horizon.Milliseconds()
	w := max(h/expiryBuckets, 1)
	store.IndexExpiry(func(exp int64) int64 { return exp }, w)
	return &Dedup{store: store, horizon: h, limit: DefaultExpiryLimit, scanWidth: w}
}

// ExpiryLimit sets the most tombstones one transaction carries (default
// DefaultExpiryLimit, at least 1) and returns d.
func (d *Dedup) ExpiryLimit(n int) *Dedup {
	d.limit = max(n, 1)
	return d
}

// Store returns the backing store (its changes go to the changelog).
func (d *Dedup) Store() *Store[int64] { return d.store }

// Watermark is the largest event time seen (unix millis).
func (d *Dedup) Watermark() int64 { return d.watermark }

// ExpiryBacklog is the number of ids past their expiry bucket whose tombstones are not
// committed yet.
func (d *Dedup) ExpiryBacklog() int { return d.store.ExpiryBacklog(d.watermark) }

// LargestExpiryBatch is the most tombstones one transaction has carried.
func (d *Dedup) LargestExpiryBatch() int { return d.largest }

// Seen reports whether id was already seen within the horizon, and remembers it with event
// time t (unix millis).
func (d *Dedup) Seen(id string, t int64) bool {
	d.advance(t)
	exp := t + d.horizon
	if old, ok := d.store.Get(id); ok && old >= d.watermark {
		if exp > old {
			d.store.Put(id, exp)
		}
		return true
	}
	d.store.Put(id, exp)
	return false
}

// Contains reports what Seen(id, t) would, without remembering anything: a handler
// checks it before work that may fail and calls Seen once the event is done.
func (d *Dedup) Contains(id string, t int64) bool {
	wm := max(d.watermark, t)
	old, ok := d.store.Get(id)
	return ok && old >= wm
}

// Add remembers id with event time t (unix millis) right after Contains(id, t) reported
// it absent: what Seen would do then, without looking id up a second time.
func (d *Dedup) Add(id string, t int64) {
	d.advance(t)
	d.store.Put(id, t+d.horizon)
}

// advance moves the watermark to t and, when ids are due, deletes a bounded number.
func (d *Dedup) advance(t int64) {
	if t > d.watermark {
		d.watermark = t
	}
	if d.watermark >= d.nextScan {
		d.Expire()
	}
}

// Expire deletes up to expiryChunk ids past their expiry, within the transaction's
// limit, and returns how many it deleted. Seen and Add call it; a task may also call it
// in a transaction with no records.
func (d *Dedup) Expire() int {
	if g := d.store.Txn(); g != d.txn {
		d.txn, d.txnDone = g, 0
	}
	budget := min(d.limit-d.txnDone, expiryChunk)
	if budget <= 0 {
		return 0
	}
	n, stopped := 0, false
	d.store.ScanExpired(d.watermark, func(k string) bool {
		d.store.Delete(k) // its expiry bucket ended before wm
		n++
		if n == budget {
			stopped = true
			return false
		}
		return true
	})
	d.txnDone += n
	d.largest = max(d.largest, d.txnDone)
	if !stopped {
		// Every due bucket is done: the next one falls due when the watermark passes
		// the end of the bucket it is in now.
		d.nextScan = (bucketOf(d.watermark, d.scanWidth) + 1) * d.scanWidth
	}
	return n
}
