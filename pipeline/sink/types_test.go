package sink_test

import (
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/pipeline/sink"
)

// everyType has one field of each Avro type the sink maps.
const everyType = `{"type":"record","name":"Every","fields":[
	{"name":"event_id","type":"string"},
	{"name":"b","type":"boolean"},
	{"name":"i","type":"int"},
	{"name":"l","type":"long"},
	{"name":"f","type":"float"},
	{"name":"d","type":"double"},
	{"name":"s","type":"string"},
	{"name":"u","type":{"type":"string","logicalType":"uuid"}},
	{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
	{"name":"raw","type":"bytes"},
	{"name":"fx","type":{"type":"fixed","name":"F4","size":4}},
	{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
	{"name":"wide","type":{"type":"bytes","logicalType":"decimal","precision":50,"scale":3}},
	{"name":"day","type":{"type":"int","logicalType":"date"}},
	{"name":"tod","type":{"type":"long","logicalType":"time-micros"}},
	{"name":"tsm","type":{"type":"long","logicalType":"timestamp-micros"}},
	{"name":"lts","type":{"type":"long","logicalType":"local-timestamp-millis"}},
	{"name":"tags","type":{"type":"array","items":"string"}},
	{"name":"attrs","type":{"type":"map","values":"long"}},
	{"name":"addr","type":{"type":"record","name":"Addr","fields":[{"name":"city","type":"string"}]}},
	{"name":"opt","type":["null","long"],"default":null},
	{"name":"either","type":["null","string","long"],"default":null}]}`

func TestEventColumnsMapsEveryAvroType(t *testing.T) {
	cols, err := sink.EventColumns(mustParse(t, everyType))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cols {
		got = append(got, c.Name+" "+c.Type.String())
	}
	want := "EVENT_ID string, B bool, I int, L long, F float, D double, S string, U string, E string, " +
		"RAW bytes, FX bytes, DEC decimal(10,2), WIDE string, DAY date, TOD time, TSM timestamp, " +
		"LTS timestamp, TAGS json, ATTRS json, ADDR json, OPT long, EITHER json, RECORD_METADATA json"
	if strings.Join(got, ", ") != want {
		t.Fatalf("columns:\n got %s\nwant %s", strings.Join(got, ", "), want)
	}
}

func TestEventColumnsRejects(t *testing.T) {
	tests := []struct{ name, avsc string }{
		{"not a record", `"string"`},
		{"event_id not a string", `{"type":"record","name":"R","fields":[{"name":"event_id","type":"long"}]}`},
		{"record_metadata field", `{"type":"record","name":"R","fields":[{"name":"record_metadata","type":"string"}]}`},
		{"sluice_ field", `{"type":"record","name":"R","fields":[{"name":"sluice_offset","type":"long"}]}`},
		{"names equal but for case", `{"type":"record","name":"R","fields":[{"name":"x","type":"long"},{"name":"X","type":"long"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := avro.Parse(tt.avsc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sink.EventColumns(s); !errors.Is(err, sink.ErrIncompatibleSchema) {
				t.Fatalf("EventColumns = %v, want ErrIncompatibleSchema", err)
			}
		})
	}
}

// insertOnly is the DuckDB dialect without its appender: staging goes through
// InsertValues, the portable path other dialects use.
type insertOnly struct{ sink.Dialect }

// openInsertOnly opens a migrated in-memory warehouse with the insertOnly dialect.
func openInsertOnly(t testing.TB, opts ...sink.Option) *sink.SQLWarehouse {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	w := sink.NewSQL(db, insertOnly{sink.DuckDB{}}, opts...)
	t.Cleanup(func() { _ = w.Close() })
	if err := w.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestEveryTypeRoundTrips(t *testing.T) {
	tests := []struct {
		name string
		open func(testing.TB, ...sink.Option) *sink.SQLWarehouse
	}{
		{"appender", openDuck},
		{"insert values in chunks of 2 rows", func(t testing.TB, opts ...sink.Option) *sink.SQLWarehouse {
			return openInsertOnly(t, append(opts, sink.WithStageChunk(60))...)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testEveryTypeRoundTrips(t, tt.open(t)) })
	}
}

func testEveryTypeRoundTrips(t *testing.T, w *sink.SQLWarehouse) {
	if err := w.EnsureTable(t.Context(), "EVERY", mustParse(t, everyType)); err != nil {
		t.Fatal(err)
	}
	wide, _ := new(big.Rat).SetString("123456789012345678901234567890.125")
	full := map[string]any{
		"event_id": "e1", "b": true, "i": 7, "l": int64(1) << 40, "f": float32(1.5), "d": 2.25,
		"s": "hi", "u": "6f1c2d4e-0000-4000-8000-000000000001", "e": "B",
		"raw": []byte{0, 1, 2}, "fx": [4]byte{9, 8, 7, 6},
		"dec": big.NewRat(-31415, 100), "wide": wide,
		"day":  time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
		"tod":  10*time.Hour + 5*time.Minute + 3*time.Second + 250*time.Microsecond,
		"tsm":  time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC),
		"lts":  time.Date(2026, 11, 27, 10, 0, 0, 5000000, time.UTC),
		"tags": []any{"a", "b"}, "attrs": map[string]any{"z": int64(1), "a": int64(2)},
		"addr": map[string]any{"city": "Berlin"}, "opt": int64(5), "either": "x",
	}
	sparse := map[string]any{"event_id": "e2"} // every other column NULL
	epoch, _ := claim(t, w, "every.clean", 0)
	b := sink.Batch{Table: "EVERY", Topic: "every.clean", Start: 0, End: 7, Epoch: epoch,
		Rows: []sink.Row{{Offset: 0, Values: full}, {Offset: 1, Values: sparse}}}
	for off := int64(2); off < 7; off++ { // more sparse rows: several staging chunks
		b.Rows = append(b.Rows, sink.Row{Offset: off, EventID: fmt.Sprintf("e%d", off+1)})
	}
	write(t, w, b)
	write(t, w, b) // a retry of the committed batch changes nothing

	got := queryStrings(t, w, `SELECT concat_ws('|', event_id, b, i, l, f, d, s, u, e, hex(raw), hex(fx), dec, wide,
		day, tod, tsm, lts, tags, attrs, addr, opt, either) FROM every ORDER BY event_id`)
	want := []string{
		"e1|true|7|1099511627776|1.5|2.25|hi|6f1c2d4e-0000-4000-8000-000000000001|B|000102|09080706|-314.15|" +
			"123456789012345678901234567890.125|2026-11-27|10:05:03.00025|2026-11-27 10:00:00.123456|" +
			`2026-11-27 10:00:00.005|["a","b"]|{"a":2,"z":1}|{"city":"Berlin"}|5|"x"`,
		"e2", "e3", "e4", "e5", "e6", "e7",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	types := queryStrings(t, w, `SELECT typeof(dec) || ' ' || typeof(tod) || ' ' || typeof(attrs) FROM every LIMIT 1`)
	if len(types) != 1 || types[0] != "DECIMAL(10,2) TIME JSON" {
		t.Fatalf("stored types = %q", types)
	}
}

func TestValuesThatDoNotFitTheirColumn(t *testing.T) {
	w := openDuck(t)
	if err := w.EnsureTable(t.Context(), "EVERY", mustParse(t, everyType)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, field string
		value       any
	}{
		{"string for int", "i", "7"},
		{"int beyond int32", "i", int64(1) << 31},
		{"float for long", "l", 1.5},
		{"string for bool", "b", "true"},
		{"int for timestamp", "tsm", int64(5)},
		{"decimal with more fraction digits", "dec", big.NewRat(1, 1000)},
		{"decimal too wide", "dec", big.NewRat(123456789012, 1)},
		{"time of day beyond 24h", "tod", 25 * time.Hour},
		{"negative time of day", "tod", -time.Second},
		{"string for bytes", "raw", "abc"},
		{"unknown field", "nope", 1},
		{"metadata field", "record_metadata", "{}"},
		{"event id not a string", "event_id", 5},
		{"event id differs from header", "event_id", "other"},
		{"invalid UTF-8", "s", "a\xffb"},
		{"invalid UTF-8 in JSON", "attrs", map[string]any{"k": "\xfe"}},
		{"timestamp after 9999", "tsm", time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"timestamp before year 1", "lts", time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"date after 9999", "day", time.Date(6000000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	epoch, _ := claim(t, w, "every.clean", 0)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := sink.Row{Offset: int64(i), EventID: "e", Values: map[string]any{tt.field: tt.value}}
			b := sink.Batch{Table: "EVERY", Topic: "every.clean", Start: int64(i), End: int64(i) + 1, Epoch: epoch, Rows: []sink.Row{row}}
			err := w.Write(t.Context(), b)
			var rej *sink.RejectedError
			if !errors.As(err, &rej) || len(rej.Rows) != 1 || !strings.Contains(rej.Rows[0].Error(), tt.field) {
				t.Fatalf("Write = %v, want the row rejected naming %s", err, tt.field)
			}
			b.Rows = nil // dead-lettered: the offset still commits
			write(t, w, b)
		})
	}
}
