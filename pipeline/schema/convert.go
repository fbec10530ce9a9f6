package schema

import (
	"fmt"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

// kind is what a converter does with a value; logical types get their own kinds.
type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindInt
	kindLong
	kindFloat
	kindDouble
	kindString
	kindBytes
	kindEnum
	kindFixed
	kindArray
	kindMap
	kindRecord
	kindUnion
	kindTimestamp // timestamp-* and local-timestamp-*, unit says millis or micros
	kindDate
	kindTimeMillis
	kindTimeMicros
	kindDecimal
	kindOpaque // fixed duration: values pass through untouched
)

// converter is one schema node compiled for fast conversion of values. A converter tree
// is built once per Codec and only read afterwards, so it is safe for concurrent use.
type converter struct {
	kind   kind
	schema avro.Schema
	// msg says what a valid value is: "must be an integer".
	msg string

	unit    time.Duration // kindTimestamp: time.Millisecond or time.Microsecond
	symbols []string      // kindEnum
	size    int           // kindFixed, fixed decimals
	items   *converter    // kindArray, kindMap
	rec     *recordConv   // kindRecord

	// kindUnion
	branches []*converter // in schema order, null included
	names    []string     // typeName of each branch
	nullable bool
	single   *converter // the only non-null branch of a nullable union, else nil

	// needPrep: AppendEncode must rewrite values of this subtree before hamba sees them.
	needPrep bool
	// needNorm: Decode must rewrite values hamba returns for this subtree.
	needNorm bool
}

// recordConv is a compiled record.
type recordConv struct {
	name   string
	fields []fieldConv
	index  map[string]int
	// prep and norm: some field needs it.
	prep, norm bool
	// topNorm lists the fields Decode must rewrite when this is the top-level record.
	topNorm []int
}

// fieldConv is one compiled record field.
type fieldConv struct {
	name string
	conv *converter
	// hasDef: missing (or null, when the type has no null) takes def.
	hasDef bool
	def    any
	// defShared: def is immutable (a scalar) and may be shared by every output.
	defShared bool
	// needNorm: Decode must rewrite this field's values (see normalize).
	needNorm bool
}

// compiler builds converter trees; recs memoises records so recursive schemas terminate.
type compiler struct {
	recs map[*avro.RecordSchema]*converter
	all  []*converter
}

// compileRecord compiles a top-level record schema.
func compileRecord(rs *avro.RecordSchema) (*converter, error) {
	c := &compiler{recs: map[*avro.RecordSchema]*converter{}}
	conv, err := c.compile(rs)
	if err != nil {
		return nil, err
	}
	c.flags()
	return conv, nil
}

// compile compiles one schema node and remembers it for flags.
func (c *compiler) compile(s avro.Schema) (*converter, error) {
	conv, err := c.node(s)
	if err == nil {
		c.all = append(c.all, conv)
	}
	return conv, err
}

func (c *compiler) node(s avro.Schema) (*converter, error) {
	s = deref(s)
	lt := logicalOf(s)
	switch s.Type() {
	case avro.Null:
		return &converter{kind: kindNull, schema: s, msg: "must be null"}, nil
	case avro.Boolean:
		return &converter{kind: kindBool, schema: s, msg: "must be a boolean"}, nil
	case avro.Int:
		switch lt {
		case avro.Date:
			return &converter{kind: kindDate, schema: s, msg: "must be a date (YYYY-MM-DD) or integer days since the epoch"}, nil
		case avro.TimeMillis:
			return &converter{kind: kindTimeMillis, schema: s, msg: "must be an integer number of milliseconds"}, nil
		}
		return &converter{kind: kindInt, schema: s, msg: "must be an integer"}, nil
	case avro.Long:
		switch lt {
		case avro.TimestampMillis, avro.LocalTimestampMillis:
			return &converter{kind: kindTimestamp, schema: s, unit: time.Millisecond,
				msg: "must be an RFC 3339 timestamp or integer milliseconds since the epoch"}, nil
		case avro.TimestampMicros, avro.LocalTimestampMicros:
			return &converter{kind: kindTimestamp, schema: s, unit: time.Microsecond,
				msg: "must be an RFC 3339 timestamp or integer microseconds since the epoch"}, nil
		case avro.TimeMicros:
			return &converter{kind: kindTimeMicros, schema: s, msg: "must be an integer number of microseconds"}, nil
		}
		return &converter{kind: kindLong, schema: s, msg: "must be an integer"}, nil
	case avro.Float:
		return &converter{kind: kindFloat, schema: s, msg: "must be a number"}, nil
	case avro.Double:
		return &converter{kind: kindDouble, schema: s, msg: "must be a number"}, nil
	case avro.String:
		return &converter{kind: kindString, schema: s, msg: "must be a string"}, nil
	case avro.Bytes:
		if lt == avro.Decimal {
			return &converter{kind: kindDecimal, schema: s, msg: "must be a decimal number"}, nil
		}
		return &converter{kind: kindBytes, schema: s, msg: "must be a base64 string"}, nil
	case avro.Fixed:
		fs := s.(*avro.FixedSchema)
		switch lt {
		case avro.Decimal:
			return &converter{kind: kindDecimal, schema: s, size: fs.Size(), msg: "must be a decimal number"}, nil
		case avro.Duration:
			return &converter{kind: kindOpaque, schema: s, msg: "is not supported in JSON"}, nil
		}
		return &converter{kind: kindFixed, schema: s, size: fs.Size(),
			msg: fmt.Sprintf("must be a base64 string of %d bytes", fs.Size())}, nil
	case avro.Enum:
		es := s.(*avro.EnumSchema)
		return &converter{kind: kindEnum, schema: s, symbols: es.Symbols(),
			msg: "must be one of " + strings.Join(es.Symbols(), ", ")}, nil
	case avro.Array:
		items, err := c.compile(s.(*avro.ArraySchema).Items())
		if err != nil {
			return nil, err
		}
		return &converter{kind: kindArray, schema: s, items: items, msg: "must be an array"}, nil
	case avro.Map:
		values, err := c.compile(s.(*avro.MapSchema).Values())
		if err != nil {
			return nil, err
		}
		return &converter{kind: kindMap, schema: s, items: values, msg: "must be an object"}, nil
	case avro.Record, avro.Error:
		return c.compileRec(s.(*avro.RecordSchema))
	case avro.Union:
		return c.compileUnion(s.(*avro.UnionSchema))
	}
	return nil, fmt.Errorf("schema: unsupported Avro type %s", s.Type())
}

func (c *compiler) compileRec(rs *avro.RecordSchema) (*converter, error) {
	if conv, ok := c.recs[rs]; ok {
		return conv, nil
	}
	rc := &recordConv{name: rs.FullName(), index: make(map[string]int, len(rs.Fields()))}
	conv := &converter{kind: kindRecord, schema: rs, rec: rc, msg: "must be an object"}
	c.recs[rs] = conv
	for i, f := range rs.Fields() {
		fc, err := c.compile(f.Type())
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name(), err)
		}
		rc.fields = append(rc.fields, fieldConv{name: f.Name(), conv: fc})
		rc.index[f.Name()] = i
	}
	// Defaults are converted once every field type exists (recursive records).
	for i, f := range rs.Fields() {
		if !f.HasDefault() {
			continue
		}
		fc := &rc.fields[i]
		var errs []FieldError
		def := fc.conv.convert(f.Default(), f.Name(), &errs)
		if len(errs) > 0 {
			return nil, fmt.Errorf("field %s: default: %s", f.Name(), errs[0].Message)
		}
		fc.hasDef, fc.def, fc.defShared = true, def, isScalar(def)
	}
	return conv, nil
}

func (c *compiler) compileUnion(us *avro.UnionSchema) (*converter, error) {
	conv := &converter{kind: kindUnion, schema: us}
	var nonNull []*converter
	for _, b := range us.Types() {
		bc, err := c.compile(b)
		if err != nil {
			return nil, err
		}
		conv.branches = append(conv.branches, bc)
		conv.names = append(conv.names, typeName(b))
		if bc.kind == kindNull {
			conv.nullable = true
		} else {
			nonNull = append(nonNull, bc)
		}
	}
	switch {
	case conv.nullable && len(nonNull) == 1:
		conv.single = nonNull[0]
		conv.msg = nonNull[0].msg + " or null"
	default:
		conv.msg = "must match one of the union types " + strings.Join(conv.names, ", ")
	}
	return conv, nil
}

// flags computes prep and norm over every compiled record, to a fixed point because
// records may be recursive.
func (c *compiler) flags() {
	for changed := true; changed; {
		changed = false
		for _, conv := range c.recs {
			rc := conv.rec
			for i := range rc.fields {
				f := &rc.fields[i]
				if !rc.prep && needsPrep(f.conv) {
					rc.prep, conv.needPrep, changed = true, true, true
				}
				if !f.needNorm && needsNorm(f.conv) {
					f.needNorm, changed = true, true
				}
				if f.needNorm && !rc.norm {
					rc.norm, conv.needNorm, changed = true, true, true
				}
			}
		}
	}
	for _, conv := range c.all {
		conv.needPrep, conv.needNorm = needsPrep(conv), needsNorm(conv)
	}
	for _, conv := range c.recs {
		rc := conv.rec
		rc.topNorm = rc.topNorm[:0]
		for i := range rc.fields {
			if rc.fields[i].needNorm && topNorm(rc.fields[i].conv) {
				rc.topNorm = append(rc.topNorm, i)
			}
		}
	}
}

// needsPrep reports whether AppendEncode must rewrite values of c for hamba: union
// branches that hamba cannot pick by Go type, and fixed values held as []byte.
func needsPrep(c *converter) bool {
	switch c.kind {
	case kindFixed:
		return true
	case kindRecord:
		return c.needPrep
	case kindArray, kindMap:
		return needsPrep(c.items)
	case kindUnion:
		for i, b := range c.branches {
			if !hambaResolves(c.names[i]) || needsPrep(b) {
				return true
			}
		}
	}
	return false
}

// needsNorm reports whether hamba's generic decoding of c needs rewriting: unions below
// the top level come back wrapped as {"<type>": value}, fixed as [N]byte.
func needsNorm(c *converter) bool {
	switch c.kind {
	case kindUnion, kindFixed:
		return true
	case kindRecord:
		return c.needNorm
	case kindArray, kindMap:
		return needsNorm(c.items)
	}
	return false
}

// hambaResolves reports whether hamba's default type resolver knows a union branch name,
// that is, whether hamba picks that branch from a plain Go value and decodes it plainly.
func hambaResolves(name string) bool {
	switch name {
	case "null", "boolean", "int", "long", "float", "double", "string", "bytes",
		"int.date", "int.time-millis", "long.timestamp-millis", "long.timestamp-micros",
		"long.time-micros", "bytes.decimal", "string.uuid":
		return true
	}
	return false
}

// topNorm reports whether Decode must rewrite a top-level field of type c. hamba decodes
// a top-level union plainly when it resolves every branch.
func topNorm(c *converter) bool {
	if c.kind != kindUnion {
		return needsNorm(c)
	}
	for _, n := range c.names {
		if !hambaResolves(n) {
			return true
		}
	}
	return false
}

// isScalar reports whether v is immutable, so one boxed value can be shared.
func isScalar(v any) bool {
	switch v.(type) {
	case nil, bool, int, int64, float32, float64, string, time.Time, time.Duration:
		return true
	}
	return false
}
