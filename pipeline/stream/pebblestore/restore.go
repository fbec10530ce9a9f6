package pebblestore

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/sluicehq/sluice/pipeline/stream"
)

// restoreBatch is how many restored changelog records a Backend buffers before writing
// them to Pebble.
const restoreBatch = 1 << 16

// Restore buffers one changelog record; buffered records reach Pebble before any read,
// every restoreBatch records, and with the next Apply (without moving the checkpoint
// until that Apply names one).
func (b *Backend[V]) Restore(k string, v V, raw []byte) error {
	if err := b.usable(); err != nil {
		return err
	}
	if !b.bulk && len(b.restore) == 0 && b.n == 0 {
		b.bulk = true // nothing to read back: a full restore
	}
	b.restore[k] = stream.Write[V]{V: v, Deleted: raw == nil}
	if len(b.restore) >= restoreBatch {
		return b.flushBuffered()
	}
	return nil
}

// flushRestore writes the buffered restore records and, after a bulk restore, rebuilds
// the key count and the expiry index: every other operation sees a complete store.
func (b *Backend[V]) flushRestore() error {
	if err := b.flushBuffered(); err != nil {
		return err
	}
	if b.bulk {
		return b.finishBulk()
	}
	return nil
}

// flushBuffered writes the buffered restore records in one batch.
func (b *Backend[V]) flushBuffered() error {
	if err := b.usable(); err != nil {
		return err
	}
	if len(b.restore) == 0 {
		return nil
	}
	batch := b.db.NewBatch()
	for k, x := range b.restore {
		if b.bulk {
			// Last write wins, as in the changelog; the count and index come after.
			dk := b.dataKey(k)
			if x.Deleted {
				_ = batch.Delete(dk, nil)
				continue
			}
			b.vbuf = b.codec.Encode(b.vbuf[:0], x.V)
			_ = batch.Set(dk, b.vbuf, nil)
			continue
		}
		if err := b.write(batch, k, x); err != nil {
			_ = batch.Close()
			return b.fail(err)
		}
	}
	clear(b.restore)
	if b.bulk {
		// The meta record keeps no checkpoint until finishBulk: a crash before it leaves
		// a store that restores fully again (restoreFrom wipes it first).
		b.dropIter()
		if err := batch.Commit(pebble.NoSync); err != nil {
			_ = batch.Close()
			return b.fail(fmt.Errorf("restore: %w", err))
		}
		b.balanceCache()
		return batch.Close()
	}
	return b.commit(batch, b.checkpoint)
}

// finishBulk counts the keys a bulk restore wrote and builds their expiry index, in
// batches of restoreBatch entries.
func (b *Backend[V]) finishBulk() error {
	b.bulk = false
	b.n, b.floor = 0, nil
	clear(b.counts)
	clear(b.dirty)
	batch := b.db.NewBatch()
	_ = batch.DeleteRange([]byte{'c'}, []byte{'d'}, nil)
	_ = batch.DeleteRange([]byte{'x'}, []byte{'y'}, nil)
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'d'}, UpperBound: []byte{'e'}})
	if err != nil {
		_ = batch.Close()
		return b.fail(err)
	}
	pending := 0
	for ok := it.First(); ok; ok = it.Next() {
		b.n++
		if b.exp == nil {
			continue
		}
		v, err := b.codec.Decode(it.Value())
		if err != nil {
			_ = it.Close()
			_ = batch.Close()
			return b.fail(fmt.Errorf("decode %q: %w", it.Key()[1:], err))
		}
		e := b.exp(v)
		_ = batch.Set(indexKey(e, string(it.Key()[1:])), nil, nil)
		b.count(e, 1)
		if pending++; pending == restoreBatch {
			b.dropIter()
			if err := batch.Commit(pebble.NoSync); err != nil {
				_ = it.Close()
				_ = batch.Close()
				return b.fail(err)
			}
			_ = batch.Close()
			batch, pending = b.db.NewBatch(), 0
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		_ = batch.Close()
		return b.fail(err)
	}
	return b.commit(batch, b.checkpoint)
}
