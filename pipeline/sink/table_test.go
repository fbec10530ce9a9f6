package sink_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/sink"
)

// columnsOf lists "NAME TYPE" of a table in table order.
func columnsOf(t *testing.T, w sink.Warehouse, table string) string {
	t.Helper()
	cols := queryStrings(t, w, `SELECT column_name || ' ' || data_type FROM information_schema.columns
		WHERE table_name = ? ORDER BY ordinal_position`, table)
	return strings.Join(cols, ", ")
}

func TestEnsureTableTypesColumnsFromAvro(t *testing.T) {
	tests := []struct {
		name, table, schema, want string
	}{
		{"purchases", "PURCHASES", "purchases",
			"EVENT_ID VARCHAR, EVENT_TIME TIMESTAMP, USER_ID VARCHAR, SESSION_ID VARCHAR, COUNTRY VARCHAR, " +
				"DEVICE VARCHAR, ORDER_ID VARCHAR, AMOUNT DOUBLE, CURRENCY VARCHAR, ITEMS INTEGER, " +
				"PRODUCT_ID VARCHAR, PROCESSED_AT TIMESTAMP, RECORD_METADATA JSON"},
		{"page views", "PAGE_VIEWS", "page_views",
			"EVENT_ID VARCHAR, EVENT_TIME TIMESTAMP, USER_ID VARCHAR, SESSION_ID VARCHAR, COUNTRY VARCHAR, " +
				"DEVICE VARCHAR, URL VARCHAR, REFERRER VARCHAR, DURATION_MS INTEGER, PROCESSED_AT TIMESTAMP, " +
				"RECORD_METADATA JSON"},
		{"clicks", "CLICKS", "clicks",
			"EVENT_ID VARCHAR, EVENT_TIME TIMESTAMP, USER_ID VARCHAR, SESSION_ID VARCHAR, COUNTRY VARCHAR, " +
				"DEVICE VARCHAR, URL VARCHAR, ELEMENT VARCHAR, X INTEGER, Y INTEGER, PROCESSED_AT TIMESTAMP, " +
				"RECORD_METADATA JSON"},
	}
	w := openDuck(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 { // idempotent
				ensure(t, w, tt.table, tt.schema)
			}
			if got := columnsOf(t, w, tt.table); got != tt.want {
				t.Fatalf("columns of %s:\n got %s\nwant %s", tt.table, got, tt.want)
			}
			stage := "SLUICE_TOPIC VARCHAR, SLUICE_PARTITION INTEGER, SLUICE_START BIGINT, SLUICE_EPOCH BIGINT, " +
				"SLUICE_OFFSET BIGINT, " + strings.Replace(tt.want, "RECORD_METADATA JSON", "RECORD_METADATA VARCHAR", 1)
			if got := columnsOf(t, w, "SLUICE_STAGE_"+tt.table); got != stage {
				t.Fatalf("columns of the stage:\n got %s\nwant %s", got, stage)
			}
			key := queryStrings(t, w, `SELECT array_to_string(constraint_column_names, ',') FROM duckdb_constraints()
				WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'`, tt.table)
			if len(key) != 1 || key[0] != "EVENT_ID" {
				t.Fatalf("primary key = %q, want EVENT_ID", key)
			}
		})
	}
}

// purchasesV2 adds an optional coupon to the clean purchases schema.
const purchasesV2 = `{"type":"record","name":"PurchaseClean","namespace":"sluice.events","fields":[
	{"name":"event_id","type":"string"},
	{"name":"event_time","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"user_id","type":"string"},{"name":"session_id","type":"string"},
	{"name":"country","type":"string"},
	{"name":"device","type":{"type":"enum","name":"Device","symbols":["desktop","mobile","tablet"]}},
	{"name":"order_id","type":"string"},{"name":"amount","type":"double"},
	{"name":"currency","type":"string"},{"name":"items","type":"int","default":1},
	{"name":"product_id","type":"string"},
	{"name":"processed_at","type":{"type":"long","logicalType":"timestamp-millis"},"default":0},
	{"name":"coupon","type":["null","string"],"default":null}]}`

func TestEnsureTableAddsOptionalField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wh.duckdb")
	w := openDuckAt(t, path)
	ensure(t, w, "PURCHASES", "purchases")
	epoch, _ := claim(t, w, "purchases.clean", 0)
	write(t, w, purchases(0, 0, 3, epoch))

	if err := w.EnsureTable(t.Context(), "PURCHASES", mustParse(t, purchasesV2)); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"PURCHASES", "SLUICE_STAGE_PURCHASES"} {
		if got := columnsOf(t, w, table); !strings.HasSuffix(got, ", COUPON VARCHAR") {
			t.Fatalf("columns of %s = %s, want COUPON VARCHAR added last", table, got)
		}
	}
	b := purchases(0, 3, 5, epoch)
	b.Rows[0].Values["coupon"] = "XMAS"
	write(t, w, b)
	got := queryStrings(t, w, `SELECT coalesce(coupon, 'NULL') FROM purchases ORDER BY event_id`)
	if strings.Join(got, ",") != "NULL,NULL,NULL,XMAS,NULL" {
		t.Fatalf("coupons = %q", got)
	}

	// A sink that restarts with the older schema keeps the column and still writes.
	w2 := reopen(t, w, path)
	ensure(t, w2, "PURCHASES", "purchases")
	epoch, next := claim(t, w2, "purchases.clean", 0)
	write(t, w2, purchases(0, next, 6, epoch))
	if n := scalar(t, w2, `SELECT count(*) FROM purchases WHERE coupon IS NULL`); n != 5 {
		t.Fatalf("rows without coupon = %d, want 5", n)
	}
}

// reopen closes w and opens the file again.
func reopen(t *testing.T, w *sink.SQLWarehouse, path string) *sink.SQLWarehouse {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return openDuckAt(t, path)
}

func TestEnsureTableRejectsIncompatibleChange(t *testing.T) {
	tests := []struct {
		name, from, to string
	}{
		{"int to string", "items", `"string"`},
		{"int to long", "items", `"long"`},
		{"timestamp to long", "event_time", `"long"`},
		{"string to record", "country", `{"type":"record","name":"C","fields":[{"name":"code","type":"string"}]}`},
		{"nullable double to nullable string", "amount", `["null","string"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := openDuck(t)
			ensure(t, w, "PURCHASES", "purchases")
			before := columnsOf(t, w, "PURCHASES")
			changed := withFieldType(t, purchasesV2, tt.from, tt.to)
			err := w.EnsureTable(t.Context(), "PURCHASES", mustParse(t, changed))
			if !errors.Is(err, sink.ErrIncompatibleSchema) {
				t.Fatalf("EnsureTable = %v, want ErrIncompatibleSchema", err)
			}
			if after := columnsOf(t, w, "PURCHASES"); after != before {
				t.Fatalf("columns changed by a rejected schema:\n%s\n%s", before, after)
			}
		})
	}
}

// withFieldType returns avsc with field's type replaced by the JSON typ.
func withFieldType(t *testing.T, avsc, field, typ string) string {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal([]byte(avsc), &rec); err != nil {
		t.Fatal(err)
	}
	var newType any
	if err := json.Unmarshal([]byte(typ), &newType); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range rec["fields"].([]any) {
		if f := f.(map[string]any); f["name"] == field {
			f["type"] = newType
			delete(f, "default")
			found = true
		}
	}
	if !found {
		t.Fatalf("no field %s", field)
	}
	out, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestEnsureTableRejectsBadNames(t *testing.T) {
	w := openDuck(t)
	s := cleanSchema(t, "clicks")
	tests := []struct{ name, table string }{
		{"lower case", "clicks"},
		{"empty", ""},
		{"quote", `CLICKS"`},
		{"aggregates", "AGGREGATES"},
		{"sink table", "SLUICE_OFFSETS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := w.EnsureTable(t.Context(), tt.table, s); err == nil {
				t.Fatalf("EnsureTable(%q) = nil, want an error", tt.table)
			}
		})
	}
}

func TestTableName(t *testing.T) {
	tests := []struct{ topic, want string }{
		{"purchases.clean", "PURCHASES"},
		{"page_views.clean", "PAGE_VIEWS"},
		{"clicks", "CLICKS"},
		{"web-events.v2.clean", "WEB_EVENTS_V2"},
		{"9lives.clean", "_9LIVES"},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			if got := sink.TableName(tt.topic); got != tt.want {
				t.Fatalf("TableName(%q) = %q, want %q", tt.topic, got, tt.want)
			}
		})
	}
}
