// Package stream is the stream engine: state stores, watermarks, windows and measures.
// It is pure Go: no Kafka client, no HTTP. The process package binds it to Kafka
// transactions.
package stream

import "sort"

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
// A Store is owned by one task and is not safe for concurrent use.
type Store[V any] struct {
	name      string
	codec     Codec[V]
	committed map[string]V
	pending   map[string]pendingWrite[V]

	// With a KeyPacker, committed keys it packs live in packed instead of committed:
	// fixed-size keys without pointers, which the garbage collector does not scan and
	// which hash and compare faster. Nothing outside the Store can tell.
	pack   KeyPacker
	packed map[PackedKey]V
}

// PackedKey is a key packed into 16 bytes by a KeyPacker.
type PackedKey [16]byte

// KeyPacker packs keys of one fixed shape into 16 bytes. Unpack(Pack(k)) must be k for
// every k that Pack accepts; Pack refuses every other key (those stay strings).
type KeyPacker interface {
	Pack(k string) (PackedKey, bool)
	Unpack(p PackedKey) string
}

type pendingWrite[V any] struct {
	v       V
	deleted bool
}

// NewStore returns an empty store.
func NewStore[V any](name string, c Codec[V]) *Store[V] {
	return &Store[V]{
		name:      name,
		codec:     c,
		committed: make(map[string]V),
		pending:   make(map[string]pendingWrite[V]),
	}
}

// PackKeys makes the store keep the committed keys p packs as PackedKeys (dedup: event
// ids that are ULIDs). Call it on a new, empty store; it returns s.
func (s *Store[V]) PackKeys(p KeyPacker) *Store[V] {
	s.pack, s.packed = p, make(map[PackedKey]V)
	return s
}

// Name is the store's name (part of its changelog topic).
func (s *Store[V]) Name() string { return s.name }

// Get returns the value of k, pending writes included.
func (s *Store[V]) Get(k string) (V, bool) {
	if w, ok := s.pending[k]; ok {
		var zero V
		if w.deleted {
			return zero, false
		}
		return w.v, true
	}
	return s.getCommitted(k)
}

func (s *Store[V]) getCommitted(k string) (V, bool) {
	if s.pack != nil {
		if p, ok := s.pack.Pack(k); ok {
			v, ok := s.packed[p]
			return v, ok
		}
	}
	v, ok := s.committed[k]
	return v, ok
}

func (s *Store[V]) setCommitted(k string, v V) {
	if s.pack != nil {
		if p, ok := s.pack.Pack(k); ok {
			s.packed[p] = v
			return
		}
	}
	s.committed[k] = v
}

func (s *Store[V]) deleteCommitted(k string) {
	if s.pack != nil {
		if p, ok := s.pack.Pack(k); ok {
			delete(s.packed, p)
			return
		}
	}
	delete(s.committed, k)
}

// Put sets k to v.
func (s *Store[V]) Put(k string, v V) { s.pending[k] = pendingWrite[V]{v: v} }

// Delete removes k.
func (s *Store[V]) Delete(k string) {
	var zero V
	s.pending[k] = pendingWrite[V]{v: zero, deleted: true}
}

// Range calls fn for every live key, pending writes included, in no particular order,
// until fn returns false. fn may Put or Delete the key it was given.
func (s *Store[V]) Range(fn func(k string, v V) bool) {
	for k, w := range s.pending {
		if w.deleted {
			continue
		}
		if !fn(k, w.v) {
			return
		}
	}
	for k, v := range s.committed {
		if _, ok := s.pending[k]; ok {
			continue
		}
		if !fn(k, v) {
			return
		}
	}
	for p, v := range s.packed {
		k := s.pack.Unpack(p)
		if _, ok := s.pending[k]; ok {
			continue
		}
		if !fn(k, v) {
			return
		}
	}
}

// Len is the number of committed keys (the restored and committed state size).
func (s *Store[V]) Len() int { return len(s.committed) + len(s.packed) }

// Dirty reports whether the store has pending writes.
func (s *Store[V]) Dirty() bool { return len(s.pending) > 0 }

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
		if w.deleted {
			fn(k, nil)
			continue
		}
		fn(k, s.codec.Encode(nil, w.v))
	}
}

// Commit makes every pending write permanent.
func (s *Store[V]) Commit() {
	for k, w := range s.pending {
		if w.deleted {
			s.deleteCommitted(k)
		} else {
			s.setCommitted(k, w.v)
		}
	}
	clear(s.pending)
}

// Abort drops every pending write.
func (s *Store[V]) Abort() { clear(s.pending) }

// Restore applies one changelog record to the committed state: a nil value deletes.
func (s *Store[V]) Restore(key string, value []byte) error {
	if value == nil {
		s.deleteCommitted(key)
		return nil
	}
	v, err := s.codec.Decode(value)
	if err != nil {
		return err
	}
	s.setCommitted(key, v)
	return nil
}
