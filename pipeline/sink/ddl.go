package sink

import (
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"
)

// Column names the sink itself defines.
const (
	// ColEventID is the primary key of every event table.
	ColEventID = "EVENT_ID"
	// ColRecordMetadata is the JSON column with topic, partition, offset, event_id and
	// ingest_ts (unix micros) of the record a row came from.
	ColRecordMetadata = "RECORD_METADATA"
	// StagePrefix starts the name of every staging table: SLUICE_STAGE_<TABLE>.
	StagePrefix = "SLUICE_STAGE_"
	// AggregatesTable holds the window results of every aggregation.
	AggregatesTable = "AGGREGATES"
	// OffsetsTable holds the sink's committed offsets and owner epochs.
	OffsetsTable = "SLUICE_OFFSETS"
	// MigrationsTable records the applied migrations.
	MigrationsTable = "SLUICE_MIGRATIONS"
)

// Staging-only columns: the batch id (topic, partition, start, epoch) and the offset.
const (
	colStageTopic     = "SLUICE_TOPIC"
	colStagePartition = "SLUICE_PARTITION"
	colStageStart     = "SLUICE_START"
	colStageEpoch     = "SLUICE_EPOCH"
	colStageOffset    = "SLUICE_OFFSET"
)

// stageColumns precede the target's columns in a staging table.
var stageColumns = []Column{
	{Name: colStageTopic, Type: ColumnType{Kind: KindString}},
	{Name: colStagePartition, Type: ColumnType{Kind: KindInt}},
	{Name: colStageStart, Type: ColumnType{Kind: KindLong}},
	{Name: colStageEpoch, Type: ColumnType{Kind: KindLong}},
	{Name: colStageOffset, Type: ColumnType{Kind: KindLong}},
}

// maxDecimalPrecision is the widest DECIMAL both DuckDB and Snowflake hold; wider Avro
// decimals are stored as their exact decimal text.
const maxDecimalPrecision = 38

// ColumnOf maps an Avro type to a column type:
//
//	string, enum, uuid                      string
//	int / long                              int / long
//	float / double, boolean                 float / double, bool
//	timestamp-*, local-timestamp-*          timestamp (UTC)
//	date, time-millis, time-micros          date, time
//	bytes, fixed (also duration)            bytes
//	decimal (precision <= 38)               decimal(p, s); wider: string
//	array, map, record, null                json
//	union                                   its one non-null branch; several: json
//
// Every column is nullable, so a union with null needs no special case.
func ColumnOf(s avro.Schema) (ColumnType, error) {
	switch x := s.(type) {
	case *avro.RefSchema:
		return ColumnOf(x.Schema())
	case *avro.PrimitiveSchema:
		return primitiveColumn(x)
	case *avro.EnumSchema:
		return ColumnType{Kind: KindString}, nil
	case *avro.FixedSchema:
		if d, ok := x.Logical().(*avro.DecimalLogicalSchema); ok {
			return decimalColumn(d), nil
		}
		return ColumnType{Kind: KindBytes}, nil
	case *avro.ArraySchema, *avro.MapSchema, *avro.RecordSchema, *avro.NullSchema:
		return ColumnType{Kind: KindJSON}, nil
	case *avro.UnionSchema:
		var branches []avro.Schema
		for _, t := range x.Types() {
			if t.Type() != avro.Null {
				branches = append(branches, t)
			}
		}
		if len(branches) == 1 {
			return ColumnOf(branches[0])
		}
		return ColumnType{Kind: KindJSON}, nil
	case nil:
		return ColumnType{}, fmt.Errorf("%w: nil schema", ErrIncompatibleSchema)
	}
	return ColumnType{}, fmt.Errorf("%w: unsupported Avro type %s", ErrIncompatibleSchema, s.Type())
}

func primitiveColumn(p *avro.PrimitiveSchema) (ColumnType, error) {
	var logical avro.LogicalType
	if l := p.Logical(); l != nil {
		logical = l.Type()
	}
	switch p.Type() {
	case avro.String:
		return ColumnType{Kind: KindString}, nil
	case avro.Boolean:
		return ColumnType{Kind: KindBool}, nil
	case avro.Float:
		return ColumnType{Kind: KindFloat}, nil
	case avro.Double:
		return ColumnType{Kind: KindDouble}, nil
	case avro.Null:
		return ColumnType{Kind: KindJSON}, nil
	case avro.Int:
		switch logical {
		case avro.Date:
			return ColumnType{Kind: KindDate}, nil
		case avro.TimeMillis:
			return ColumnType{Kind: KindTime}, nil
		}
		return ColumnType{Kind: KindInt}, nil
	case avro.Long:
		switch logical {
		case avro.TimestampMillis, avro.TimestampMicros, avro.LocalTimestampMillis, avro.LocalTimestampMicros:
			return ColumnType{Kind: KindTimestamp}, nil
		case avro.TimeMicros:
			return ColumnType{Kind: KindTime}, nil
		}
		return ColumnType{Kind: KindLong}, nil
	case avro.Bytes:
		if d, ok := p.Logical().(*avro.DecimalLogicalSchema); ok {
			return decimalColumn(d), nil
		}
		return ColumnType{Kind: KindBytes}, nil
	}
	return ColumnType{}, fmt.Errorf("%w: unsupported Avro type %s", ErrIncompatibleSchema, p.Type())
}

func decimalColumn(d *avro.DecimalLogicalSchema) ColumnType {
	if d.Precision() > maxDecimalPrecision || d.Precision() < 1 || d.Scale() < 0 || d.Scale() > d.Precision() {
		return ColumnType{Kind: KindString}
	}
	return ColumnType{Kind: KindDecimal, Precision: d.Precision(), Scale: d.Scale()}
}

// EventColumns returns the columns of an event table for a record schema: one per field
// (upper-case name, ColumnOf type) in field order, EVENT_ID (string) first if the
// schema has no event_id field, and RECORD_METADATA (json) last. A field named like a
// sink column (RECORD_METADATA, SLUICE_*), two fields equal but for case, or an event_id
// that is not a string wrap ErrIncompatibleSchema.
func EventColumns(s avro.Schema) ([]Column, error) {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	rec, ok := s.(*avro.RecordSchema)
	if !ok || rec == nil {
		return nil, fmt.Errorf("%w: want a record schema", ErrIncompatibleSchema)
	}
	cols := make([]Column, 0, len(rec.Fields())+2)
	seen := make(map[string]string, len(rec.Fields()))
	hasID := false
	for _, f := range rec.Fields() {
		name := strings.ToUpper(f.Name())
		if !validIdent(name) {
			return nil, fmt.Errorf("%w: field %q is not a valid column name", ErrIncompatibleSchema, f.Name())
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("%w: fields %q and %q are both column %s", ErrIncompatibleSchema, prev, f.Name(), name)
		}
		seen[name] = f.Name()
		if name == ColRecordMetadata || strings.HasPrefix(name, "SLUICE_") {
			return nil, fmt.Errorf("%w: field %q clashes with the sink's own column", ErrIncompatibleSchema, f.Name())
		}
		t, err := ColumnOf(f.Type())
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name(), err)
		}
		if name == ColEventID {
			if t.Kind != KindString {
				return nil, fmt.Errorf("%w: field %s is %s, want string", ErrIncompatibleSchema, f.Name(), t)
			}
			hasID = true
		}
		cols = append(cols, Column{Name: name, Type: t})
	}
	if !hasID {
		cols = append([]Column{{Name: ColEventID, Type: ColumnType{Kind: KindString}}}, cols...)
	}
	return append(cols, Column{Name: ColRecordMetadata, Type: ColumnType{Kind: KindJSON}}), nil
}

// aggregateColumns are the columns of AGGREGATES; the first four are the unique key.
var aggregateColumns = []Column{
	{Name: "AGGREGATION", Type: ColumnType{Kind: KindString}},
	{Name: "GROUP_KEY", Type: ColumnType{Kind: KindString}},
	{Name: "WINDOW_START", Type: ColumnType{Kind: KindTimestamp}},
	{Name: "WINDOW_END", Type: ColumnType{Kind: KindTimestamp}},
	{Name: "MEASURES", Type: ColumnType{Kind: KindJSON}},
	{Name: "EMITTED_AT", Type: ColumnType{Kind: KindTimestamp}},
	{Name: ColRecordMetadata, Type: ColumnType{Kind: KindJSON}},
}

var aggregateKey = []string{"AGGREGATION", "GROUP_KEY", "WINDOW_START", "WINDOW_END"}

// validIdent reports whether name is [A-Z_][A-Z0-9_]*.
func validIdent(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_' || ('A' <= c && c <= 'Z'):
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
