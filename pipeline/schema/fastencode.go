package schema

import (
	"math"
	"time"

	"github.com/hamba/avro/v2"
)

// A reflection-free encoder for the common case: a record whose values already have
// exactly the Go types the schema asks for (what FromJSON, Decode and the stages
// produce). It writes with avro.Writer's primitives, bypassing hamba's per-value codec
// lookups and the copy prepare makes for unions. Anything else — a near-miss type, a
// missing field without a default, a union that is not [null, T], a kind it does not
// handle — makes it give up, and AppendEncode runs the hamba path as before, so results
// and error messages are unchanged. fastencode_test.go compares both byte for byte.

// fastEncodable reports whether encodeFast can handle every node under c.
func fastEncodable(c *converter) bool {
	return fastKinds(c, true, map[*converter]bool{})
}

// encodeFast writes v; false means "not the common case": the caller discards what was
// written and takes the hamba path.
func (c *converter) encodeFast(w *avro.Writer, v any) bool {
	switch c.kind {
	case kindNull:
		return v == nil
	case kindBool:
		b, ok := v.(bool)
		if ok {
			w.WriteBool(b)
		}
		return ok
	case kindInt:
		switch n := v.(type) {
		case int:
			if n < math.MinInt32 || n > math.MaxInt32 {
				return false
			}
			w.WriteInt(int32(n))
			return true
		case int32:
			w.WriteInt(n)
			return true
		}
		return false
	case kindLong:
		switch n := v.(type) {
		case int64:
			w.WriteLong(n)
			return true
		case int:
			w.WriteLong(int64(n))
			return true
		}
		return false
	case kindFloat:
		f, ok := v.(float32)
		if ok {
			w.WriteFloat(f)
		}
		return ok
	case kindDouble:
		f, ok := v.(float64)
		if ok {
			w.WriteDouble(f)
		}
		return ok
	case kindString:
		s, ok := v.(string)
		if ok {
			w.WriteString(s)
		}
		return ok
	case kindBytes:
		b, ok := v.([]byte)
		if ok {
			w.WriteBytes(b)
		}
		return ok
	case kindEnum:
		s, ok := v.(string)
		if !ok {
			return false
		}
		for i, sym := range c.symbols {
			if sym == s {
				w.WriteInt(int32(i))
				return true
			}
		}
		return false
	case kindTimestamp:
		t, ok := v.(time.Time)
		if !ok {
			return false
		}
		if c.unit == time.Millisecond {
			w.WriteLong(t.Unix()*1e3 + int64(t.Nanosecond()/1e6))
		} else {
			w.WriteLong(t.Unix()*1e6 + int64(t.Nanosecond()/1e3))
		}
		return true
	case kindRecord:
		m, ok := v.(map[string]any)
		return ok && c.rec.encodeFast(w, m)
	case kindUnion:
		if c.single == nil {
			return false
		}
		for i, b := range c.branches {
			if v == nil && b.kind == kindNull {
				w.WriteInt(int32(i))
				return true
			}
			if v != nil && b == c.single {
				w.WriteInt(int32(i))
				return b.encodeFast(w, v)
			}
		}
	}
	return false
}

// encodeFast writes the fields of m in schema order; a missing field takes its default.
func (rc *recordConv) encodeFast(w *avro.Writer, m map[string]any) bool {
	for i := range rc.fields {
		f := &rc.fields[i]
		v, ok := m[f.name]
		if !ok {
			if !f.hasDef {
				return false
			}
			v = f.def
		}
		if !f.conv.encodeFast(w, v) {
			return false
		}
	}
	return true
}
