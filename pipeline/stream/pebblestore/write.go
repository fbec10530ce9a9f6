package pebblestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/sluicehq/sluice/pipeline/stream"
)

func (b *Backend[V]) dataKey(k string) []byte {
	b.kbuf = append(append(b.kbuf[:0], 'd'), k...)
	return b.kbuf
}

// ordered maps an int64 to 8 bytes that sort like it.
func ordered(dst []byte, x int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(x)^(1<<63))
}

func unordered(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

func indexKey(exp int64, k string) []byte {
	return append(ordered(append(make([]byte, 0, 9+len(k)), 'x'), exp), k...)
}

func countKey(bucket int64) []byte { return ordered([]byte{'c'}, bucket) }

// Get returns the committed value of k.
func (b *Backend[V]) Get(k string) (V, bool, error) {
	var zero V
	if err := b.flushRestore(); err != nil {
		return zero, false, err
	}
	v, ok, err := b.lookup(b.dataKey(k))
	if err != nil {
		return zero, false, fmt.Errorf("state %s: get: %w", b.dir, err)
	}
	if !ok {
		return zero, false, nil
	}
	x, err := b.codec.Decode(v)
	if err != nil {
		return zero, false, fmt.Errorf("state %s: decode %q: %w", b.dir, k, err)
	}
	return x, true, nil
}

// Len is the number of committed keys.
func (b *Backend[V]) Len() int {
	_ = b.flushRestore() // an error is kept (broken) for the next call that returns one
	return int(b.n)
}

// Range calls fn for every committed key, in key order.
func (b *Backend[V]) Range(fn func(k string, v V) bool) error {
	if err := b.flushRestore(); err != nil {
		return err
	}
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'d'}, UpperBound: []byte{'e'}})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := b.codec.Decode(it.Value())
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("state %s: decode %q: %w", b.dir, it.Key()[1:], err)
		}
		if !fn(string(it.Key()[1:]), v) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// Apply writes w, with checkpoint unless it is stream.NoCheckpoint, in one batch.
func (b *Backend[V]) Apply(w map[string]stream.Write[V], checkpoint int64) error {
	if err := b.flushRestore(); err != nil {
		return err
	}
	batch := b.db.NewBatch()
	if len(b.offered) > 0 && b.scanLow != nil {
		// Later entries of a batch win over its earlier range deletion: write sets the
		// entries of offered keys that stay (renewed, or kept at their expiry) again.
		_ = batch.DeleteRange(b.scanLow, b.cursor, nil)
		b.ranged = true
		defer func() { b.ranged = false }()
		// Nothing is live below the span now but what this batch sets (setIndex lowers
		// the floor to those): the next scan starts past the deleted entries.
		b.floor = append([]byte(nil), b.cursor...)
		for k, e := range b.offered {
			if _, ok := w[k]; !ok {
				b.setIndex(batch, indexKey(e, k)) // offered, not written: it stays
			}
		}
	}
	for k, x := range w {
		if err := b.write(batch, k, x); err != nil {
			_ = batch.Close()
			return b.fail(err)
		}
	}
	cp := b.checkpoint
	if checkpoint != stream.NoCheckpoint {
		cp = checkpoint
	}
	return b.commit(batch, cp)
}

// fail marks the backend broken: a batch was half prepared in memory (counts).
func (b *Backend[V]) fail(err error) error {
	err = fmt.Errorf("state %s: %w", b.dir, err)
	if b.broken == nil {
		b.broken = err
	}
	return err
}

// commit adds the dirty index counts and the checkpoint record to batch and commits it.
func (b *Backend[V]) commit(batch *pebble.Batch, checkpoint int64) error {
	for bucket := range b.dirty {
		if c := b.counts[bucket]; c > 0 {
			_ = batch.Set(countKey(bucket), binary.AppendUvarint(nil, uint64(c)), nil)
		} else {
			delete(b.counts, bucket)
			_ = batch.Delete(countKey(bucket), nil)
		}
	}
	clear(b.dirty)
	m := meta{checkpoint: checkpoint, hasCheckpoint: checkpoint != stream.NoCheckpoint, n: b.n}
	if b.exp != nil {
		m.width = b.width
	}
	_ = batch.Set(metaKey, m.encode(), nil)
	at := b.checkpointAt
	if checkpoint != stream.NoCheckpoint {
		// The state is complete up to checkpoint now: only this task writes its
		// changelog partition, so nothing but aborted records lies before it.
		at = b.clock().UnixMilli()
		_ = batch.Set(timeKey, binary.BigEndian.AppendUint64(nil, uint64(at)), nil)
	}
	b.dropIter()
	if err := batch.Commit(pebble.NoSync); err != nil {
		_ = batch.Close()
		return b.fail(fmt.Errorf("commit: %w", err))
	}
	b.checkpoint, b.checkpointAt = checkpoint, at
	b.balanceCache()
	return batch.Close()
}

// balanceCache keeps this store's memtables out of the block cache's size. Pebble
// charges every memtable it allocates (up to MemTableSize each: the active one, those
// waiting for a flush, one kept for reuse) to Options.Cache, shrinking the room for
// blocks by as much. With a process's tasks sharing one cache, a few busy stores'
// memtables took all of it: every lookup read its bloom filter block from the file again
// (measured: 10% of the CPU at 100,000 events/s, docs/BENCHMARKS.md). So each store
// gives back what its memtables hold, by a negative reservation of the same size
// (rounded down to MiB), updated after each commit: the block cache keeps its configured
// size and the memtables come on top of it, as docs/ARCHITECTURE.md says.
func (b *Backend[V]) balanceCache() {
	held := b.MemtableBytes() &^ (1<<20 - 1)
	if held == b.creditBytes {
		return
	}
	b.releaseCredit()
	if held > 0 {
		b.credit, b.creditBytes = b.cache.Reserve(-int(held)), held
	}
}

// releaseCredit takes back the cache credit of balanceCache.
func (b *Backend[V]) releaseCredit() {
	if b.credit != nil {
		b.credit()
	}
	b.credit, b.creditBytes = nil, 0
}

// write adds one write to batch, keeping the key count and the expiry index right.
func (b *Backend[V]) write(batch *pebble.Batch, k string, w stream.Write[V]) error {
	if err := b.usable(); err != nil {
		return err
	}
	dk := b.dataKey(k)
	oldExp, had := b.offered[k]
	// inRange: k's index entry lies in the span this batch range-deleted.
	inRange := had && b.ranged
	if !had && !w.Absent {
		var err error
		if had, oldExp, err = b.read(dk, k); err != nil {
			return err
		}
	}
	if w.Deleted {
		if !had {
			return nil
		}
		_ = batch.Delete(dk, nil)
		b.n--
		if b.exp != nil {
			if !inRange {
				_ = batch.Delete(indexKey(oldExp, k), nil)
			}
			b.count(oldExp, -1)
		}
		return nil
	}
	b.vbuf = b.codec.Encode(b.vbuf[:0], w.V)
	_ = batch.Set(dk, b.vbuf, nil)
	if !had {
		b.n++
	}
	if b.exp == nil {
		return nil
	}
	e := b.exp(w.V)
	if had {
		if e == oldExp {
			if inRange {
				b.setIndex(batch, indexKey(e, k)) // the range deletion took it
			}
			return nil
		}
		if !inRange {
			_ = batch.Delete(indexKey(oldExp, k), nil)
		}
		b.count(oldExp, -1)
	}
	b.setIndex(batch, indexKey(e, k))
	b.count(e, 1)
	return nil
}

// setIndex adds index entry ik to batch, keeping the floor at or below it.
func (b *Backend[V]) setIndex(batch *pebble.Batch, ik []byte) {
	_ = batch.Set(ik, nil, nil)
	if b.floor != nil && bytes.Compare(ik, b.floor) < 0 {
		b.floor = ik
	}
}

// lookup returns the committed value of data key dk, valid until the next lookup or
// batch.
func (b *Backend[V]) lookup(dk []byte) ([]byte, bool, error) {
	if b.it == nil {
		it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'d'}, UpperBound: []byte{'e'}})
		if err != nil {
			return nil, false, err
		}
		b.it = it
	}
	// The default comparer's prefix is the whole key: the seek consults the bloom
	// filters, and finds dk or nothing.
	if !b.it.SeekPrefixGE(dk) {
		return nil, false, b.it.Error()
	}
	if !bytes.Equal(b.it.Key(), dk) {
		return nil, false, nil
	}
	v, err := b.it.ValueAndErr()
	return v, err == nil, err
}

// dropIter closes the read iterator: a batch is about to commit, and the iterator would
// not see it.
func (b *Backend[V]) dropIter() {
	if b.it != nil {
		_ = b.it.Close()
		b.it = nil
	}
}

// read reports whether data key dk (of k) exists and, with an expiry index, its expiry.
func (b *Backend[V]) read(dk []byte, k string) (had bool, exp int64, err error) {
	old, ok, err := b.lookup(dk)
	if err != nil {
		return false, 0, fmt.Errorf("get %q: %w", k, err)
	}
	if !ok {
		return false, 0, nil
	}
	if b.exp == nil {
		return true, 0, nil
	}
	v, err := b.codec.Decode(old)
	if err != nil {
		return false, 0, fmt.Errorf("decode %q: %w", k, err)
	}
	return true, b.exp(v), nil
}

func (b *Backend[V]) count(exp, d int64) {
	bucket := bucketOf(exp, b.width)
	b.counts[bucket] += d
	b.dirty[bucket] = true
}

// bucketOf is the bucket number of expiry e (floor division, as in package stream).
func bucketOf(e, width int64) int64 {
	q := e / width
	if e%width != 0 && e < 0 {
		q--
	}
	return q
}
