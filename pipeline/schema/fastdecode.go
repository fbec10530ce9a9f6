package schema

import (
	"time"

	"github.com/hamba/avro/v2"
)

// A reflection-free decoder for the common shapes of event records. hamba/avro's generic
// path (decoding into map[string]any) looks up a type converter and a codec in sync.Maps
// for every value and allocates through reflect2; profiles of the whole pipeline showed
// it at a quarter of all CPU, since the clean, repartition and aggregate stages each
// decode every record. decodeFast walks the compiled converter tree instead and reads
// with the same avro.Reader primitives (so the same limits and errors apply), producing
// exactly the values hamba's generic decoding plus normalize produce. Schemas with a
// node it does not handle (fixed, arrays, maps, decimals, dates, times, local
// timestamps) keep the hamba path; fastdecode_test.go compares both on every built-in
// schema and on corrupted bodies.

// fastDecodable reports whether decodeFast handles every node under c.
func fastDecodable(c *converter) bool {
	return fastKinds(c, false, map[*converter]bool{})
}

// fastKinds reports whether every node under c is of a kind the fast paths handle:
// scalars, enums, millisecond and microsecond timestamps, records, and unions. The
// encoder (encode true) handles only unions of null and one other branch.
func fastKinds(c *converter, encode bool, seen map[*converter]bool) bool {
	if seen[c] {
		return true // a recursive record: judged where it was first met
	}
	seen[c] = true
	switch c.kind {
	case kindNull, kindBool, kindInt, kindLong, kindFloat, kindDouble, kindString, kindBytes, kindEnum:
		return true
	case kindTimestamp:
		lt := logicalOf(c.schema)
		return lt == avro.TimestampMillis || lt == avro.TimestampMicros
	case kindRecord:
		for i := range c.rec.fields {
			if !fastKinds(c.rec.fields[i].conv, encode, seen) {
				return false
			}
		}
		return true
	case kindUnion:
		if encode {
			return c.single != nil && fastKinds(c.single, encode, seen)
		}
		for _, b := range c.branches {
			if !fastKinds(b, encode, seen) {
				return false
			}
		}
		return true
	}
	return false
}

// decodeFast reads one value of c's schema from r. On a malformed body it sets r.Error
// (through the Reader's own checks or ReportError) and returns nil.
func (c *converter) decodeFast(r *avro.Reader) any {
	switch c.kind {
	case kindNull:
		return nil
	case kindBool:
		return r.ReadBool()
	case kindInt:
		return int(r.ReadInt())
	case kindLong:
		return r.ReadLong()
	case kindFloat:
		return r.ReadFloat()
	case kindDouble:
		return r.ReadDouble()
	case kindString:
		return r.ReadString()
	case kindBytes:
		return r.ReadBytes()
	case kindEnum:
		i := int(r.ReadInt())
		if r.Error != nil {
			return nil
		}
		if i < 0 || i >= len(c.symbols) {
			r.ReportError("decode enum symbol", "unknown enum symbol")
			return nil
		}
		return c.symbols[i]
	case kindTimestamp:
		i := r.ReadLong()
		if c.unit == time.Millisecond {
			sec := i / 1e3
			return time.Unix(sec, (i-sec*1e3)*1e6).UTC()
		}
		sec := i / 1e6
		return time.Unix(sec, (i-sec*1e6)*1e3).UTC()
	case kindRecord:
		return c.rec.decodeFast(r)
	case kindUnion:
		i := int(r.ReadInt())
		if r.Error != nil {
			return nil
		}
		if i < 0 || i >= len(c.branches) {
			r.ReportError("decode union type", "unknown union type")
			return nil
		}
		return c.branches[i].decodeFast(r)
	}
	r.ReportError("decode", "schema: no fast decoder for "+string(c.schema.Type()))
	return nil
}

// decodeFast reads one record; it stops at the first error.
func (rc *recordConv) decodeFast(r *avro.Reader) map[string]any {
	return rc.decodeFastInto(r, nil)
}

// decodeFastInto reads one record into m (empty, or nil for a new map).
func (rc *recordConv) decodeFastInto(r *avro.Reader, m map[string]any) map[string]any {
	if m == nil {
		m = make(map[string]any, len(rc.fields)+1) // +1: room for the clean stage's processed_at
	}
	for i := range rc.fields {
		f := &rc.fields[i]
		v := f.conv.decodeFast(r)
		if r.Error != nil {
			return nil
		}
		m[f.name] = v
	}
	return m
}
