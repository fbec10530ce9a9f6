package schema

import (
	"fmt"

	"github.com/hamba/avro/v2"
)

// parseRecord parses avsc as a record schema. Every parse gets a fresh name cache:
// hamba's global cache would let one version of a named type leak into the next.
func parseRecord(avsc string) (*avro.RecordSchema, error) {
	s, err := avro.ParseWithCache(avsc, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	rec, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("parse schema: top-level type is %s, want record", s.Type())
	}
	return rec, nil
}

// deref resolves a named-type reference to its definition.
func deref(s avro.Schema) avro.Schema {
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema()
	}
	return s
}

// logicalOf returns the logical type of s, or "".
func logicalOf(s avro.Schema) avro.LogicalType {
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		return l.Logical().Type()
	}
	return ""
}

// typeName is the name a union branch goes by: the full name of a named type, else the
// type with its logical type ("long.timestamp-millis"), as hamba's generic values use.
func typeName(s avro.Schema) string {
	s = deref(s)
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	if lt := logicalOf(s); lt != "" {
		return string(s.Type()) + "." + string(lt)
	}
	return string(s.Type())
}
