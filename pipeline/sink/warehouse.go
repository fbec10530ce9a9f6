// Package sink writes clean events and window results into a warehouse, exactly once.
//
// A Warehouse is one interface with one SQL implementation (SQLWarehouse) over
// database/sql; every difference between warehouses (type names, quoting, placeholders,
// upsert statements) lives in a Dialect. DuckDB (OpenDuckDB) is the embedded default for
// `sluice dev` and tests; Snowflake (OpenSnowflake, through gosnowflake), the production
// target, is the second Dialect.
//
// # Tables
//
// Migrate creates the fixed tables by numbered migrations recorded in SLUICE_MIGRATIONS:
// SLUICE_OFFSETS (TOPIC, PARTITION, NEXT_OFFSET, OWNER_EPOCH), AGGREGATES (AGGREGATION,
// GROUP_KEY, WINDOW_START, WINDOW_END, MEASURES, EMITTED_AT, RECORD_METADATA; unique on the
// window key) and its staging table. EnsureTable creates one table per clean topic from
// its Avro schema: a typed column per field (upper-case name), EVENT_ID as primary key, and
// RECORD_METADATA (JSON: topic, partition, offset, event_id, ingest_ts in unix micros).
//
// # Exactly once
//
// The sink's offsets live in SLUICE_OFFSETS and move in the same transaction as the rows.
// On partition assignment the sink calls Claim, which bumps the partition's owner epoch
// (fencing any previous owner) and returns the offset to seek to. Write then:
//
//  1. stages the batch's rows in SLUICE_STAGE_<TABLE> under the batch id
//     (topic, partition, start offset, epoch), replacing whatever an earlier attempt of the
//     same batch staged; this is outside the commit transaction;
//  2. in one short transaction: compare-and-sets the offset row from Start to End (only if
//     NEXT_OFFSET = Start and OWNER_EPOCH = Epoch), inserts the staged rows into the target
//     (events: a row whose EVENT_ID exists is skipped; aggregates: a later result for the
//     same window replaces the earlier one), deletes the partition's staged rows below End,
//     and commits.
//
// A crash anywhere leaves either the old offset with no rows or the new offset with all
// rows; the next owner claims, seeks to the stored offset and rebuilds the batch from
// there.
package sink

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Warehouse is where the sink writes. See the package documentation for the protocol.
type Warehouse interface {
	// Migrate creates the fixed tables (offsets, aggregates, staging) by numbered
	// migrations. It is idempotent and safe to run at every start.
	Migrate(ctx context.Context) error
	// EnsureTable creates table (and its staging table) from a record schema, or adds a
	// nullable column for each field the table lacks (schema evolution). A field whose type
	// differs from its existing column is an error wrapping ErrIncompatibleSchema. Call it
	// before the first Write to the table in this process.
	EnsureTable(ctx context.Context, table string, schema avro.Schema) error
	// Claim takes ownership of a topic-partition: it bumps the owner epoch (creating the
	// offset row at 0 if absent) and returns the new epoch and the offset to seek to.
	Claim(ctx context.Context, topic string, partition int32) (epoch, next int64, err error)
	// Write commits a batch exactly once. See Batch and the package documentation.
	Write(ctx context.Context, b Batch) error
	// Query runs a query against the warehouse (for `sluice query` and tests).
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	// Close releases the connection pool.
	Close() error
}

// Row is one decoded record of a batch.
type Row struct {
	// Offset is the record's Kafka offset, within the batch's [Start, End).
	Offset int64
	// EventID is the sluice-event-id header. When empty, Values["event_id"] is used.
	EventID string
	// IngestTS is the sluice-ingest-ts header (zero if absent).
	IngestTS time.Time
	// Values is the Avro-decoded record (see package schema for the Go types).
	Values map[string]any
}

// Batch is a contiguous range of one topic-partition to commit at once.
//
// Offsets [Start, End) are committed even where no Row has them (gaps, transaction
// markers, records sent to the DLQ); the sink never skips an offset silently, so the
// caller decides which offsets become rows. Start == End with no rows is a no-op write.
type Batch struct {
	// Table is the target table, e.g. TableName("purchases.clean") = "PURCHASES". Ignored
	// when Aggregate is set (the target is AGGREGATES).
	Table string
	// Topic and Partition identify the Kafka partition the rows come from.
	Topic     string
	Partition int32
	// Start and End bound the offsets: [Start, End).
	Start, End int64
	// Epoch is the owner epoch Claim returned.
	Epoch int64
	// Rows are the batch's records in offset order.
	Rows []Row
	// Aggregate marks window results (agg.<name> topics), written to AGGREGATES.
	Aggregate bool
}

// TableName returns the warehouse table of a topic: the topic without ".clean", in upper
// case, with every character outside [A-Z0-9_] replaced by '_' ("page_views.clean" ->
// "PAGE_VIEWS"). A leading digit gets a '_' prefix.
func TableName(topic string) string {
	base := strings.TrimSuffix(topic, wire.CleanSuffix)
	var b strings.Builder
	for i, r := range strings.ToUpper(base) {
		switch {
		case r == '_' || ('A' <= r && r <= 'Z'):
			b.WriteRune(r)
		case '0' <= r && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
