package stream

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
)

func TestULIDKeysRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		var id ulid.ULID
		for i := range id {
			id[i] = byte(r.Uint32())
		}
		k := id.String()
		p, ok := ULIDKeys{}.Pack(k)
		if !ok {
			t.Fatalf("Pack refused canonical ULID %s", k)
		}
		if got := (ULIDKeys{}).Unpack(p); got != k {
			t.Fatalf("Unpack(Pack(%s)) = %s", k, got)
		}
		if _, ok := (ULIDKeys{}).Pack(strings.ToLower(k)); ok && strings.ToLower(k) != k {
			t.Fatalf("Pack accepted lower-case %s", strings.ToLower(k))
		}
	}
	for _, k := range []string{"", "x", "01ARZ3NDEKTSV4RRFFQ69G5FA", "01ARZ3NDEKTSV4RRFFQ69G5FAVX",
		"81ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAI", "01ARZ3NDEKTSV4RRFFQ69G5FA-",
		"01arz3ndektsv4rrffq69g5fav", "01ARZ3NDEKTSV4RRFFQ69G5FAÉ"} {
		if _, ok := (ULIDKeys{}).Pack(k); ok {
			t.Errorf("Pack accepted %q", k)
		}
	}
}

// storeView is everything a Store shows from outside.
type storeView struct {
	Len     int
	Live    map[string]int64 // by Range
	Gets    map[string]int64 // by Get, for every key of the test
	Changes [][2]any
	Dirty   bool
}

func viewOf(s *Store[int64], keys []string) storeView {
	v := storeView{Len: s.Len(), Live: map[string]int64{}, Gets: map[string]int64{}, Dirty: s.Dirty()}
	s.Range(func(k string, x int64) bool { v.Live[k] = x; return true })
	for _, k := range keys {
		if x, ok := s.Get(k); ok {
			v.Gets[k] = x
		}
	}
	s.Changes(func(k string, b []byte) { v.Changes = append(v.Changes, [2]any{k, string(b)}) })
	return v
}

// TestPackedStoreBehavesAsPlain runs the same random operations on a store with packed
// keys and one without, over canonical ULIDs, lower-case ULIDs and other keys, and
// compares everything a store shows after each.
func TestPackedStoreBehavesAsPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var keys []string
	for i := range 40 {
		var id ulid.ULID
		for j := range id {
			id[j] = byte(r.Uint32())
		}
		switch i % 4 {
		case 0, 1:
			keys = append(keys, id.String())
		case 2:
			keys = append(keys, strings.ToLower(id.String()))
		default:
			keys = append(keys, "evt-"+id.String()[:8])
		}
	}
	plain := NewStore[int64]("dedup", Int64Codec{})
	packed := NewStore[int64]("dedup", Int64Codec{}).PackKeys(ULIDKeys{})
	for step := range 5000 {
		k := keys[r.IntN(len(keys))]
		v := r.Int64N(1000)
		var op string
		switch n := r.IntN(100); {
		case n < 40:
			op = "put"
			plain.Put(k, v)
			packed.Put(k, v)
		case n < 55:
			op = "delete"
			plain.Delete(k)
			packed.Delete(k)
		case n < 65:
			op = "commit"
			plain.Commit()
			packed.Commit()
		case n < 70:
			op = "abort"
			plain.Abort()
			packed.Abort()
		case n < 85:
			op = "restore"
			var b []byte
			if r.IntN(4) > 0 {
				b = Int64Codec{}.Encode(nil, v)
			}
			if err1, err2 := plain.Restore(k, b), packed.Restore(k, b); (err1 == nil) != (err2 == nil) {
				t.Fatalf("step %d restore %s: %v vs %v", step, k, err1, err2)
			}
		default:
			op = "sweep"
			for _, s := range []*Store[int64]{plain, packed} {
				s.Range(func(k string, x int64) bool {
					if x < 300 {
						s.Delete(k)
					}
					return true
				})
			}
		}
		if a, b := viewOf(plain, keys), viewOf(packed, keys); !reflect.DeepEqual(a, b) {
			t.Fatalf("step %d (%s %s): plain store shows %+v, packed %+v", step, op, k, a, b)
		}
	}
	if m := packed.mem; packed.Len() == 0 || len(m.packed) == 0 || len(m.committed) == 0 {
		t.Fatalf("the test never filled both maps: %d packed, %d strings", len(m.packed), len(m.committed))
	}
}
