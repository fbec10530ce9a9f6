package schema

import (
	"math/big"
	"sort"
)

// FromJSON converts one decoded JSON object (values as produced by a JSON decoder with
// UseNumber: string, json.Number or float64, bool, nil, []any, map[string]any) to
// Avro-native values for c.Schema: ints and longs must be integral and in range,
// timestamp-millis accepts RFC 3339 strings or integer millis, enums must be a symbol,
// missing fields take their default or are an error. Unknown fields are an error. Every
// problem is reported in a *ValidationError; FromJSON never panics.
//
// Details: Avro-native values (int, int64, time.Time, []byte...) are accepted as well, so
// generators may pass Go values; a null for a field whose type has no null takes the
// field's default if it has one; bytes and fixed are base64 strings; a union takes the
// first branch that fits the value, or the Avro JSON form {"<type>": value}. Timestamps
// are truncated to the schema's precision and returned in UTC. in is not modified.
func (c *Codec) FromJSON(in map[string]any) (map[string]any, error) {
	st, err := c.state()
	if err != nil {
		return nil, err
	}
	var errs []FieldError
	out := st.root.rec.convert(in, "", &errs)
	if len(errs) > 0 {
		return nil, &ValidationError{Fields: errs}
	}
	return out, nil
}

// convert converts a JSON value for c, appending problems to errs under path.
func (c *converter) convert(v any, path string, errs *[]FieldError) any {
	switch c.kind {
	case kindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return c.fail(path, errs)
		}
		return c.rec.convert(m, path, errs)
	case kindArray:
		a, ok := v.([]any)
		if !ok {
			return c.fail(path, errs)
		}
		out := make([]any, len(a))
		for i, e := range a {
			out[i] = c.items.convert(e, indexPath(path, i), errs)
		}
		return out
	case kindMap:
		m, ok := v.(map[string]any)
		if !ok {
			return c.fail(path, errs)
		}
		out := make(map[string]any, len(m))
		for _, k := range sortedKeys(m) {
			out[k] = c.items.convert(m[k], joinPath(path, k), errs)
		}
		return out
	case kindUnion:
		return c.convertUnion(v, path, errs)
	}
	out, msg := c.scalar(v)
	if msg != "" {
		*errs = append(*errs, FieldError{Field: path, Message: msg})
		return nil
	}
	return out
}

// fail records that v is not what c.msg asks for.
func (c *converter) fail(path string, errs *[]FieldError) any {
	*errs = append(*errs, FieldError{Field: path, Message: c.msg})
	return nil
}

// convert converts a JSON object to a record: fields in schema order, defaults filled,
// unknown fields reported in name order after the known ones.
func (rc *recordConv) convert(in map[string]any, path string, errs *[]FieldError) map[string]any {
	out := make(map[string]any, len(rc.fields))
	seen := 0
	for i := range rc.fields {
		f := &rc.fields[i]
		fpath := f.name
		if path != "" {
			fpath = path + "." + f.name
		}
		v, ok := in[f.name]
		if ok {
			seen++
		}
		if !ok || (v == nil && f.hasDef && !acceptsNull(f.conv)) {
			switch {
			case f.hasDef && f.defShared:
				out[f.name] = f.def
			case f.hasDef:
				out[f.name] = cloneValue(f.def)
			default:
				*errs = append(*errs, FieldError{Field: fpath, Message: "is required"})
			}
			continue
		}
		out[f.name] = f.conv.convert(v, fpath, errs)
	}
	if seen < len(in) {
		var unknown []string
		for k := range in {
			if _, ok := rc.index[k]; !ok {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		for _, k := range unknown {
			*errs = append(*errs, FieldError{Field: joinPath(path, k), Message: "unknown field"})
		}
	}
	return out
}

// acceptsNull reports whether null is a valid value of c.
func acceptsNull(c *converter) bool {
	return c.kind == kindNull || (c.kind == kindUnion && c.nullable)
}

// convertUnion picks the branch for v: null, the only other branch of a nullable union,
// else the first branch v fits, else the Avro JSON form {"<type name>": value}.
func (c *converter) convertUnion(v any, path string, errs *[]FieldError) any {
	if v == nil {
		if c.nullable {
			return nil
		}
		return c.fail(path, errs)
	}
	if b := c.single; b != nil {
		if isComposite(b.kind) && b.shapeOK(v) {
			var bErrs []FieldError
			out := b.convert(v, path, &bErrs)
			if len(bErrs) == 0 {
				return out
			}
			if i, inner, ok := c.unwrap(v); ok {
				return c.branches[i].convert(inner, path, errs)
			}
			*errs = append(*errs, bErrs...)
			return nil
		}
		if !isComposite(b.kind) {
			out, msg := b.scalar(v)
			if msg == "" {
				return out
			}
			if i, inner, ok := c.unwrap(v); ok {
				return c.branches[i].convert(inner, path, errs)
			}
			*errs = append(*errs, FieldError{Field: path, Message: msg + " or null"})
			return nil
		}
		if i, inner, ok := c.unwrap(v); ok {
			return c.branches[i].convert(inner, path, errs)
		}
		return c.fail(path, errs)
	}
	var firstErrs []FieldError
	for _, b := range c.branches {
		switch {
		case b.kind == kindNull:
			continue
		case isComposite(b.kind):
			if !b.shapeOK(v) {
				continue
			}
			var bErrs []FieldError
			out := b.convert(v, path, &bErrs)
			if len(bErrs) == 0 {
				return out
			}
			if firstErrs == nil {
				firstErrs = bErrs
			}
		default:
			if out, msg := b.scalar(v); msg == "" {
				return out
			}
		}
	}
	if i, inner, ok := c.unwrap(v); ok {
		return c.branches[i].convert(inner, path, errs)
	}
	if firstErrs != nil {
		*errs = append(*errs, firstErrs...)
		return nil
	}
	return c.fail(path, errs)
}

// unwrap recognises the Avro JSON encoding of a union value, {"<type name>": value},
// and returns the branch it names. Full names, short names and plain type names
// ("long" for a timestamp) are all accepted.
func (c *converter) unwrap(v any) (int, any, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return 0, nil, false
	}
	for k, inner := range m {
		for i, b := range c.branches {
			if k == c.names[i] || k == string(b.schema.Type()) || k == shortName(c.names[i]) {
				return i, inner, true
			}
		}
	}
	return 0, nil, false
}

// isComposite reports whether values of k hold other values.
func isComposite(k kind) bool {
	return k == kindRecord || k == kindArray || k == kindMap || k == kindUnion
}

// shapeOK reports whether v has the Go shape of a composite kind.
func (c *converter) shapeOK(v any) bool {
	switch c.kind {
	case kindRecord, kindMap:
		_, ok := v.(map[string]any)
		return ok
	case kindArray:
		_, ok := v.([]any)
		return ok
	}
	return true
}

// shortName strips the namespace from a full name.
func shortName(full string) string {
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '.' {
			return full[i+1:]
		}
	}
	return full
}

// sortedKeys returns the keys of m in order, so that errors come out deterministically.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// cloneValue deep-copies maps, slices and byte slices, so a shared default is never
// aliased by two outputs.
func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = cloneValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	case []byte:
		return append([]byte(nil), x...)
	case *big.Rat:
		return new(big.Rat).Set(x)
	}
	return v
}
