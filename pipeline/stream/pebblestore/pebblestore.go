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
	"errors"
	"fmt"
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

// quietLogger drops Pebble's informational messages; errors reach callers as errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
