package stream

import "sort"

// memory is the in-memory Backend: Go maps, restored in full from the changelog on each
// assignment. With a KeyPacker, committed keys it packs live in packed instead of
// committed: fixed-size keys without pointers, which the garbage collector does not scan
// and which hash and compare faster. Nothing outside the Store can tell.
type memory[V any] struct {
	committed map[string]V
	pack      KeyPacker
	packed    map[PackedKey]V

	// The expiry index (IndexExpiry): bucket number -> keys whose expiry fell in it when
	// written. A renewed or deleted key leaves a stale entry behind, which ScanExpired
	// drops when it reaches it; each bucket counts its live keys, and goes with the last.
	exp     func(V) int64
	width   int64
	buckets map[int64]*memBucket
	order   []int64 // bucket numbers, ascending
	cursor  memCursor
}

type memBucket struct {
	packed []PackedKey
	keys   []string
	live   int // keys whose committed expiry is in this bucket (the rest are stale)
}

// memCursor is where ScanExpired resumes within a transaction: the bucket it is in and
// how many entries at the tail of each slice it has visited (it walks from the tail).
type memCursor struct {
	bucket     int64
	started    bool
	packedDone int
	keysDone   int
}

var _ Backend[int64] = (*memory[int64])(nil)

func newMemory[V any]() *memory[V] {
	return &memory[V]{committed: make(map[string]V)}
}

// PackKeys implements the Store's PackKeys.
func (m *memory[V]) PackKeys(p KeyPacker) {
	m.pack, m.packed = p, make(map[PackedKey]V)
}

func (m *memory[V]) get(k string) (V, bool) {
	if m.pack != nil {
		if p, ok := m.pack.Pack(k); ok {
			v, ok := m.packed[p]
			return v, ok
		}
	}
	v, ok := m.committed[k]
	return v, ok
}

func (m *memory[V]) set(k string, v V) {
	if m.pack != nil {
		if p, ok := m.pack.Pack(k); ok {
			if m.exp == nil {
				m.packed[p] = v
				return
			}
			old, had := m.packed[p]
			m.packed[p] = v
			if b := m.reindex(old, had, v); b != nil {
				b.packed = append(b.packed, p)
			}
			return
		}
	}
	if m.exp == nil {
		m.committed[k] = v
		return
	}
	old, had := m.committed[k]
	m.committed[k] = v
	if b := m.reindex(old, had, v); b != nil {
		b.keys = append(b.keys, k)
	}
}

// reindex moves a key's live count from the bucket of old (if had) to the bucket of v,
// and returns the bucket its entry must be appended to, or nil when it already has one.
func (m *memory[V]) reindex(old V, had bool, v V) *memBucket {
	n := bucketOf(m.exp(v), m.width)
	if had {
		o := bucketOf(m.exp(old), m.width)
		if o == n {
			return nil
		}
		m.unindex(o)
	}
	b := m.bucket(n)
	b.live++
	return b
}

// unindex takes one live key off bucket n; a bucket with none left goes (its entries
// are all stale).
func (m *memory[V]) unindex(n int64) {
	b := m.buckets[n]
	if b.live--; b.live > 0 {
		return
	}
	delete(m.buckets, n)
	i := sort.Search(len(m.order), func(i int) bool { return m.order[i] >= n })
	m.order = append(m.order[:i], m.order[i+1:]...)
}

func (m *memory[V]) del(k string) {
	if m.pack != nil {
		if p, ok := m.pack.Pack(k); ok {
			if m.exp != nil {
				if old, had := m.packed[p]; had {
					m.unindex(bucketOf(m.exp(old), m.width))
				}
			}
			delete(m.packed, p)
			return
		}
	}
	if m.exp != nil {
		if old, had := m.committed[k]; had {
			m.unindex(bucketOf(m.exp(old), m.width))
		}
	}
	delete(m.committed, k)
}

func (m *memory[V]) apply(w map[string]Write[V]) {
	for k, w := range w {
		if w.Deleted {
			m.del(k)
		} else {
			m.set(k, w.V)
		}
	}
}

func (m *memory[V]) Get(k string) (V, bool, error) {
	v, ok := m.get(k)
	return v, ok, nil
}

func (m *memory[V]) Len() int { return len(m.committed) + len(m.packed) }

func (m *memory[V]) Range(fn func(k string, v V) bool) error {
	for k, v := range m.committed {
		if !fn(k, v) {
			return nil
		}
	}
	for p, v := range m.packed {
		if !fn(m.pack.Unpack(p), v) {
			return nil
		}
	}
	return nil
}

func (m *memory[V]) Apply(w map[string]Write[V], _ int64) error {
	m.apply(w)
	return nil
}

func (m *memory[V]) Restore(k string, v V, raw []byte) error {
	if raw == nil {
		m.del(k)
	} else {
		m.set(k, v)
	}
	return nil
}

func (m *memory[V]) Checkpoint() (int64, bool) { return 0, false }

func (m *memory[V]) Wipe() error {
	clear(m.committed)
	clear(m.packed)
	if m.exp != nil {
		m.buckets, m.order = make(map[int64]*memBucket), nil
	}
	m.ResetScan()
	return nil
}

func (m *memory[V]) Close() error { return nil }

func (m *memory[V]) IndexExpiry(exp func(V) int64, width int64) error {
	m.exp, m.width, m.buckets, m.order = exp, width, make(map[int64]*memBucket), nil
	for k, v := range m.committed {
		b := m.bucket(bucketOf(exp(v), width))
		b.live++
		b.keys = append(b.keys, k)
	}
	for p, v := range m.packed {
		b := m.bucket(bucketOf(exp(v), width))
		b.live++
		b.packed = append(b.packed, p)
	}
	return nil
}

// bucketOf is the bucket number of expiry e (floor division: expiries may be negative).
func bucketOf(e, width int64) int64 {
	b := e / width
	if e%width != 0 && e < 0 {
		b--
	}
	return b
}

// bucket returns bucket n, made if new.
func (m *memory[V]) bucket(n int64) *memBucket {
	if b, ok := m.buckets[n]; ok {
		return b
	}
	b := &memBucket{}
	m.buckets[n] = b
	i := sort.Search(len(m.order), func(i int) bool { return m.order[i] >= n })
	m.order = append(m.order, 0)
	copy(m.order[i+1:], m.order[i:])
	m.order[i] = n
	return b
}

func (m *memory[V]) ResetScan() { m.cursor = memCursor{} }

// ScanExpired walks the due buckets from the cursor, each bucket's slices from the
// tail; a stale entry (key gone, or renewed into another bucket) is overwritten with the
// slice's last entry (already visited) and the slice shortened, so the walk stays
// O(entries).
func (m *memory[V]) ScanExpired(before int64, fn func(k string) bool) error {
	if m.exp == nil {
		return nil
	}
	last := bucketOf(before, m.width) // buckets < last end at or before before
	for len(m.order) > 0 {
		i := 0
		if m.cursor.started {
			i = sort.Search(len(m.order), func(i int) bool { return m.order[i] >= m.cursor.bucket })
		}
		if i == len(m.order) || m.order[i] >= last {
			return nil
		}
		n := m.order[i]
		if !m.cursor.started || m.cursor.bucket != n {
			m.cursor = memCursor{bucket: n, started: true}
		}
		b := m.buckets[n]
		if !m.scanBucket(n, b, fn) {
			return nil
		}
		// Next bucket: the cursor points past n.
		m.cursor = memCursor{bucket: n + 1, started: true}
	}
	return nil
}

// scanBucket offers bucket n's live entries not yet visited; false when fn stopped.
func (m *memory[V]) scanBucket(n int64, b *memBucket, fn func(k string) bool) bool {
	for len(b.packed) > m.cursor.packedDone {
		i := len(b.packed) - 1 - m.cursor.packedDone
		p := b.packed[i]
		v, ok := m.packed[p]
		if !ok || bucketOf(m.exp(v), m.width) != n {
			// Stale: move the last visited entry (or this one, if none) here.
			last := len(b.packed) - 1
			b.packed[i] = b.packed[last]
			b.packed = b.packed[:last]
			continue
		}
		m.cursor.packedDone++
		if !fn(m.pack.Unpack(p)) {
			return false
		}
	}
	for len(b.keys) > m.cursor.keysDone {
		i := len(b.keys) - 1 - m.cursor.keysDone
		k := b.keys[i]
		v, ok := m.committed[k]
		if !ok || bucketOf(m.exp(v), m.width) != n {
			last := len(b.keys) - 1
			b.keys[i] = b.keys[last]
			b.keys[last] = ""
			b.keys = b.keys[:last]
			continue
		}
		m.cursor.keysDone++
		if !fn(k) {
			return false
		}
	}
	return true
}

func (m *memory[V]) ExpiryBacklog(before int64) int {
	last := bucketOf(before, m.width)
	n := 0
	for _, b := range m.order {
		if b >= last {
			break
		}
		n += m.buckets[b].live
	}
	return n
}
