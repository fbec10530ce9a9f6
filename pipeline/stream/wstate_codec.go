package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// WindowStateCodec is the changelog codec of window state: a compact, deterministic
// binary format (equal states encode to equal bytes; distinct values are written
// sorted). Layout, version 1 (uvarint/varint as in encoding/binary; a string is a uvarint
// length and its bytes):
//
//	version byte (1)
//	uvarint n, n strings           group values
//	varint start, uvarint end-start
//	uvarint count, varint ingestTS, string eventID
//	uvarint n, n numeric accumulators: uvarint values; if values > 0: sum, min, max as
//	                                   8-byte big-endian float64 bits
//	uvarint n, n distinct sets:        uvarint size, size strings in strictly increasing order
//
// Decode accepts exactly that (no trailing bytes) and returns an error, never panics,
// on anything else.
type WindowStateCodec struct{}

var _ Codec[*WindowState] = WindowStateCodec{}

const wstateVersion = 1

// ErrBadWindowState is returned (wrapped) by WindowStateCodec.Decode for bytes that are
// not an encoded WindowState.
var ErrBadWindowState = errors.New("bad window state")

// Encode implements Codec. A nil state encodes as an empty one. Encode updates v's
// cache of sorted distinct values (distinct.go), so it must not run concurrently with
// anything else using v; the engine and its store run on one goroutine.
func (WindowStateCodec) Encode(dst []byte, v *WindowState) []byte {
	if v == nil {
		v = &WindowState{}
	}
	dst = append(dst, wstateVersion)
	dst = binary.AppendUvarint(dst, uint64(len(v.groupValues)))
	for _, s := range v.groupValues {
		dst = appendString(dst, s)
	}
	dst = binary.AppendVarint(dst, v.start)
	dst = binary.AppendUvarint(dst, uint64(v.end)-uint64(v.start))
	dst = binary.AppendUvarint(dst, uint64(v.count))
	dst = binary.AppendVarint(dst, v.ingestTS)
	dst = appendString(dst, v.eventID)
	dst = binary.AppendUvarint(dst, uint64(len(v.num)))
	for _, acc := range v.num {
		dst = binary.AppendUvarint(dst, uint64(acc.n))
		if acc.n > 0 {
			dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(acc.sum))
			dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(acc.min))
			dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(acc.max))
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(v.dist)))
	for i, set := range v.dist {
		dst = binary.AppendUvarint(dst, uint64(len(set)))
		for _, k := range v.distinctSorted(i) {
			dst = appendString(dst, k)
		}
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Decode implements Codec.
func (WindowStateCodec) Decode(b []byte) (*WindowState, error) {
	r := wreader{b: b}
	if v := r.byte(); r.err == nil && v != wstateVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadWindowState, v, wstateVersion)
	}
	v := &WindowState{}
	if n := r.count(); n > 0 {
		v.groupValues = make([]string, n)
		for i := range v.groupValues {
			v.groupValues[i] = r.string()
		}
	}
	v.start = r.varint()
	if d := r.uvarint(); d > uint64(math.MaxInt64)-uint64(v.start) {
		r.fail("window end overflows")
	} else {
		v.end = int64(uint64(v.start) + d)
	}
	if c := r.uvarint(); c > math.MaxInt64 {
		r.fail("count overflows")
	} else {
		v.count = int64(c)
	}
	v.ingestTS = r.varint()
	v.eventID = r.string()
	if n := r.count(); n > 0 {
		v.num = make([]numAcc, n)
		for i := range v.num {
			c := r.uvarint()
			if c > math.MaxInt64 {
				r.fail("value count overflows")
			}
			acc := &v.num[i]
			acc.n = int64(c)
			if c > 0 {
				acc.sum, acc.min, acc.max = r.float(), r.float(), r.float()
			}
		}
	}
	if n := r.count(); n > 0 {
		v.dist = make([]map[string]struct{}, n)
		for i := range v.dist {
			m := r.count()
			if m == 0 {
				continue
			}
			set := make(map[string]struct{}, m)
			prev := ""
			for j := range m {
				k := r.string()
				if r.err != nil {
					break
				}
				if j > 0 && k <= prev {
					r.fail("distinct values not strictly increasing")
					break
				}
				set[k], prev = struct{}{}, k
			}
			v.dist[i] = set
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail(fmt.Sprintf("%d trailing bytes", len(r.b)))
	}
	if r.err != nil {
		return nil, r.err
	}
	return v, nil
}

// wreader reads the codec's primitives; after the first error every read returns zero.
type wreader struct {
	b   []byte
	err error
}

func (r *wreader) fail(msg string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrBadWindowState, msg)
	}
	r.b = nil
}

func (r *wreader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *wreader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wreader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a collection length; every element takes at least one byte, so a length
// beyond the remaining bytes is garbage (and never triggers a huge allocation).
func (r *wreader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("length exceeds input")
		return 0
	}
	return int(n)
}

func (r *wreader) string() string {
	n := r.count()
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *wreader) float() float64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail("truncated float")
		return 0
	}
	f := math.Float64frombits(binary.BigEndian.Uint64(r.b))
	r.b = r.b[8:]
	return f
}
