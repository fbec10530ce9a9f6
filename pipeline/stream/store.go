// Package stream is the stream engine: state stores, watermarks, windows and measures.
// It is pure Go: no Kafka client, no HTTP. The process package binds it to Kafka
// transactions.
package stream

import (
	"errors"
	"sort"
	"time"
)

// Codec turns a store value into changelog bytes and back.
type Codec[V any] interface {
	Encode(dst []byte, v V) []byte
	Decode(b []byte) (V, error)
}

// Store is a task's key-value state with transactional semantics: writes go to a pending
// layer that reads see at once; Commit makes them permanent after the transaction that
// carried their changelog records committed, Abort drops them when it aborted. Every
// pending write becomes one changelog record (a delete becomes a tombstone).
//
// The committed layer is a Backend: in memory (NewStore) or on disk (NewStoreOn with,
// for example, the pebblestore package). Nothing but Len's cost and Checkpoint tells
// them apart.
//
// A Store is owned by one task and is not safe for concurrent use.
type Store[V any] struct {
	name    string
	codec   Codec[V]
	pending map[string]Write[V]
	// absent are the keys a Get of this transaction found missing from the committed
	// layer (not in memory): their writes tell the backend so, sparing it a read.
	absent map[string]struct{}
	b      Backend[V]
	mem    *memory[V] // b, when it is the memory backend: a direct call on the hot path
	gen    uint64     // Commit and Abort calls
	err    error      // first backend error
}

// Write is one pending write: a value, or a delete.
type Write[V any] struct {
	V       V
	Deleted bool
	// Absent says the committed layer had no value for the key when this transaction
	// read it (a backend may skip reading it again).
	Absent bool
}

// NoCheckpoint is the checkpoint Commit passes to Backend.Apply: none.
const NoCheckpoint int64 = -1

// Backend is the committed layer of a Store. The Store keeps the pending layer; a
// Backend sees only committed writes (Apply) and changelog records (Restore).
type Backend[V any] interface {
	// Get returns the committed value of k.
	Get(k string) (V, bool, error)
	// Len is the number of committed keys.
	Len() int
	// Range calls fn for every committed key, in no particular order, until fn returns
	// false. fn does not write to the backend (the Store's writes go to its pending layer).
	Range(fn func(k string, v V) bool) error
	// Apply makes w permanent in one atomic step, together with checkpoint (the changelog
	// end offset the writes reach) unless checkpoint is NoCheckpoint. Apply does not keep w.
	Apply(w map[string]Write[V], checkpoint int64) error
	// Restore applies one changelog record: v decoded from raw, or a delete when raw is nil.
	Restore(k string, v V, raw []byte) error
	// Checkpoint is the offset of the last Apply that carried one, kept across restarts by
	// a durable backend; ok is false when there is none (always, in memory).
	Checkpoint() (offset int64, ok bool)
	// Wipe deletes every key, index entry and the checkpoint.
	Wipe() error
	// IndexExpiry makes the backend keep an index of its keys ordered by exp(value),
	// in buckets of width (same unit as exp). Call it before the first write.
	IndexExpiry(exp func(V) int64, width int64) error
	// ScanExpired calls fn, in expiry order, for committed keys whose expiry bucket ends at
	// or before before (so every such key expires before it), until fn returns false.
	// Keys already offered since the last ResetScan are not offered again.
	ScanExpired(before int64, fn func(k string) bool) error
	// ResetScan starts ScanExpired from the first bucket again (a new transaction). The
	// Store calls it after Apply, and on Abort.
	ResetScan()
	// ExpiryBacklog is the number of index entries ScanExpired(before) would offer,
	// including those already offered since ResetScan.
	ExpiryBacklog(before int64) int
	// Close releases the backend's resources; the Store is unusable afterwards.
	Close() error
}

// PackedKey is a key packed into 16 bytes by a KeyPacker.
type PackedKey [16]byte

// KeyPacker packs keys of one fixed shape into 16 bytes. Unpack(Pack(k)) must be k for
// every k that Pack accepts; Pack refuses every other key (those stay strings).
type KeyPacker interface {
	Pack(k string) (PackedKey, bool)
	Unpack(p PackedKey) string
}

// NewStore returns an empty store kept in memory.
func NewStore[V any](name string, c Codec[V]) *Store[V] {
	m := newMemory[V]()
	s := NewStoreOn[V](name, c, m)
	s.mem = m
	return s
}

// NewStoreOn returns a store whose committed layer is b.
func NewStoreOn[V any](name string, c Codec[V], b Backend[V]) *Store[V] {
	return &Store[V]{
		name:    name,
		codec:   c,
		pending: make(map[string]Write[V]),
		absent:  make(map[string]struct{}),
		b:       b,
	}
}

// PackKeys makes the store keep the committed keys p packs as PackedKeys (dedup: event
// ids that are ULIDs), where the backend can use it (memory: fixed-size keys without
// pointers, which the garbage collector does not scan). Call it on a new, empty store;
// it returns s.
func (s *Store[V]) PackKeys(p KeyPacker) *Store[V] {
	if pk, ok := s.b.(interface{ PackKeys(KeyPacker) }); ok {
		pk.PackKeys(p)
	}
	return s
}

// IndexExpiry makes the backend keep the store's keys ordered by exp(value), in buckets
// of width, for ScanExpired and ExpiryBacklog. Call it on a new store; it returns s.
// An error (a durable backend rebuilding its index) is kept for Err.
func (s *Store[V]) IndexExpiry(exp func(V) int64, width int64) *Store[V] {
	s.fail(s.b.IndexExpiry(exp, max(width, 1)))
	return s
}

// Name is the store's name (part of its changelog topic).
func (s *Store[V]) Name() string { return s.name }

// Backend is the store's committed layer.
func (s *Store[V]) Backend() Backend[V] { return s.b }

// Err is the first error of the backend (a disk read or write), nil in memory. After
// one, reads may have missed committed keys: the caller must not commit the transaction.
func (s *Store[V]) Err() error { return s.err }

func (s *Store[V]) fail(err error) {
	if err != nil && s.err == nil {
		s.err = err
	}
}

// Get returns the value of k, pending writes included.
func (s *Store[V]) Get(k string) (V, bool) {
	if w, ok := s.pending[k]; ok {
		var zero V
		if w.Deleted {
			return zero, false
		}
		return w.V, true
	}
	if s.mem != nil {
		return s.mem.get(k)
	}
	v, ok, err := s.b.Get(k)
	s.fail(err)
	if !ok && err == nil {
		s.absent[k] = struct{}{}
	}
	return v, ok
}

// Put sets k to v.
func (s *Store[V]) Put(k string, v V) {
	_, a := s.absent[k]
	s.pending[k] = Write[V]{V: v, Absent: a}
}

// Delete removes k.
func (s *Store[V]) Delete(k string) {
	var zero V
	_, a := s.absent[k]
	s.pending[k] = Write[V]{V: zero, Deleted: true, Absent: a}
}

// Range calls fn for every live key, pending writes included, in no particular order,
// until fn returns false. fn may Put or Delete the key it was given.
func (s *Store[V]) Range(fn func(k string, v V) bool) {
	for k, w := range s.pending {
		if w.Deleted {
			continue
		}
		if !fn(k, w.V) {
			return
		}
	}
	s.fail(s.b.Range(func(k string, v V) bool {
		if _, ok := s.pending[k]; ok {
			return true
		}
		return fn(k, v)
	}))
}

// Len is the number of committed keys (the restored and committed state size).
func (s *Store[V]) Len() int { return s.b.Len() }

// Dirty reports whether the store has pending writes.
func (s *Store[V]) Dirty() bool { return len(s.pending) > 0 }

// Txn counts the transactions the store has seen end (Commit, CommitAt and Abort calls):
// a caller bounding its work per transaction resets its count when Txn changes.
func (s *Store[V]) Txn() uint64 { return s.gen }

// Changes calls fn for every pending write in key order (deterministic changelogs), with
// the encoded value, or nil for a delete (a tombstone).
func (s *Store[V]) Changes(fn func(key string, value []byte)) {
	keys := make([]string, 0, len(s.pending))
	for k := range s.pending {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w := s.pending[k]
		if w.Deleted {
			fn(k, nil)
			continue
		}
		fn(k, s.codec.Encode(nil, w.V))
	}
}

// Commit makes every pending write permanent. A backend error is kept for Err.
func (s *Store[V]) Commit() { s.fail(s.CommitAt(NoCheckpoint)) }

// CommitAt makes every pending write permanent in one atomic step with checkpoint, the
// changelog end offset the writes reach (the offset after the transaction's last
// changelog record), so a durable backend reopened later restores only what follows.
// With no pending writes it records the checkpoint alone (after a restore).
func (s *Store[V]) CommitAt(checkpoint int64) error {
	s.gen++
	defer s.b.ResetScan() // after Apply: a backend may use what the scan read
	if s.err != nil {
		clear(s.pending)
		clear(s.absent)
		return s.err
	}
	if s.mem != nil {
		s.mem.apply(s.pending)
		clear(s.pending)
		return nil
	}
	err := s.b.Apply(s.pending, checkpoint)
	clear(s.pending)
	clear(s.absent)
	s.fail(err)
	return err
}

// Abort drops every pending write.
func (s *Store[V]) Abort() {
	s.gen++
	s.b.ResetScan()
	clear(s.pending)
	clear(s.absent)
}

// Checkpoint is the changelog offset the committed state reaches, as recorded by the
// last CommitAt (kept across restarts by a durable backend); ok is false when unknown.
func (s *Store[V]) Checkpoint() (offset int64, ok bool) { return s.b.Checkpoint() }

// Wipe deletes the committed state and its checkpoint, and drops pending writes: a full
// restore follows.
func (s *Store[V]) Wipe() error {
	clear(s.pending)
	clear(s.absent)
	s.b.ResetScan()
	s.err = nil
	return s.b.Wipe()
}

// Close releases the backend (files, cache).
func (s *Store[V]) Close() error { return s.b.Close() }

// BackendStats is what a durable backend holds on disk and in its block cache.
type BackendStats struct {
	// DiskBytes is the space its files take.
	DiskBytes uint64
	// CacheBytes is the block cache in use (shared caches count once per store).
	CacheBytes int64
}

// Stats reports the backend's disk and cache use; ok is false for a backend without
// (memory).
func (s *Store[V]) Stats() (st BackendStats, ok bool) {
	if b, ok := s.b.(interface{ Stats() BackendStats }); ok {
		return b.Stats(), true
	}
	return BackendStats{}, false
}

// Durable reports whether the backend keeps its state (and checkpoint) across restarts.
func (s *Store[V]) Durable() bool {
	_, ok := s.b.(interface{ Dir() string })
	return ok
}

// CheckpointTime is when a durable backend's checkpoint last moved; ok is false without
// one, or when its time is unknown.
func (s *Store[V]) CheckpointTime() (time.Time, bool) {
	if b, ok := s.b.(interface{ CheckpointTime() (time.Time, bool) }); ok {
		return b.CheckpointTime()
	}
	return time.Time{}, false
}

// Discarded is why a durable backend dropped the state it found when it opened (a
// corrupt checkpoint record), or nil.
func (s *Store[V]) Discarded() error {
	if b, ok := s.b.(interface{ Discarded() error }); ok {
		return b.Discarded()
	}
	return nil
}

// Restore applies one changelog record to the committed state: a nil value deletes.
func (s *Store[V]) Restore(key string, value []byte) error {
	if value == nil {
		var zero V
		return s.b.Restore(key, zero, nil)
	}
	v, err := s.codec.Decode(value)
	if err != nil {
		return err
	}
	return s.b.Restore(key, v, value)
}

// ScanExpired calls fn for committed keys whose expiry (see IndexExpiry) lies in a bucket
// that ends at or before before, in expiry order, each at most once per transaction,
// until fn returns false. Keys with a pending write are skipped (written in this
// transaction: deleted already, or renewed); fn may Put or Delete the key it was given.
func (s *Store[V]) ScanExpired(before int64, fn func(k string) bool) {
	s.fail(s.b.ScanExpired(before, func(k string) bool {
		if _, ok := s.pending[k]; ok {
			return true
		}
		return fn(k)
	}))
}

// ExpiryBacklog is the number of committed keys in expiry buckets wholly before before:
// keys past their expiry whose tombstones are not committed yet (renewed keys count
// until their old index entry is dropped).
func (s *Store[V]) ExpiryBacklog(before int64) int { return s.b.ExpiryBacklog(before) }

// ErrClosed is returned by a backend used after Close.
var ErrClosed = errors.New("state store closed")
