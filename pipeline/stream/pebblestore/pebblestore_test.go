package pebblestore_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
	"github.com/sluicehq/sluice/pipeline/stream/storetest"
)

func open(t *testing.T, dir string) *stream.Store[int64] {
	t.Helper()
	b, err := pebblestore.Open[int64](dir, stream.Int64Codec{}, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return stream.NewStoreOn[int64]("s", stream.Int64Codec{}, b)
}

func TestStoreConformancePebble(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *stream.Store[int64] { return open(t, t.TempDir()) })
}

// TestDedupExpiryBoundedPebble: 200,000 ids (1,000,000 with SLUICE_STATE_LONG=1, about a
// minute on two cores) expire from a Pebble store with no transaction over 10,000
// tombstones, answers exact at and 1 ms past the horizon.
func TestDedupExpiryBoundedPebble(t *testing.T) {
	n := 200_000
	if os.Getenv("SLUICE_STATE_LONG") == "1" {
		n = 1_000_000
	} else if testing.Short() {
		n = 50_000
	}
	storetest.DedupExpiry(t, func(t *testing.T) *stream.Store[int64] { return open(t, t.TempDir()) }, n, 10_000)
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	_, err := pebblestore.Open[int64](dir, stream.Int64Codec{}, pebblestore.Options{})
	if !errors.Is(err, pebblestore.ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second open: %v, want ErrLocked naming %s", err, dir)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir) // the lock goes with Close
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNotWritableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{"under a file": filepath.Join(file, "state")}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		dirs["read-only"] = ro
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			_, err := pebblestore.Open[int64](dir, stream.Int64Codec{}, pebblestore.Options{})
			if !errors.Is(err, pebblestore.ErrNotWritable) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("open: %v, want ErrNotWritable naming %s", err, dir)
			}
		})
	}
}

// TestCheckpointRoundTrip: committed state, its key count, the expiry index and the
// checkpoint survive a close and reopen; aborted writes never reach the disk.
func TestCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	exp := func(v int64) int64 { return v }
	s := open(t, dir).IndexExpiry(exp, 10)
	if _, ok := s.Checkpoint(); ok {
		t.Fatal("new store has a checkpoint")
	}
	s.Put("a", 1)
	s.Put("b", 25)
	if err := s.CommitAt(42); err != nil {
		t.Fatal(err)
	}
	s.Put("aborted", 3)
	s.Delete("a")
	s.Abort()
	s.Put("c", 3)
	s.Commit() // no checkpoint: the last one stays
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir).IndexExpiry(exp, 10)
	defer s.Close()
	if cp, ok := s.Checkpoint(); !ok || cp != 42 {
		t.Fatalf("checkpoint after reopen = %d %v, want 42", cp, ok)
	}
	if got, want := storetest.View(s), map[string]int64{"a": 1, "b": 25, "c": 3}; !equal(got, want) {
		t.Fatalf("state after reopen = %v, want %v", got, want)
	}
	if s.Len() != 3 {
		t.Fatalf("Len after reopen = %d, want 3", s.Len())
	}
	if got := s.ExpiryBacklog(20); got != 2 {
		t.Fatalf("backlog after reopen = %d, want 2 (a and c)", got)
	}
	if b := s.Backend().(*pebblestore.Backend[int64]); b.Discarded() != nil {
		t.Fatalf("state discarded: %v", b.Discarded())
	}
}

// TestRestoreThenCheckpoint: a full restore followed by CommitAt(end) leaves a checkpoint;
// replaying the tail after it over the state (which may hold some of it) ends exact.
func TestRestoreThenCheckpoint(t *testing.T) {
	dir := t.TempDir()
	c := stream.Int64Codec{}
	s := open(t, dir)
	for i, r := range []struct {
		k string
		v []byte
	}{{"a", c.Encode(nil, 1)}, {"b", c.Encode(nil, 2)}, {"a", nil}} {
		if err := s.Restore(r.k, r.v); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if err := s.CommitAt(3); err != nil {
		t.Fatal(err)
	}
	s.Put("b", 20) // offset 3, committed without a checkpoint (crash before the next)
	s.Commit()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	cp, ok := s.Checkpoint()
	if !ok || cp != 3 {
		t.Fatalf("checkpoint = %d %v, want 3", cp, ok)
	}
	// Tail from offset 3: b=20, then c=4.
	for _, r := range []struct {
		k string
		v []byte
	}{{"b", c.Encode(nil, 20)}, {"c", c.Encode(nil, 4)}} {
		if err := s.Restore(r.k, r.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CommitAt(5); err != nil {
		t.Fatal(err)
	}
	if got, want := storetest.View(s), map[string]int64{"b": 20, "c": 4}; !equal(got, want) || s.Len() != 2 {
		t.Fatalf("state = %v (Len %d), want %v", got, s.Len(), want)
	}
}

// TestCorruptCheckpoint: a checkpoint record that fails its checksum is never trusted:
// Open wipes the state and says why.
func TestCorruptCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	s.Put("a", 1)
	if err := s.CommitAt(9); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Flip a bit of the checkpoint offset, behind the store's back.
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, closer, err := db.Get([]byte{'m'})
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), v...)
	closer.Close()
	bad[9] ^= 1
	if err := db.Set([]byte{'m'}, bad, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	b, err := pebblestore.Open[int64](dir, stream.Int64Codec{}, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Discarded() == nil || !strings.Contains(b.Discarded().Error(), "checksum") || !strings.Contains(b.Discarded().Error(), dir) {
		t.Fatalf("Discarded = %v, want a checksum error naming %s", b.Discarded(), dir)
	}
	if _, ok := b.Checkpoint(); ok {
		t.Fatal("corrupt checkpoint trusted")
	}
	if b.Len() != 0 {
		t.Fatalf("Len = %d after a corrupt checkpoint, want 0 (wiped)", b.Len())
	}
	if _, ok, _ := b.Get("a"); ok {
		t.Fatal("state kept after a corrupt checkpoint")
	}
}

func equal(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A restore into an empty store writes blind and counts and indexes the keys when it
// ends; across several internal batches, with deletes and rewrites of keys written in
// an earlier batch, it ends where the memory backend does: same keys, values, count and
// expiry index. Fails if the bulk path counted or indexed a key twice or missed one.
func TestBulkRestoreMatchesMemory(t *testing.T) {
	const n = 150_000 // more than two internal restore batches
	exp := func(v int64) int64 { return v }
	disk := open(t, t.TempDir()).IndexExpiry(exp, 100)
	defer disk.Close()
	mem := stream.NewStore[int64]("s", stream.Int64Codec{}).IndexExpiry(exp, 100)
	c := stream.Int64Codec{}
	for i := range n {
		k := "k" + strconv.Itoa(i%100_000)
		var v []byte
		switch {
		case i >= 100_000 && i%3 == 0: // a delete of a key of an earlier batch
		case i%7 == 0 && i > 0:
			v = nil // a delete of a key written in this batch or never
		default:
			v = c.Encode(nil, int64(i%5_000))
		}
		for _, s := range []*stream.Store[int64]{disk, mem} {
			if err := s.Restore(k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if disk.Len() != mem.Len() {
		t.Fatalf("Len %d, memory %d", disk.Len(), mem.Len())
	}
	if got, want := storetest.View(disk), storetest.View(mem); !equal(got, want) {
		t.Fatalf("views differ: %d keys on disk, %d in memory", len(got), len(want))
	}
	for _, before := range []int64{0, 1_000, 2_500, 5_100} {
		if got, want := disk.ExpiryBacklog(before), mem.ExpiryBacklog(before); got != want {
			t.Fatalf("ExpiryBacklog(%d) = %d, memory %d", before, got, want)
		}
		var got, want []string
		disk.ScanExpired(before, func(k string) bool { got = append(got, k); return true })
		mem.ScanExpired(before, func(k string) bool { want = append(want, k); return true })
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("ScanExpired(%d): %d keys, memory %d", before, len(got), len(want))
		}
		disk.Abort()
		mem.Abort()
	}
	if err := disk.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestMemtablesLeaveTheBlockCache: stores sharing one block cache write until their
// memtables together hold more than the cache's size (Pebble charges memtables to the
// cache), then one store reads back keys that were flushed to its tables. The blocks it
// reads must stay in the cache: before balanceCache the memtables' reservation left the
// cache no room (its size stayed at 0) and every lookup read its filter and data blocks
// from the file again.
func TestMemtablesLeaveTheBlockCache(t *testing.T) {
	const cacheBytes = 8 << 20
	cache := pebblestore.NewCache(cacheBytes)
	defer cache.Close()
	var backends []*pebblestore.Backend[int64]
	var stores []*stream.Store[int64]
	for i := range 4 {
		b, err := pebblestore.Open[int64](filepath.Join(t.TempDir(), strconv.Itoa(i)), stream.Int64Codec{}, pebblestore.Options{Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		backends = append(backends, b)
		stores = append(stores, stream.NewStoreOn[int64]("s", stream.Int64Codec{}, b))
	}
	key := func(i int) string { return fmt.Sprintf("%08d-%s", i, strings.Repeat("k", 100)) }
	// 150,000 keys of ~110 bytes per store: its memtables grow (256 KiB, doubling) past
	// 2 MiB each, and the first keys are flushed to tables.
	const n = 150_000
	for i := range n {
		for _, s := range stores {
			s.Put(key(i), int64(i))
		}
		if i%5_000 == 4_999 {
			for _, s := range stores {
				if err := s.CommitAt(int64(i)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var memtables int64
	for _, b := range backends {
		memtables += b.MemtableBytes()
	}
	if memtables < cacheBytes {
		t.Fatalf("the stores' memtables hold %d bytes, under the %d-byte cache: the test proves nothing", memtables, cacheBytes)
	}
	for round := range 3 {
		for i := 0; i < 20_000; i += 7 {
			if v, ok := stores[0].Get(key(i)); !ok || v != int64(i) {
				t.Fatalf("round %d: Get(%d) = %d, %v", round, i, v, ok)
			}
		}
	}
	if got := backends[0].Stats().CacheBytes; got < 1<<20 {
		t.Fatalf("block cache holds %d bytes after reading 20,000 flushed keys three times, memtables %d bytes: the memtables took the cache", got, memtables)
	}
}
