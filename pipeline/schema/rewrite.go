package schema

import (
	"fmt"
	"math/big"
	"reflect"
	"time"

	"github.com/hamba/avro/v2"
)

// This file bridges Avro-native values and what hamba/avro's generic (map[string]any)
// codecs produce and accept: hamba wraps union values below the top level as
// {"<type>": value}, holds fixed as [N]byte, and picks a union branch from the Go type
// alone. Both walks only descend into subtrees whose flags say they need it.

// normTop rewrites, in place, the top-level fields of a freshly decoded record.
func (rc *recordConv) normTop(m map[string]any) {
	for _, i := range rc.topNorm {
		f := &rc.fields[i]
		if v, ok := m[f.name]; ok {
			m[f.name] = f.conv.normalize(v)
		}
	}
}

// norm turns a value decoded by hamba into its Avro-native form.
func (c *converter) normalize(v any) any {
	if !c.needNorm {
		return v
	}
	switch c.kind {
	case kindUnion:
		if w, ok := v.(map[string]any); ok && len(w) == 1 {
			for k, inner := range w {
				for i, n := range c.names {
					if k == n {
						return c.branches[i].normalize(inner)
					}
				}
			}
		}
		// Not wrapped: hamba resolved the branch itself, so it is a plain primitive.
		return v
	case kindFixed:
		if b, ok := decodeBytes(v, c.size); ok {
			return b
		}
	case kindRecord:
		if m, ok := v.(map[string]any); ok {
			for i := range c.rec.fields {
				f := &c.rec.fields[i]
				if e, ok := m[f.name]; ok && f.needNorm {
					m[f.name] = f.conv.normalize(e)
				}
			}
		}
	case kindArray:
		if a, ok := v.([]any); ok {
			for i := range a {
				a[i] = c.items.normalize(a[i])
			}
		}
	case kindMap:
		if m, ok := v.(map[string]any); ok {
			for k, e := range m {
				m[k] = c.items.normalize(e)
			}
		}
	}
	return v
}

// prepare copies a record for hamba: union values wrapped, fixed as [N]byte and, if
// coerce, near-miss Go types converted. Missing fields stay missing (hamba fills
// defaults); keys that are not fields are dropped.
func (rc *recordConv) prepare(in map[string]any, coerce bool) (map[string]any, error) {
	out := make(map[string]any, len(rc.fields))
	for i := range rc.fields {
		f := &rc.fields[i]
		v, ok := in[f.name]
		if !ok {
			continue
		}
		if v == nil && f.hasDef && !acceptsNull(f.conv) {
			continue // like FromJSON: null takes the default
		}
		pv, err := f.conv.prepare(v, coerce)
		if err != nil {
			return nil, prefixErr(f.name, err)
		}
		out[f.name] = pv
	}
	return out, nil
}

// prepare rewrites one value for hamba; see recordConv.prepare.
func (c *converter) prepare(v any, coerce bool) (any, error) {
	if !c.needPrep && !coerce {
		return v, nil
	}
	switch c.kind {
	case kindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s, got %T", c.msg, v)
		}
		return c.rec.prepare(m, coerce)
	case kindArray:
		a, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s, got %T", c.msg, v)
		}
		out := make([]any, len(a))
		for i, e := range a {
			pe, err := c.items.prepare(e, coerce)
			if err != nil {
				return nil, prefixErr(fmt.Sprintf("[%d]", i), err)
			}
			out[i] = pe
		}
		return out, nil
	case kindMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s, got %T", c.msg, v)
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			pe, err := c.items.prepare(e, coerce)
			if err != nil {
				return nil, prefixErr(k, err)
			}
			out[k] = pe
		}
		return out, nil
	case kindUnion:
		return c.prepareUnion(v, coerce)
	case kindFixed:
		b, ok := decodeBytes(v, c.size)
		if !ok {
			return nil, fmt.Errorf("%s, got %T", c.msg, v)
		}
		arr := reflect.New(reflect.ArrayOf(c.size, reflect.TypeFor[byte]())).Elem()
		reflect.Copy(arr, reflect.ValueOf(b))
		return arr.Interface(), nil
	case kindOpaque, kindNull:
		return v, nil
	}
	if !coerce {
		return v, nil
	}
	out, msg := c.scalar(v)
	if msg != "" {
		return nil, fmt.Errorf("%s, got %T", msg, v)
	}
	return out, nil
}

// prepareUnion picks the branch for v by its Go type (else, if coerce, the first branch
// v converts to) and wraps the value as {"<type>": value}, which hamba always accepts.
func (c *converter) prepareUnion(v any, coerce bool) (any, error) {
	if v == nil {
		if !c.nullable {
			return nil, fmt.Errorf("%s, got null", c.msg)
		}
		return nil, nil
	}
	idx := -1
	for i, b := range c.branches {
		if b.holds(v) {
			idx = i
			break
		}
	}
	if idx < 0 && coerce {
		for i, b := range c.branches {
			if b.kind == kindNull {
				continue
			}
			if _, msg := b.scalar(v); msg == "" && !isComposite(b.kind) {
				idx = i
				break
			}
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("%s, got %T", c.msg, v)
	}
	pv, err := c.branches[idx].prepare(v, coerce)
	if err != nil {
		return nil, err
	}
	return map[string]any{c.names[idx]: pv}, nil
}

// holds reports whether v is an Avro-native value of c's kind, exactly as hamba
// encodes it.
func (c *converter) holds(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		return c.kind == kindRecord || c.kind == kindMap
	case []any:
		return c.kind == kindArray
	case string:
		if c.kind == kindEnum {
			for _, s := range c.symbols {
				if s == x {
					return true
				}
			}
		}
		return c.kind == kindString
	case []byte:
		return c.kind == kindBytes || (c.kind == kindFixed && len(x) == c.size)
	case bool:
		return c.kind == kindBool
	case time.Duration:
		return c.kind == kindTimeMillis || c.kind == kindTimeMicros
	case int, int8, int16, int32, uint8, uint16:
		return c.kind == kindInt || c.kind == kindLong
	case int64, uint32:
		return c.kind == kindLong
	case float32:
		return c.kind == kindFloat || c.kind == kindDouble
	case float64:
		return c.kind == kindDouble
	case time.Time:
		return c.kind == kindTimestamp || c.kind == kindDate
	case *big.Rat:
		return c.kind == kindDecimal
	case avro.LogicalDuration:
		return c.kind == kindOpaque
	}
	if c.kind == kindFixed {
		rv := reflect.ValueOf(v)
		return rv.Kind() == reflect.Array && rv.Type().Elem().Kind() == reflect.Uint8 && rv.Len() == c.size
	}
	return false
}

// prefixErr puts a field name or index in front of a nested encode error.
func prefixErr(name string, err error) error {
	return fmt.Errorf("%s: %w", name, err)
}
