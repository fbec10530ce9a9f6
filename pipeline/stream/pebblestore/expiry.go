package pebblestore

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// IndexExpiry keeps the expiry index in buckets of width. The index on disk is kept
// across restarts; when it was built with another width (or none), it is rebuilt from
// the data once (a full scan).
func (b *Backend[V]) IndexExpiry(exp func(V) int64, width int64) error {
	if err := b.flushRestore(); err != nil {
		return err
	}
	b.exp = exp
	if width == b.width && b.n > 0 {
		return b.loadCounts()
	}
	b.width = width
	return b.rebuildIndex()
}

func (b *Backend[V]) loadCounts() error {
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'c'}, UpperBound: []byte{'d'}})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		c, n := binary.Uvarint(it.Value())
		if n <= 0 || len(it.Key()) != 9 {
			_ = it.Close()
			return b.fail(errors.New("corrupt expiry index count"))
		}
		b.counts[unordered(it.Key()[1:])] = int64(c)
	}
	return errors.Join(it.Error(), it.Close())
}

func (b *Backend[V]) rebuildIndex() error {
	b.floor = nil
	clear(b.counts)
	clear(b.dirty)
	batch := b.db.NewBatch()
	_ = batch.DeleteRange([]byte{'c'}, []byte{'d'}, nil)
	_ = batch.DeleteRange([]byte{'x'}, []byte{'y'}, nil)
	if err := b.Range(func(k string, v V) bool {
		e := b.exp(v)
		_ = batch.Set(indexKey(e, k), nil, nil)
		b.count(e, 1)
		return true
	}); err != nil {
		_ = batch.Close()
		return b.fail(err)
	}
	return b.commit(batch, b.checkpoint)
}

// ResetScan starts ScanExpired from the first index entry again.
func (b *Backend[V]) ResetScan() {
	b.cursor, b.scanLow = nil, nil
	clear(b.offered)
}

// ScanExpired offers the keys of the index entries in buckets that end at or before
// before, in expiry order, resuming after the last one offered since ResetScan.
func (b *Backend[V]) ScanExpired(before int64, fn func(k string) bool) error {
	if b.exp == nil {
		return nil
	}
	if err := b.flushRestore(); err != nil {
		return err
	}
	fromFloor := b.cursor == nil
	lower := []byte{'x'}
	if b.cursor != nil {
		lower = append([]byte(nil), b.cursor...) // the iterator keeps its bounds
	} else if b.floor != nil {
		lower = b.floor
	}
	upper := ordered([]byte{'x'}, bucketOf(before, b.width)*b.width)
	if bytes.Compare(lower, upper) >= 0 {
		return nil
	}
	if b.scanLow == nil {
		b.scanLow = append([]byte(nil), lower...)
	}
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	ok := it.First()
	if fromFloor {
		// Nothing live below the first entry found (or below upper, if none).
		if ok {
			b.floor = append([]byte(nil), it.Key()...)
		} else if it.Error() == nil {
			b.floor = upper
		}
	}
	for ; ok; ok = it.Next() {
		key := it.Key()
		b.cursor = append(append(b.cursor[:0], key...), 0) // the next key after this one
		k := string(key[9:])
		b.offered[k] = unordered(key[1:9])
		if !fn(k) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// ExpiryBacklog is the number of index entries in buckets that end at or before before.
func (b *Backend[V]) ExpiryBacklog(before int64) int {
	if b.exp == nil {
		return 0
	}
	last := bucketOf(before, b.width)
	n := int64(0)
	for bucket, c := range b.counts {
		if bucket < last {
			n += c
		}
	}
	return int(n)
}
