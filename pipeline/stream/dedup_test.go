package stream_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/stream/storetest"
)

func TestDedup(t *testing.T) {
	const min = int64(time.Minute / time.Millisecond)
	type step struct {
		id   string
		at   int64
		want bool // seen before
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"first is new", []step{{"a", 0, false}}},
		{"repeat is seen", []step{{"a", 0, false}, {"a", 0, true}, {"b", 1, false}}},
		{"repeat with later time is seen", []step{{"a", 0, false}, {"a", 5 * min, true}}},
		{"expired id is new again", []step{{"a", 0, false}, {"b", 11 * min, false}, {"a", 11 * min, false}}},
		{"at horizon still seen", []step{{"a", 0, false}, {"b", 10 * min, false}, {"a", 10 * min, true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := stream.NewDedup(stream.NewStore[int64]("dedup", stream.Int64Codec{}), 10*time.Minute)
			for i, s := range c.steps {
				if got := d.Seen(s.id, s.at); got != s.want {
					t.Fatalf("step %d Seen(%q, %d) = %v, want %v", i, s.id, s.at, got, s.want)
				}
			}
		})
	}
}

func TestStoreCommitAbortRestore(t *testing.T) {
	s := stream.NewStore[int64]("s", stream.Int64Codec{})
	s.Put("a", 1)
	s.Put("b", 2)
	if v, ok := s.Get("a"); !ok || v != 1 {
		t.Fatalf("pending read: %v %v", v, ok)
	}
	s.Abort()
	if _, ok := s.Get("a"); ok {
		t.Fatal("aborted write visible")
	}
	s.Put("a", 1)
	s.Put("b", 2)
	s.Commit()
	s.Delete("a")
	var log []string
	s.Changes(func(k string, v []byte) { log = append(log, k+":"+string(rune('0'+len(v)))) })
	if len(log) != 1 || log[0] != "a:0" {
		t.Fatalf("changes = %v, want [a:0] (a tombstone)", log)
	}
	s.Commit()
	if s.Len() != 1 {
		t.Fatalf("len = %d, want 1", s.Len())
	}
	r := stream.NewStore[int64]("r", stream.Int64Codec{})
	if err := r.Restore("b", stream.Int64Codec{}.Encode(nil, 2)); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore("x", []byte{1}); err == nil {
		t.Fatal("restore of a short value did not fail")
	}
	if v, _ := r.Get("b"); v != 2 {
		t.Fatalf("restored b = %d", v)
	}
}

// TestDedupAddAfterContains: Add after Contains reported an id absent (the clean stage's
// way) keeps the same state and answers as Seen there, over random ids, times and
// sweeps, with ULID keys packed on one side only.
func TestDedupAddAfterContains(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	seen := stream.NewDedup(stream.NewStore[int64]("dedup", stream.Int64Codec{}), time.Minute)
	added := stream.NewDedup(stream.NewStore[int64]("dedup", stream.Int64Codec{}).PackKeys(stream.ULIDKeys{}), time.Minute)
	ids := []string{"a", "b", "c", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "01BX5ZZKBKACTAV9WEVGEMMVRZ", "d"}
	ts := int64(0)
	for step := range 20000 {
		id := ids[r.IntN(len(ids))]
		ts += r.Int64N(5000) - 1000 // mostly forward, sometimes late
		want := seen.Contains(id, ts)
		if !want && seen.Seen(id, ts) {
			t.Fatalf("step %d: Seen found %s that Contains did not", step, id)
		}
		got := added.Contains(id, ts)
		if !got {
			added.Add(id, ts)
		}
		if got != want {
			t.Fatalf("step %d: %s at %d: Contains = %v, want %v", step, id, ts, got, want)
		}
		if r.IntN(10) == 0 {
			seen.Store().Commit()
			added.Store().Commit()
		}
		if seen.Store().Len() != added.Store().Len() || seen.Watermark() != added.Watermark() {
			t.Fatalf("step %d: state differs: %d/%d keys, watermark %d/%d", step,
				seen.Store().Len(), added.Store().Len(), seen.Watermark(), added.Watermark())
		}
	}
}

func TestStoreConformanceMemory(t *testing.T) {
	storetest.Run(t, func(*testing.T) *stream.Store[int64] {
		return stream.NewStore[int64]("s", stream.Int64Codec{})
	})
}

// TestDedupExpiryBounded: 1,000,000 ids expire with no transaction carrying more than
// 10,000 tombstones, and the answers for ids at and 1 ms past the horizon stay exact.
func TestDedupExpiryBounded(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	storetest.DedupExpiry(t, func(*testing.T) *stream.Store[int64] {
		return stream.NewStore[int64]("dedup", stream.Int64Codec{})
	}, n, 10_000)
}
