// Package storetest is the conformance suite every stream.Store backend passes: the
// memory backend in package stream and the disk backend in pebblestore run the same
// tests, so the processor cannot tell them apart.
package storetest

import (
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// Opener returns a new, empty store for one test; the suite closes it.
type Opener func(t *testing.T) *stream.Store[int64]

// Run runs the conformance suite on the stores open returns.
func Run(t *testing.T, open Opener) {
	t.Run("Contract", func(t *testing.T) { testContract(t, open) })
	t.Run("Restore", func(t *testing.T) { testRestore(t, open) })
	t.Run("RangeWrites", func(t *testing.T) { testRangeWrites(t, open) })
	t.Run("PackedKeys", func(t *testing.T) { testPackedKeys(t, open) })
	t.Run("ScanExpired", func(t *testing.T) { testScanExpired(t, open) })
	t.Run("Wipe", func(t *testing.T) { testWipe(t, open) })
}

func newStore(t *testing.T, open Opener) *stream.Store[int64] {
	t.Helper()
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// View is every live key of s with its value (Range), for comparisons.
func View(s *stream.Store[int64]) map[string]int64 {
	m := map[string]int64{}
	s.Range(func(k string, v int64) bool {
		m[k] = v
		return true
	})
	return m
}

func changes(s *stream.Store[int64]) []string {
	var log []string
	s.Changes(func(k string, v []byte) {
		if v == nil {
			log = append(log, k+"=nil")
			return
		}
		x, err := stream.Int64Codec{}.Decode(v)
		if err != nil {
			panic(err)
		}
		log = append(log, fmt.Sprintf("%s=%d", k, x))
	})
	return log
}

func want[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func testContract(t *testing.T, open Opener) {
	s := newStore(t, open)
	s.Put("b", 2)
	s.Put("a", 1)
	if v, ok := s.Get("a"); !ok || v != 1 {
		t.Fatalf("pending read: %v %v", v, ok)
	}
	want(t, "Len before commit", s.Len(), 0)
	want(t, "Dirty", s.Dirty(), true)
	s.Abort()
	if _, ok := s.Get("a"); ok {
		t.Fatal("aborted write visible")
	}
	want(t, "Dirty after Abort", s.Dirty(), false)
	s.Put("b", 2)
	s.Put("a", 1)
	s.Put("c", 3)
	want(t, "changes", changes(s), []string{"a=1", "b=2", "c=3"})
	s.Commit()
	want(t, "Len", s.Len(), 3)
	s.Delete("a")
	s.Put("c", 30)
	s.Put("d", 4)
	if _, ok := s.Get("a"); ok {
		t.Fatal("pending delete still visible")
	}
	want(t, "view with pending", View(s), map[string]int64{"b": 2, "c": 30, "d": 4})
	want(t, "changes", changes(s), []string{"a=nil", "c=30", "d=4"})
	s.Abort()
	want(t, "view after abort", View(s), map[string]int64{"a": 1, "b": 2, "c": 3})
	s.Delete("a")
	s.Delete("zz") // absent: a tombstone all the same, and no change to Len
	want(t, "changes", changes(s), []string{"a=nil", "zz=nil"})
	if err := s.CommitAt(7); err != nil {
		t.Fatal(err)
	}
	want(t, "Len", s.Len(), 2)
	want(t, "view", View(s), map[string]int64{"b": 2, "c": 3})
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	txn := s.Txn()
	s.Abort()
	s.Commit()
	want(t, "Txn advance", s.Txn(), txn+2)
}

func testRestore(t *testing.T, open Opener) {
	s := newStore(t, open)
	c := stream.Int64Codec{}
	for i, r := range []struct {
		k string
		v []byte
	}{{"a", c.Encode(nil, 1)}, {"b", c.Encode(nil, 2)}, {"a", nil}, {"c", c.Encode(nil, 3)}, {"b", c.Encode(nil, 20)}, {"x", nil}} {
		if err := s.Restore(r.k, r.v); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if err := s.Restore("bad", []byte{1, 2}); err == nil {
		t.Fatal("a value the codec refuses restored without error")
	}
	want(t, "Len", s.Len(), 2)
	want(t, "view", View(s), map[string]int64{"b": 20, "c": 3})
	if v, ok := s.Get("b"); !ok || v != 20 {
		t.Fatalf("Get(b) = %v %v", v, ok)
	}
	want(t, "Dirty after restore", s.Dirty(), false)
}

// testRangeWrites: fn may delete the key it is given (the old full sweep did).
func testRangeWrites(t *testing.T, open Opener) {
	s := newStore(t, open)
	for i := range 100 {
		s.Put(fmt.Sprintf("k%03d", i), int64(i))
	}
	s.Commit()
	s.Put("p", 1000)
	s.Range(func(k string, v int64) bool {
		if v%2 == 0 {
			s.Delete(k)
		}
		return true
	})
	s.Commit()
	want(t, "Len", s.Len(), 50)
	n := 0
	s.Range(func(string, int64) bool { n++; return n < 10 })
	want(t, "Range stops", n, 10)
}

func testPackedKeys(t *testing.T, open Opener) {
	s := newStore(t, open).PackKeys(stream.ULIDKeys{})
	id := ulid.MustNew(1, nil).String()
	s.Put(id, 1)
	s.Put("plain", 2)
	s.Commit()
	want(t, "view", View(s), map[string]int64{id: 1, "plain": 2})
	s.Delete(id)
	s.Commit()
	want(t, "view", View(s), map[string]int64{"plain": 2})
}

func testScanExpired(t *testing.T, open Opener) {
	s := newStore(t, open).IndexExpiry(func(v int64) int64 { return v }, 10)
	for i := range 50 {
		s.Put(fmt.Sprintf("k%02d", i), int64(i)) // expiry i: buckets 0..4
	}
	s.Put("neg", -5) // bucket -1
	s.Commit()
	scan := func(before int64, limit int) []string {
		var got []string
		s.ScanExpired(before, func(k string) bool {
			got = append(got, k)
			return len(got) < limit
		})
		return got
	}
	want(t, "backlog(0)", s.ExpiryBacklog(0), 1)
	want(t, "scan(9): bucket 0 does not end by 9", scan(9, 100), []string{"neg"})
	s.Abort() // a new transaction offers everything again
	got := scan(20, 100)
	want(t, "scan(20) count", len(got), 21)
	want(t, "scan(20) first", got[0], "neg")
	sorted := append([]string(nil), got[1:11]...)
	sort.Strings(sorted)
	want(t, "bucket 0 before bucket 1", sorted[0] == "k00" && sorted[9] == "k09", true)
	want(t, "scan again in the same transaction", scan(20, 100), []string(nil))
	want(t, "backlog(20)", s.ExpiryBacklog(20), 21)
	s.Commit()
	// Resumable: 5 at a time, each key once.
	seen := map[string]bool{}
	for range 10 {
		for _, k := range scan(20, 5) {
			if seen[k] {
				t.Fatalf("%s offered twice in one transaction", k)
			}
			seen[k] = true
		}
	}
	want(t, "keys offered in chunks", len(seen), 21)
	// Renewed and deleted keys leave the old bucket.
	s.Put("k00", 100)
	s.Delete("k01")
	s.Delete("neg")
	s.Commit()
	got = scan(20, 100)
	want(t, "after renew/delete", len(got), 18)
	for _, k := range got {
		if k == "k00" || k == "k01" || k == "neg" {
			t.Fatalf("%s offered after it was renewed or deleted", k)
		}
	}
	s.Abort()
	want(t, "backlog after stale entries dropped", s.ExpiryBacklog(20), 18)
	got = scan(110, 100)
	want(t, "renewed key due last", got[len(got)-1], "k00")
}

func testWipe(t *testing.T, open Opener) {
	s := newStore(t, open).IndexExpiry(func(v int64) int64 { return v }, 10)
	s.Put("a", 1)
	s.Commit()
	s.Put("b", 2)
	if err := s.Wipe(); err != nil {
		t.Fatal(err)
	}
	want(t, "Len", s.Len(), 0)
	want(t, "view", View(s), map[string]int64{})
	want(t, "backlog", s.ExpiryBacklog(1000), 0)
	if _, ok := s.Checkpoint(); ok {
		t.Fatal("checkpoint survived Wipe")
	}
	s.Put("c", 3)
	s.Commit()
	want(t, "view", View(s), map[string]int64{"c": 3})
}

// DedupExpiry fills a Dedup on the store open returns with n ULID ids (event times 0..n-1
// ms, horizon one hour), then moves the watermark so half, and then all, are past their
// expiry, committing a transaction of 100 new ids at a time. It checks that no
// transaction carries more than limit tombstones, that the answers for the ids just
// inside and just outside the horizon are exact all along, that a renewed id survives,
// and that every expired id is deleted in the end.
func DedupExpiry(t *testing.T, open Opener, n, limit int) {
	s := newStore(t, open).PackKeys(stream.ULIDKeys{})
	const horizon = time.Hour
	h := horizon.Milliseconds()
	d := stream.NewDedup(s, horizon).ExpiryLimit(limit)
	id := func(i int) string { return ulid.ULID(ulidOf(uint64(i))).String() }
	for i := range n {
		d.Add(id(i), int64(i))
		if i%10000 == 9999 {
			commit(t, s, limit)
		}
	}
	commit(t, s, limit)
	want(t, "Len", s.Len(), n)

	fresh := 0
	txn := func(at int64) {
		for range 100 {
			d.Add(id(n+fresh), at)
			fresh++
		}
		commit(t, s, limit)
	}
	// Half past the horizon: ids < n/2 are out, ids >= n/2 in.
	w := int64(n/2) + h
	inside, outside := id(n/2), id(n/2-1)
	check := func(step int) {
		t.Helper()
		if !d.Contains(inside, w) {
			t.Fatalf("step %d: id at the horizon (expiry == watermark) reported absent", step)
		}
		if d.Contains(outside, w) {
			t.Fatalf("step %d: id 1 ms past the horizon reported present", step)
		}
	}
	check(-1)
	if d.Seen(id(0), w) {
		t.Fatal("expired id 0 reported seen")
	}
	for step := 0; d.ExpiryBacklog() > 0 || step == 0; step++ {
		if step > n/limit+10 {
			t.Fatalf("backlog %d after %d transactions", d.ExpiryBacklog(), step)
		}
		txn(w)
		check(step)
	}
	if !d.Contains(id(0), w) {
		t.Fatal("id 0, renewed at the watermark, was expired")
	}
	// Everything past, by more than an expiry bucket (horizon/64): all n old ids go, and
	// the ids renewed or added at w, in bounded transactions.
	w2 := int64(n) + 3*h
	for step := 0; d.ExpiryBacklog() > 0 || step == 0; step++ {
		if step > n/limit+10 {
			t.Fatalf("backlog %d after %d transactions", d.ExpiryBacklog(), step)
		}
		txn(w2)
	}
	if d.Contains(inside, w2) || d.Contains(id(n-1), w2) {
		t.Fatal("expired id reported present")
	}
	if !d.Contains(id(n+fresh-1), w2) {
		t.Fatal("fresh id reported absent")
	}
	// Left: the fresh ids added at w2 (the ones added at w expired with the rest).
	live := 0
	s.Range(func(_ string, exp int64) bool {
		if exp >= w2 {
			live++
		}
		return true
	})
	want(t, "Len after expiry", s.Len(), live)
	if got := d.LargestExpiryBatch(); got > limit || got == 0 {
		t.Fatalf("largest expiry batch %d, limit %d", got, limit)
	}
}

// commit commits s after checking its pending tombstones are within limit.
func commit(t *testing.T, s *stream.Store[int64], limit int) {
	t.Helper()
	tomb := 0
	s.Changes(func(_ string, v []byte) {
		if v == nil {
			tomb++
		}
	})
	if tomb > limit {
		t.Fatalf("a transaction carries %d tombstones, limit %d", tomb, limit)
	}
	if err := s.CommitAt(int64(s.Txn())); err != nil {
		t.Fatal(err)
	}
}

// ulidOf is a canonical ULID whose entropy is i (timestamp 0), so ids are distinct and
// pack.
func ulidOf(i uint64) [16]byte {
	var b [16]byte
	for j := range 8 {
		b[15-j] = byte(i >> (8 * j))
	}
	return b
}
