package schema

import (
	"fmt"

	"github.com/hamba/avro/v2"
)

// ProcessedAtField is the field Clean adds: when the processor wrote the record to the
// clean topic (timestamp-millis, default 0).
const ProcessedAtField = "processed_at"

// CleanRecordSuffix is appended to the record name by Clean.
const CleanRecordSuffix = "Clean"

// Clean derives the schema of <topic>.clean from a raw topic's schema: the same record plus
// a processed_at field (timestamp-millis). The record name gets a "Clean" suffix.
//
// The field defaults to 0 so that the clean schema can later gain fields as the raw one
// does, and the output is hamba/avro's deterministic JSON form of the schema: the same
// input always yields the same text, so registering it again is a no-op. A schema that
// already has a processed_at field is an error.
func Clean(avsc string) (string, error) {
	rec, err := parseRecord(avsc)
	if err != nil {
		return "", fmt.Errorf("schema: clean: %w", err)
	}
	fields := make([]*avro.Field, 0, len(rec.Fields())+1)
	for _, f := range rec.Fields() {
		if f.Name() == ProcessedAtField {
			return "", fmt.Errorf("schema: clean %s: already has a %s field", rec.FullName(), ProcessedAtField)
		}
		fields = append(fields, f)
	}
	ts := avro.NewPrimitiveSchema(avro.Long, avro.NewPrimitiveLogicalSchema(avro.TimestampMillis))
	pa, err := avro.NewField(ProcessedAtField, ts,
		avro.WithDefault(int64(0)),
		avro.WithDoc("When the processor wrote the record to the clean topic, UTC."))
	if err != nil {
		return "", fmt.Errorf("schema: clean %s: %w", rec.FullName(), err)
	}
	fields = append(fields, pa)

	opts := []avro.SchemaOption{avro.WithAliases(cleanAliases(rec))}
	if rec.Doc() != "" {
		opts = append(opts, avro.WithDoc(rec.Doc()))
	}
	if props := rec.Props(); len(props) > 0 {
		opts = append(opts, avro.WithProps(props))
	}
	out, err := avro.NewRecordSchema(rec.Name()+CleanRecordSuffix, rec.Namespace(), fields, opts...)
	if err != nil {
		return "", fmt.Errorf("schema: clean %s: %w", rec.FullName(), err)
	}
	b, err := out.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("schema: clean %s: %w", rec.FullName(), err)
	}
	return string(b), nil
}

// cleanAliases keeps the raw record's aliases, suffixed like its name, so that a clean
// schema derived from a renamed raw schema still resolves against older clean data.
func cleanAliases(rec *avro.RecordSchema) []string {
	if len(rec.Aliases()) == 0 {
		return nil
	}
	out := make([]string, len(rec.Aliases()))
	for i, a := range rec.Aliases() {
		out[i] = a + CleanRecordSuffix
	}
	return out
}
