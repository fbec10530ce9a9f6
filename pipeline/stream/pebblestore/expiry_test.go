package pebblestore_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/stream/storetest"
)

// TestExpiryIndexRangeDeleteModel checks the expiry index Apply keeps with range
// deletions (the span a transaction's scans covered is deleted at once, and the entries
// that stay are set again) against the memory store: seeded random transactions scan
// with a limit, then delete, renew at the same expiry, renew at another, or leave each
// offered key, and write other keys; some abort. After every transaction both stores
// hold the same keys, the same expiry backlog and the same due keys; after a reopen the
// counts and index read back from disk agree too.
func TestExpiryIndexRangeDeleteModel(t *testing.T) {
	const width = 10
	exp := func(v int64) int64 { return v }
	dir := t.TempDir()
	p := open(t, dir).IndexExpiry(exp, width)
	m := stream.NewStore[int64]("s", stream.Int64Codec{}).IndexExpiry(exp, width)
	rng := rand.New(rand.NewPCG(16, 1))
	now := int64(0)
	key := func() string { return fmt.Sprintf("k%03d", rng.IntN(400)) }
	due := func(s *stream.Store[int64], before int64) []string {
		var got []string
		s.ScanExpired(before, func(k string) bool { got = append(got, k); return true })
		s.Abort()
		slices.Sort(got)
		return got
	}
	check := func(when string) {
		t.Helper()
		if err := p.Err(); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if got, want := storetest.View(p), storetest.View(m); !maps.Equal(got, want) {
			t.Fatalf("%s: pebble holds %d keys, memory %d (or other values)", when, len(got), len(want))
		}
		if p.Len() != m.Len() {
			t.Fatalf("%s: Len %d, memory %d", when, p.Len(), m.Len())
		}
		for _, before := range []int64{now - 30, now, now + 50} {
			if got, want := p.ExpiryBacklog(before), m.ExpiryBacklog(before); got != want {
				t.Fatalf("%s: backlog(%d) %d, memory %d", when, before, got, want)
			}
			if got, want := due(p, before), due(m, before); !slices.Equal(got, want) {
				t.Fatalf("%s: due(%d) %v, memory %v", when, before, got, want)
			}
		}
	}
	both := func(f func(s *stream.Store[int64])) { f(p); f(m) }
	for txn := range 400 {
		now += int64(rng.IntN(8))
		for range rng.IntN(20) {
			k, v := key(), now+int64(rng.IntN(60))
			both(func(s *stream.Store[int64]) { s.Put(k, v) })
		}
		// Scans in chunks, as Dedup.Expire does; the actions follow pebble's offers.
		for range rng.IntN(3) {
			var offered []string
			limit := 1 + rng.IntN(15)
			p.ScanExpired(now, func(k string) bool {
				offered = append(offered, k)
				return len(offered) < limit
			})
			for _, k := range offered {
				old, _ := p.Get(k)
				switch rng.IntN(4) {
				case 0:
					both(func(s *stream.Store[int64]) { s.Delete(k) })
				case 1:
					both(func(s *stream.Store[int64]) { s.Put(k, old) }) // same expiry
				case 2:
					v := now + int64(rng.IntN(60))
					both(func(s *stream.Store[int64]) { s.Put(k, v) })
				}
			}
		}
		if rng.IntN(10) == 0 {
			both(func(s *stream.Store[int64]) { s.Abort() })
		} else {
			both(func(s *stream.Store[int64]) { s.Commit() })
		}
		check(fmt.Sprintf("transaction %d", txn))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = open(t, dir).IndexExpiry(exp, width)
	defer p.Close()
	check("after reopen")
}
