// Package pebblestore is the disk-backed committed layer of a stream.Store, on Pebble
// (github.com/cockroachdb/pebble/v2, the LSM under CockroachDB): state larger than
// memory, and a local checkpoint so a restart restores only the changelog records after
// it instead of the whole history.
//
// One Backend owns one directory (a task's store: stage / input topic / partition /
// store, see Dir) and holds a lock on it for as long as it is open, so two processes
// never open the same state. Each Apply writes the committed transaction's writes, the
// expiry index, the key count and the checkpoint (the changelog end offset the writes
// reach) in one atomic Pebble batch, so the checkpoint on disk always matches the state
// on disk. Batches are not fsynced: after a machine crash the directory holds a
// consistent, possibly older state and checkpoint, and the restore reads from there
// (replaying changelog records over state that already has some of them ends in the
// same state).
//
// Key layout: 'd'+key -> value (the store's Codec); 'x'+expiry+key -> nothing (the
// expiry index); 'c'+bucket -> index entries in the bucket; 'm' -> meta (checkpoint,
// key count, index bucket width, CRC-32C).
package pebblestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// DefaultCacheBytes is the block cache of a Backend unless Options.CacheBytes says
// otherwise: 64 MiB.
const DefaultCacheBytes = 64 << 20

// restoreBatch is how many restored changelog records a Backend buffers before writing
// them to Pebble.
const restoreBatch = 1 << 16

// ErrLocked is returned by Open when another process (or another Backend in this one)
// has the directory open.
var ErrLocked = errors.New("state directory is locked by another store")

// ErrNotWritable is returned by Open when the directory cannot be made or written.
var ErrNotWritable = errors.New("state directory is not writable")

// Options configure a Backend.
type Options struct {
	// CacheBytes is the size of the block cache (default DefaultCacheBytes), when Cache
	// is nil.
	CacheBytes int64
	// Cache, if set, is a block cache shared with other Backends (a process's tasks):
	// CacheBytes is ignored.
	Cache *Cache
	// Now is the wall clock that dates each checkpoint (CheckpointTime). Default time.Now.
	Now func() time.Time
	// FS is the file system Pebble uses (default vfs.Default): tests inject disk errors.
	FS vfs.FS
}

// Cache is a block cache several Backends share, so the memory a process's state stores
// hold in cache is bounded by one size however many tasks it runs.
type Cache struct{ c *pebble.Cache }

// NewCache returns a shared block cache of bytes (DefaultCacheBytes when <= 0).
func NewCache(bytes int64) *Cache {
	if bytes <= 0 {
		bytes = DefaultCacheBytes
	}
	return &Cache{c: pebble.NewCache(bytes)}
}

// Close drops the creator's reference: the memory is freed once every Backend using the
// cache is closed too.
func (c *Cache) Close() {
	if c != nil && c.c != nil {
		c.c.Unref()
		c.c = nil
	}
}

// LockRoot makes root (and any missing parent) and locks it for this process, so two
// processes never share one state root: each task's store locks its own directory as
// well, but a shared root would make a partition moving between them fail on the lock.
// The error names root: it is not writable (ErrNotWritable) or locked (ErrLocked).
func LockRoot(root string) (io.Closer, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("state directory %s: %w: %w", root, ErrNotWritable, err)
	}
	// MkdirAll succeeds on an existing read-only directory: probe a write.
	probe, err := os.CreateTemp(root, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w: %w", root, ErrNotWritable, err)
	}
	name := probe.Name()
	err = errors.Join(probe.Close(), os.Remove(name))
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w: %w", root, ErrNotWritable, err)
	}
	lock, err := pebble.LockDirectory(root, vfs.Default)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("state directory %s: %w: %w", root, ErrNotWritable, err)
		}
		return nil, fmt.Errorf("state directory %s: %w (another sluice process uses it; give each process its own --state-dir): %w", root, ErrLocked, err)
	}
	return lock, nil
}

// Dir is the directory of one task's store under root: root/stage/topic/partition/store.
func Dir(root, stage, topic string, partition int32, store string) string {
	return filepath.Join(root, stage, topic, strconv.Itoa(int(partition)), store)
}

// Backend is a stream.Backend on a Pebble database in one directory.
// Like the Store over it, it is not safe for concurrent use.
type Backend[V any] struct {
	dir   string
	db    *pebble.DB
	lock  *pebble.Lock
	cache *pebble.Cache
	codec stream.Codec[V]

	n          int64 // committed keys
	checkpoint int64 // stream.NoCheckpoint when none
	// checkpointAt is when the checkpoint was written (unix ms; 0 unknown).
	checkpointAt int64
	now          func() time.Time
	discarded    error
	broken       error // a failed batch: memory and disk may disagree

	restore map[string]stream.Write[V]
	// bulk is set while a restore into an empty store runs: its records are written
	// blind (no read of the old value, no index upkeep), and the key count and expiry
	// index are rebuilt in one scan when it ends (finishBulk).
	bulk bool

	exp    func(V) int64
	width  int64
	counts map[int64]int64 // expiry bucket -> index entries
	dirty  map[int64]bool  // counts changed since the last batch
	cursor []byte          // ScanExpired resumes after this index key
	// scanLow is where the transaction's first ScanExpired started: every index entry in
	// [scanLow, cursor) was offered, so Apply deletes the span with one range deletion
	// instead of a point tombstone per entry (and sets again those that stay).
	scanLow []byte
	// ranged is set while Apply writes a batch that range-deleted [scanLow, cursor).
	ranged bool
	// offered is the committed expiry of each key ScanExpired offered since ResetScan:
	// Apply deletes (or renews) those without reading them again.
	offered map[string]int64
	// floor is at or below the first live index entry: deleted entries leave tombstones
	// that an iterator would otherwise step over again in every transaction.
	floor []byte

	// credit gives back to the block cache what Pebble reserved in it for this store's
	// memtables (balanceCache): returned by the cache's Reserve, nil when none.
	credit      func()
	creditBytes int64

	kbuf, vbuf []byte
	// it reads data keys (Get, and the reads of Apply) until the next batch commits
	// (dropIter): a seek on an open iterator skips building one per lookup, and its
	// bloom-filtered prefix seek answers a missing key without reading its blocks.
	it *pebble.Iterator
}

var _ stream.Backend[int64] = (*Backend[int64])(nil)

// Open opens (creating it if needed) the state in dir and locks dir. If the state's
// checkpoint record fails its checksum, Open wipes the state and Discarded says why: the
// caller restores fully. An error names dir: it is not writable (ErrNotWritable), it is
// locked (ErrLocked), or Pebble could not open it.
func Open[V any](dir string, c stream.Codec[V], o Options) (*Backend[V], error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory %s: %w: %w", dir, ErrNotWritable, err)
	}
	fsys := o.FS
	if fsys == nil {
		fsys = vfs.Default
	}
	lock, err := pebble.LockDirectory(dir, fsys)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("state directory %s: %w: %w", dir, ErrNotWritable, err)
		}
		return nil, fmt.Errorf("state directory %s: %w: %w", dir, ErrLocked, err)
	}
	var cache *pebble.Cache
	if o.Cache != nil && o.Cache.c != nil {
		cache = o.Cache.c
		cache.Ref()
	} else {
		size := o.CacheBytes
		if size <= 0 {
			size = DefaultCacheBytes
		}
		cache = pebble.NewCache(size)
	}
	opts := &pebble.Options{
		Cache: cache, Lock: lock, Logger: quietLogger{}, FS: fsys,
		// Up to 4 memtables of 16 MiB before writes wait for a flush: a commit does not
		// stall behind a flush on a busy machine (measured: TestExpiryStall).
		MemTableSize: 16 << 20, MemTableStopWritesThreshold: 4,
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		cache.Unref()
		_ = lock.Close()
		return nil, fmt.Errorf("state directory %s: open: %w", dir, err)
	}
	b := &Backend[V]{
		dir: dir, db: db, lock: lock, cache: cache, codec: c,
		checkpoint: stream.NoCheckpoint, now: o.Now,
		restore: make(map[string]stream.Write[V]),
		counts:  make(map[int64]int64),
		dirty:   make(map[int64]bool),
		offered: make(map[string]int64),
	}
	if err := b.load(); err != nil {
		_ = b.Close()
		return nil, err
	}
	b.balanceCache() // the memtables the write-ahead log's replay filled
	return b, nil
}

// Dir is the directory the Backend owns.
func (b *Backend[V]) Dir() string { return b.dir }

// Discarded is why Open wiped the state it found (a corrupt checkpoint record), or nil.
func (b *Backend[V]) Discarded() error { return b.discarded }

// meta is the checkpoint record: version, flags, checkpoint, key count, index width.
type meta struct {
	hasCheckpoint bool
	checkpoint    int64
	n             int64
	width         int64
}

const metaVersion = 1

var metaKey = []byte{'m'}

// timeKey holds when the checkpoint was written (unix ms, 8 bytes): a checkpoint older
// than the changelog's delete.retention.ms may have missed tombstones compaction removed.
var timeKey = []byte{'t'}

func (m meta) encode() []byte {
	b := make([]byte, 0, 30)
	b = append(b, metaVersion)
	if m.hasCheckpoint {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(m.checkpoint))
	b = binary.BigEndian.AppendUint64(b, uint64(m.n))
	b = binary.BigEndian.AppendUint64(b, uint64(m.width))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func decodeMeta(b []byte) (meta, error) {
	if len(b) != 30 {
		return meta{}, fmt.Errorf("checkpoint record is %d bytes, want 30", len(b))
	}
	if got, want := binary.BigEndian.Uint32(b[26:]), crc32.Checksum(b[:26], castagnoli); got != want {
		return meta{}, fmt.Errorf("checkpoint record checksum %08x, want %08x", got, want)
	}
	if b[0] != metaVersion || b[1] > 1 {
		return meta{}, fmt.Errorf("checkpoint record version %d flags %d unknown", b[0], b[1])
	}
	m := meta{
		hasCheckpoint: b[1] == 1,
		checkpoint:    int64(binary.BigEndian.Uint64(b[2:])),
		n:             int64(binary.BigEndian.Uint64(b[10:])),
		width:         int64(binary.BigEndian.Uint64(b[18:])),
	}
	if m.n < 0 || m.width < 0 || (m.hasCheckpoint && m.checkpoint < 0) {
		return meta{}, errors.New("checkpoint record out of range")
	}
	return m, nil
}

// load reads the checkpoint record; a corrupt one, or state without one, is wiped.
func (b *Backend[V]) load() error {
	v, closer, err := b.db.Get(metaKey)
	if errors.Is(err, pebble.ErrNotFound) {
		empty, err := b.empty()
		if err != nil {
			return err
		}
		if !empty {
			b.discarded = fmt.Errorf("state directory %s: state without a checkpoint record", b.dir)
			return b.Wipe()
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("state directory %s: read checkpoint: %w", b.dir, err)
	}
	m, derr := decodeMeta(v)
	_ = closer.Close()
	if derr != nil {
		b.discarded = fmt.Errorf("state directory %s: %w", b.dir, derr)
		return b.Wipe()
	}
	b.n, b.width = m.n, m.width
	if m.hasCheckpoint {
		b.checkpoint = m.checkpoint
		at, closer, err := b.db.Get(timeKey)
		if err == nil {
			if len(at) == 8 {
				b.checkpointAt = int64(binary.BigEndian.Uint64(at))
			}
			_ = closer.Close()
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("state directory %s: read checkpoint time: %w", b.dir, err)
		}
	}
	return nil
}

func (b *Backend[V]) empty() (bool, error) {
	it, err := b.db.NewIter(nil)
	if err != nil {
		return false, err
	}
	empty := !it.First()
	return empty, errors.Join(it.Error(), it.Close())
}

func (b *Backend[V]) usable() error {
	if b.db == nil {
		return stream.ErrClosed
	}
	return b.broken
}

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

// Checkpoint is the changelog offset of the last Apply that carried one.
func (b *Backend[V]) Checkpoint() (int64, bool) {
	return b.checkpoint, b.checkpoint != stream.NoCheckpoint
}

// CheckpointTime is when the checkpoint last moved (Options.Now); ok is false when there
// is no checkpoint or its time is unknown.
func (b *Backend[V]) CheckpointTime() (time.Time, bool) {
	if b.checkpoint == stream.NoCheckpoint || b.checkpointAt == 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(b.checkpointAt), true
}

func (b *Backend[V]) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

// Wipe deletes every key, index entry and the checkpoint, durably.
func (b *Backend[V]) Wipe() error {
	if b.db == nil {
		return stream.ErrClosed
	}
	batch := b.db.NewBatch()
	_ = batch.DeleteRange([]byte{0}, []byte{0xff}, nil)
	clear(b.restore)
	clear(b.counts)
	clear(b.dirty)
	b.n, b.cursor, b.scanLow, b.floor, b.broken = 0, nil, nil, nil, nil
	clear(b.offered)
	m := meta{width: b.width}
	if b.exp == nil {
		m.width = 0
	}
	_ = batch.Set(metaKey, m.encode(), nil)
	b.dropIter()
	if err := batch.Commit(pebble.Sync); err != nil {
		_ = batch.Close()
		return b.fail(fmt.Errorf("wipe: %w", err))
	}
	b.checkpoint, b.checkpointAt = stream.NoCheckpoint, 0
	return batch.Close()
}

// Close writes buffered restore records, closes the database and releases the lock.
func (b *Backend[V]) Close() error {
	if b.db == nil {
		return nil
	}
	err := b.flushRestore()
	b.dropIter()
	err = errors.Join(err, b.db.Close())
	b.releaseCredit()
	b.cache.Unref()
	err = errors.Join(err, b.lock.Close())
	b.db = nil
	if err != nil {
		return fmt.Errorf("state directory %s: close: %w", b.dir, err)
	}
	return nil
}

// Stats is what a Backend holds, for metrics.
type Stats = stream.BackendStats

// Stats reports disk and cache use.
func (b *Backend[V]) Stats() Stats {
	if b.db == nil {
		return Stats{}
	}
	m := b.db.Metrics()
	return Stats{DiskBytes: m.DiskSpaceUsage(), CacheBytes: m.BlockCache.Size}
}

// MemtableBytes is what the store's memtables hold (in use, being flushed, kept for
// reuse): memory beside the block cache.
func (b *Backend[V]) MemtableBytes() int64 {
	if b.db == nil {
		return 0
	}
	m := b.db.Metrics()
	return int64(m.MemTable.Size + m.MemTable.ZombieSize)
}

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

// quietLogger drops Pebble's informational messages; errors reach callers as errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
