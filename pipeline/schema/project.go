package schema

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/hamba/avro/v2"
)

// Projection names the top-level fields a reader needs from a record. The repartition
// and aggregate stages read three or four fields of every clean record (event_time, the
// group and the measured fields); DecodeProjected skips the others instead of building
// strings and map entries for them. A Projection is safe for concurrent use.
type Projection struct {
	fields []string
	// plans caches, per writer schema, which top-level fields to keep.
	plans sync.Map // *writerSchema -> []bool
}

// NewProjection returns the projection onto fields (top-level field names; unknown
// names are ignored).
func NewProjection(fields ...string) *Projection {
	return &Projection{fields: slices.Clone(fields)}
}

// Fields lists the projected field names.
func (p *Projection) Fields() []string { return slices.Clone(p.fields) }

// plan returns which of ws's top-level fields p keeps.
func (p *Projection) plan(ws *writerSchema) []bool {
	if v, ok := p.plans.Load(ws); ok {
		return v.([]bool)
	}
	keep := make([]bool, len(ws.root.rec.fields))
	for i := range ws.root.rec.fields {
		keep[i] = slices.Contains(p.fields, ws.root.rec.fields[i].name)
	}
	p.plans.Store(ws, keep)
	return keep
}

// DecodeProjected is Decode for a reader that needs only p's fields: the map holds every
// projected field the writer schema has, with the values Decode would give, and may hold
// others (schemas outside the fast path are decoded whole). The whole body is still
// checked the way Decode checks it: a record Decode rejects as malformed is rejected here
// too, with an error wrapping ErrMalformed. Errors are those of Decode.
func (r *Registry) DecodeProjected(ctx context.Context, b []byte, p *Projection) (map[string]any, int, error) {
	ws, id, body, err := r.framed(ctx, b)
	if err != nil {
		return nil, id, err
	}
	var m map[string]any
	if ws.fast {
		m, err = r.decodeProjected(ws, body, p.plan(ws))
	} else {
		m, err = r.decodeBody(ws, body)
	}
	if err != nil {
		return nil, id, fmt.Errorf("%w: schema id %d (%s): %v", ErrMalformed, id, ws.schema.FullName(), err)
	}
	return m, id, nil
}

// decodeProjected reads one body of a fast-decodable schema, keeping the fields of keep.
func (r *Registry) decodeProjected(ws *writerSchema, body []byte, keep []bool) (map[string]any, error) {
	n := 0
	for _, k := range keep {
		if k {
			n++
		}
	}
	return r.read(body, func(rd *avro.Reader) map[string]any {
		m := make(map[string]any, n)
		fields := ws.root.rec.fields
		for i := range fields {
			f := &fields[i]
			if keep[i] {
				v := f.conv.decodeFast(rd)
				if rd.Error != nil {
					break
				}
				m[f.name] = v
			} else if f.conv.skipFast(rd); rd.Error != nil {
				break
			}
		}
		return m
	})
}

// skipFast reads past one value of c's schema without building it, failing where
// decodeFast fails: negative or oversized lengths, unknown enum symbols and union
// branches, and a body that ends early.
func (c *converter) skipFast(r *avro.Reader) {
	switch c.kind {
	case kindNull:
	case kindBool:
		r.ReadBool() // ReadBool rejects bytes other than 0 and 1, SkipBool does not
	case kindInt:
		r.ReadInt() // ReadInt checks the varint's length, SkipInt does not
	case kindLong, kindTimestamp:
		r.ReadLong()
	case kindFloat:
		r.SkipFloat()
	case kindDouble:
		r.SkipDouble()
	case kindString, kindBytes:
		size := r.ReadLong()
		switch {
		case r.Error != nil:
		case size < 0:
			r.ReportError("Read"+lengthOp(c.kind), "invalid "+lengthOpLower(c.kind)+" length")
		case size > defaultMaxByteSliceSize:
			r.ReportError("Read"+lengthOp(c.kind), "size is greater than `Config.MaxByteSliceSize`")
		default:
			r.SkipNBytes(int(size))
		}
	case kindEnum:
		i := int(r.ReadInt())
		if r.Error == nil && (i < 0 || i >= len(c.symbols)) {
			r.ReportError("decode enum symbol", "unknown enum symbol")
		}
	case kindRecord:
		for i := range c.rec.fields {
			if c.rec.fields[i].conv.skipFast(r); r.Error != nil {
				return
			}
		}
	case kindUnion:
		i := int(r.ReadInt())
		if r.Error != nil {
			return
		}
		if i < 0 || i >= len(c.branches) {
			r.ReportError("decode union type", "unknown union type")
			return
		}
		c.branches[i].skipFast(r)
	default:
		r.ReportError("decode", "schema: no fast decoder for "+string(c.schema.Type()))
	}
}

// defaultMaxByteSliceSize is hamba/avro's default bound on one string or bytes value
// (the Registry's readers keep it), which skipFast enforces like ReadString does.
const defaultMaxByteSliceSize = 1 << 20

func lengthOp(k kind) string {
	if k == kindString {
		return "STRING"
	}
	return "BYTES"
}

func lengthOpLower(k kind) string {
	if k == kindString {
		return "string"
	}
	return "bytes"
}
