package sink_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/sink"
)

// The Snowflake dialect runs the same checks as the DuckDB tests against a server that
// speaks Snowflake's protocol: fakesnow (SLUICE_TEST_FAKESNOW=host:port, started by
// scripts/fakesnow/fakesnow-up.sh) and, when SNOWFLAKE_* are set, a real account. Each
// subtest gets a schema of its own, dropped at cleanup. Queries here are Snowflake SQL:
// quoted names are upper case, JSON paths use the colon syntax.

// snowBackend is a server the Snowflake suite runs against.
type snowBackend struct {
	// cfg logs in to an existing schema (the one new schemas are created from).
	cfg sink.SnowflakeConfig
	// createSchema: a login may only name an existing schema (Snowflake), so tests
	// create theirs first and drop them after; fakesnow creates the database and schema
	// a login names.
	createSchema bool
}

// fakesnowBackend is the fakesnow server at SLUICE_TEST_FAKESNOW, or skips the test.
func fakesnowBackend(t testing.TB) snowBackend {
	t.Helper()
	addr := os.Getenv("SLUICE_TEST_FAKESNOW")
	if addr == "" {
		t.Skip("SLUICE_TEST_FAKESNOW is not set: run scripts/fakesnow/fakesnow-up.sh and set it to the host:port it prints as FAKESNOW=")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("SLUICE_TEST_FAKESNOW=%q: %v", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("SLUICE_TEST_FAKESNOW=%q: %v", addr, err)
	}
	return snowBackend{cfg: sink.SnowflakeConfig{
		Account: "fakesnow", User: "fake", Password: "snow", Database: "SLUICE_TEST", Schema: "PUBLIC",
		Host: host, Port: p, Protocol: "http",
		MaxRetryCount: 1, // fakesnow answers unsupported statements with HTTP 500: fail fast
	}}
}

// realSnowflakeBackend is the account SNOWFLAKE_* name, or skips the test.
func realSnowflakeBackend(t testing.TB) snowBackend {
	t.Helper()
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	cfg := sink.SnowflakeConfig{
		Account: env("SNOWFLAKE_ACCOUNT", ""), User: env("SNOWFLAKE_USER", ""),
		Database: env("SNOWFLAKE_DATABASE", ""), Schema: env("SNOWFLAKE_SCHEMA", "PUBLIC"),
		Role: env("SNOWFLAKE_ROLE", ""), Warehouse: env("SNOWFLAKE_WAREHOUSE", ""),
		Password:             env("SNOWFLAKE_PASSWORD", ""),
		PrivateKeyPassphrase: env("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", ""),
	}
	if path := os.Getenv("SNOWFLAKE_PRIVATE_KEY_FILE"); path != "" {
		key, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg.PrivateKeyPEM = key
	}
	if cfg.Account == "" || cfg.User == "" || cfg.Database == "" || (cfg.Password == "" && cfg.PrivateKeyPEM == nil) {
		t.Skip("a real Snowflake account needs SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_DATABASE and " +
			"SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_FILE (+ SNOWFLAKE_PRIVATE_KEY_PASSPHRASE); " +
			"optional SNOWFLAKE_ROLE, SNOWFLAKE_WAREHOUSE, SNOWFLAKE_SCHEMA (default PUBLIC)")
	}
	return snowBackend{cfg: cfg, createSchema: true}
}

// snowSchemaSeq numbers the schemas this process creates.
var snowSchemaSeq atomic.Int64

// newSchema returns b's config for a new schema of its own. On Snowflake it creates the
// schema and drops it at cleanup; fakesnow creates it on login and forgets it when it
// stops.
func (b snowBackend) newSchema(t testing.TB) sink.SnowflakeConfig {
	t.Helper()
	cfg := b.cfg
	cfg.Schema = fmt.Sprintf("SLUICE_T%d_%d", time.Now().UnixNano(), snowSchemaSeq.Add(1))
	if !b.createSchema {
		return cfg
	}
	admin, err := sink.OpenSnowflake(t.Context(), b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	schema := sink.Snowflake{}.Quote(cfg.Database) + "." + sink.Snowflake{}.Quote(cfg.Schema)
	t.Cleanup(func() {
		// t.Context is done by now.
		rows, err := admin.Query(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		if err == nil {
			err = rows.Close()
		}
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		if err := admin.Close(); err != nil {
			t.Error(err)
		}
	})
	snowExec(t, admin, "CREATE SCHEMA IF NOT EXISTS "+schema)
	return cfg
}

// openSnowAt opens a migrated warehouse on cfg, closed at cleanup.
func openSnowAt(t testing.TB, cfg sink.SnowflakeConfig, opts ...sink.Option) *sink.SQLWarehouse {
	t.Helper()
	w, err := sink.OpenSnowflake(t.Context(), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := w.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return w
}

// openSnow opens a migrated warehouse in a new schema.
func (b snowBackend) openSnow(t testing.TB, opts ...sink.Option) *sink.SQLWarehouse {
	t.Helper()
	return openSnowAt(t, b.newSchema(t), opts...)
}

// snowExec runs a statement that returns no rows we need.
func snowExec(t testing.TB, w sink.Warehouse, stmt string, args ...any) {
	t.Helper()
	rows, err := w.Query(t.Context(), stmt, args...)
	if err != nil {
		t.Fatal(err)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
}

// snowColumns lists "NAME TYPE" of a table the way the dialect reads them back.
func snowColumns(t testing.TB, w sink.Warehouse, table string) string {
	t.Helper()
	rows, err := w.Query(t.Context(), sink.Snowflake{}.ColumnsQuery(), table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, name+" "+typ)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(cols, ", ")
}

func TestSnowflakeFakesnow(t *testing.T) { runSnowflakeSuite(t, fakesnowBackend(t)) }

func TestSnowflakeReal(t *testing.T) { runSnowflakeSuite(t, realSnowflakeBackend(t)) }

func runSnowflakeSuite(t *testing.T, b snowBackend) {
	tests := []struct {
		name string
		run  func(t *testing.T, b snowBackend)
	}{
		{"migrate twice", testSnowMigrateTwice},
		{"ensure table", testSnowEnsureTable},
		{"write lands rows", testSnowWriteLandsRows},
		{"same batch twice lands once", testSnowSameBatchTwice},
		{"stale epoch is fenced", testSnowStaleEpoch},
		{"crash at every step then retry", testSnowCrashAtEveryStep},
		{"aggregates upsert by window", testSnowAggregates},
		{"additive schema evolution", testSnowSchemaEvolution},
		{"incompatible change rejected", testSnowIncompatibleChange},
		{"every type round trips", testSnowEveryType},
		{"check", testSnowCheck},
		{"key-pair login", testSnowKeyPair},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, b) })
	}
}

func testSnowMigrateTwice(t *testing.T, b snowBackend) {
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := first
	now := func() time.Time { return clock }
	cfg := b.newSchema(t)
	w := openSnowAt(t, cfg, sink.WithClock(now))
	if err := w.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	clock = first.Add(time.Hour) // a re-run, here or in another process, records nothing new
	w2 := openSnowAt(t, cfg, sink.WithClock(now))

	rows, err := w2.Query(t.Context(), `SELECT "VERSION", "APPLIED_AT" FROM "SLUICE_MIGRATIONS" ORDER BY "VERSION"`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var v int64
		var at time.Time
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s", v, at.UTC().Format(time.RFC3339)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := "1 2026-01-01T00:00:00Z, 2 2026-01-01T00:00:00Z"; strings.Join(got, ", ") != want {
		t.Fatalf("migrations = %q, want %s", got, want)
	}
	tables := queryStrings(t, w2, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = CURRENT_SCHEMA() ORDER BY table_name`)
	if want := "AGGREGATES SLUICE_MIGRATIONS SLUICE_OFFSETS SLUICE_STAGE_AGGREGATES"; strings.Join(tables, " ") != want {
		t.Fatalf("tables = %q, want %s", tables, want)
	}
}

func testSnowEnsureTable(t *testing.T, b snowBackend) {
	cfg := b.newSchema(t)
	w := openSnowAt(t, cfg)
	for range 2 { // the second call reads the types back (ParseType) and must agree
		ensure(t, w, "PURCHASES", "purchases")
	}
	want := "EVENT_ID TEXT, EVENT_TIME TIMESTAMP_NTZ, USER_ID TEXT, SESSION_ID TEXT, COUNTRY TEXT, " +
		"DEVICE TEXT, ORDER_ID TEXT, AMOUNT FLOAT, CURRENCY TEXT, ITEMS NUMBER(10,0), " +
		"PRODUCT_ID TEXT, PROCESSED_AT TIMESTAMP_NTZ, RECORD_METADATA VARIANT"
	if got := snowColumns(t, w, "PURCHASES"); got != want {
		t.Fatalf("columns of PURCHASES:\n got %s\nwant %s", got, want)
	}
	stage := "SLUICE_TOPIC TEXT, SLUICE_PARTITION NUMBER(10,0), SLUICE_START NUMBER(19,0), " +
		"SLUICE_EPOCH NUMBER(19,0), SLUICE_OFFSET NUMBER(19,0), " +
		strings.Replace(want, "RECORD_METADATA VARIANT", "RECORD_METADATA TEXT", 1)
	if got := snowColumns(t, w, "SLUICE_STAGE_PURCHASES"); got != stage {
		t.Fatalf("columns of the stage:\n got %s\nwant %s", got, stage)
	}
	ensure(t, openSnowAt(t, cfg), "PURCHASES", "purchases") // another process, same tables
}

func testSnowWriteLandsRows(t *testing.T, b snowBackend) {
	w := b.openSnow(t)
	ensure(t, w, "PURCHASES", "purchases")
	epoch, next := claim(t, w, "purchases.clean", 3)
	if epoch != 1 || next != 0 {
		t.Fatalf("first claim = (%d, %d), want (1, 0)", epoch, next)
	}
	write(t, w, purchases(3, 0, 3, epoch))

	checkPurchaseRows(t, w, "record_metadata")
}

func testSnowSameBatchTwice(t *testing.T, b snowBackend) {
	w := b.openSnow(t)
	ensure(t, w, "PURCHASES", "purchases")
	epoch, _ := claim(t, w, "purchases.clean", 0)
	batch := purchases(0, 0, 4, epoch)
	write(t, w, batch)
	write(t, w, batch) // a retry after a lost commit acknowledgement
	if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != 4 {
		t.Fatalf("rows = %d, want 4", n)
	}
	if got := nextOffset(t, w, "purchases.clean", 0); got != 4 {
		t.Fatalf("next offset = %d, want 4", got)
	}
	if n := scalar(t, w, `SELECT count(*) FROM sluice_stage_purchases`); n != 0 {
		t.Fatalf("staged rows left = %d", n)
	}
	// A replay of an event already in the table (a new offset, the same event id) is
	// skipped by the MERGE.
	replay := purchases(0, 4, 5, epoch)
	replay.Rows[0].EventID = purchase(0, 1).EventID
	replay.Rows[0].Values["event_id"] = purchase(0, 1).EventID
	write(t, w, replay)
	if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != 4 {
		t.Fatalf("rows after a replayed event = %d, want 4", n)
	}
}

func testSnowStaleEpoch(t *testing.T, b snowBackend) {
	w := b.openSnow(t)
	ensure(t, w, "PURCHASES", "purchases")
	old, _ := claim(t, w, "purchases.clean", 0)
	write(t, w, purchases(0, 0, 2, old))
	epoch, next := claim(t, w, "purchases.clean", 0) // a rebalance moved the partition
	if epoch != old+1 || next != 2 {
		t.Fatalf("claim = (%d, %d), want (%d, 2)", epoch, next, old+1)
	}
	if err := w.Write(t.Context(), purchases(0, 2, 5, old)); !errors.Is(err, sink.ErrFenced) {
		t.Fatalf("stale Write = %v, want ErrFenced", err)
	}
	write(t, w, purchases(0, next, 5, epoch))
	if err := w.Write(t.Context(), purchases(0, 0, 2, epoch)); !errors.Is(err, sink.ErrOffsetMismatch) {
		t.Fatalf("overtaken Write = %v, want ErrOffsetMismatch", err)
	}
	if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != 5 {
		t.Fatalf("rows = %d, want 5", n)
	}
}

// testSnowCrashAtEveryStep is TestCrashAtEveryStepThenRetry on Snowflake: a writer
// crashes after each protocol step of a batch, recovers as the sink does, and every
// record lands exactly once.
func testSnowCrashAtEveryStep(t *testing.T, b snowBackend) {
	steps := []struct {
		step           string
		committedAfter int64 // NEXT_OFFSET and rows right after the crash
	}{
		{sink.StepStaged, 4},
		{sink.StepCAS, 4},
		{sink.StepMerged, 4},
		{sink.StepDeleted, 4},
		{sink.StepCommitted, 9},
	}
	recoveries := []struct {
		name string
		// recover finishes the log [0, 12) after the crashed write of [4, 9) at oldEpoch.
		recover func(t *testing.T, w sink.Warehouse, oldEpoch int64)
	}{
		{"new owner seeks to the stored offset", func(t *testing.T, w sink.Warehouse, oldEpoch int64) {
			epoch, next := claim(t, w, "purchases.clean", 0)
			write(t, w, purchases(0, next, 12, epoch))
			if err := w.Write(t.Context(), purchases(0, 4, 9, oldEpoch)); !errors.Is(err, sink.ErrFenced) {
				t.Fatalf("the crashed writer's retry = %v, want ErrFenced", err)
			}
		}},
		{"same owner retries the batch", func(t *testing.T, w sink.Warehouse, oldEpoch int64) {
			write(t, w, purchases(0, 4, 9, oldEpoch))
			write(t, w, purchases(0, 9, 12, oldEpoch))
		}},
	}
	for _, rc := range recoveries {
		for _, st := range steps {
			t.Run(rc.name+"/"+st.step, func(t *testing.T) {
				t.Parallel()
				c := &crasher{}
				w := b.openSnow(t, sink.WithFailpoint(c.hook))
				ensure(t, w, "PURCHASES", "purchases")
				epoch, _ := claim(t, w, "purchases.clean", 0)
				write(t, w, purchases(0, 0, 4, epoch))

				c.at = st.step
				if err := w.Write(t.Context(), purchases(0, 4, 9, epoch)); !errors.Is(err, errCrash) {
					t.Fatalf("Write with a crash at %s = %v", st.step, err)
				}
				if got := nextOffset(t, w, "purchases.clean", 0); got != st.committedAfter {
					t.Fatalf("next offset after the crash = %d, want %d", got, st.committedAfter)
				}
				if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != st.committedAfter {
					t.Fatalf("rows after the crash = %d, want %d", n, st.committedAfter)
				}

				rc.recover(t, w, epoch)
				if got := nextOffset(t, w, "purchases.clean", 0); got != 12 {
					t.Fatalf("next offset = %d, want 12", got)
				}
				if n := scalar(t, w, `SELECT count(*) FROM purchases`); n != 12 {
					t.Fatalf("rows = %d, want 12", n)
				}
				if n := scalar(t, w, `SELECT count(DISTINCT event_id) FROM purchases`); n != 12 {
					t.Fatalf("distinct events = %d, want 12", n)
				}
				if n := scalar(t, w, `SELECT count(*) FROM purchases
					WHERE CAST(record_metadata:offset AS BIGINT) <> CAST(SUBSTR(event_id, 7) AS BIGINT)`); n != 0 {
					t.Fatalf("%d rows carry another record's metadata", n)
				}
				if n := scalar(t, w, `SELECT count(*) FROM sluice_stage_purchases`); n != 0 {
					t.Fatalf("staged rows left = %d", n)
				}
			})
		}
	}
}

func testSnowAggregates(t *testing.T, b snowBackend) {
	w := b.openSnow(t)
	epoch, _ := claim(t, w, "agg.revenue_by_country_1m", 0)
	write(t, w, aggBatch(0, 3, epoch,
		result(0, "DE", 0, 1, 10, false),
		result(1, "FR", 0, 1, 5, false),
		result(2, "DE", 0, 2, 30, false), // the same window again in the same batch: last wins
	))
	write(t, w, aggBatch(3, 5, epoch,
		result(3, "DE", 0, 3, 42, true), // a later batch replaces the earlier result
		result(4, "DE", 1, 1, 7, false), // the next window is a new row
	))
	want := []string{
		`{"country":"DE","currency":"EUR"} 10:00 3 42 true 10:01:03`,
		`{"country":"DE","currency":"EUR"} 10:01 1 7 false 10:02:04`,
		`{"country":"FR","currency":"EUR"} 10:00 1 5 false 10:01:01`,
	}
	if got := snowAggregates(t, w); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("aggregates:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := scalar(t, w, `SELECT count(*) FROM sluice_stage_aggregates`); n != 0 {
		t.Fatalf("staged rows left = %d", n)
	}
	// A replay of an old batch cannot bring back old values.
	if err := w.Write(t.Context(), aggBatch(0, 3, epoch, result(0, "DE", 0, 1, 10, false))); !errors.Is(err, sink.ErrOffsetMismatch) {
		t.Fatalf("replayed batch = %v, want ErrOffsetMismatch", err)
	}
	if n := scalar(t, w, `SELECT CAST(measures:count AS BIGINT) FROM aggregates
		WHERE group_key LIKE '%DE%' AND window_start = ?`, t0); n != 3 {
		t.Fatalf("count after replay = %d, want 3", n)
	}
}

// snowAggregates renders AGGREGATES as "group HH:MM count sum final emitted", sorted.
func snowAggregates(t *testing.T, w sink.Warehouse) []string {
	t.Helper()
	rows, err := w.Query(t.Context(), `SELECT group_key, window_start, measures, emitted_at
		FROM aggregates ORDER BY group_key, window_start`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var group, measures string
		var start, emitted time.Time
		if err := rows.Scan(&group, &start, &measures, &emitted); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(measures), &m); err != nil {
			t.Fatalf("MEASURES %q: %v", measures, err)
		}
		out = append(out, fmt.Sprintf("%s %s %v %v %v %s", group, start.UTC().Format("15:04"),
			m["count"], m["sum_amount"], m["final"], emitted.UTC().Format("15:04:05")))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func testSnowSchemaEvolution(t *testing.T, b snowBackend) {
	cfg := b.newSchema(t)
	w := openSnowAt(t, cfg)
	ensure(t, w, "PURCHASES", "purchases")
	epoch, _ := claim(t, w, "purchases.clean", 0)
	write(t, w, purchases(0, 0, 3, epoch))

	if err := w.EnsureTable(t.Context(), "PURCHASES", mustParse(t, purchasesV2)); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"PURCHASES", "SLUICE_STAGE_PURCHASES"} {
		if got := snowColumns(t, w, table); !strings.HasSuffix(got, ", COUPON TEXT") {
			t.Fatalf("columns of %s = %s, want COUPON TEXT added last", table, got)
		}
	}
	b2 := purchases(0, 3, 5, epoch)
	b2.Rows[0].Values["coupon"] = "XMAS"
	write(t, w, b2)
	if got := queryStrings(t, w, `SELECT COALESCE(coupon, 'NULL') FROM purchases ORDER BY event_id`); strings.Join(got, ",") != "NULL,NULL,NULL,XMAS,NULL" {
		t.Fatalf("coupons = %q", got)
	}

	// A sink that restarts with the older schema keeps the column and still writes.
	w2 := openSnowAt(t, cfg)
	ensure(t, w2, "PURCHASES", "purchases")
	epoch, next := claim(t, w2, "purchases.clean", 0)
	write(t, w2, purchases(0, next, 6, epoch))
	if n := scalar(t, w2, `SELECT count(*) FROM purchases WHERE coupon IS NULL`); n != 5 {
		t.Fatalf("rows without coupon = %d, want 5", n)
	}
}

func testSnowIncompatibleChange(t *testing.T, b snowBackend) {
	w := b.openSnow(t)
	ensure(t, w, "PURCHASES", "purchases")
	before := snowColumns(t, w, "PURCHASES")
	tests := []struct{ name, field, typ string }{
		{"int to string", "items", `"string"`},
		{"int to long", "items", `"long"`},
		{"timestamp to long", "event_time", `"long"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := w.EnsureTable(t.Context(), "PURCHASES", mustParse(t, withFieldType(t, purchasesV2, tt.field, tt.typ)))
			if !errors.Is(err, sink.ErrIncompatibleSchema) {
				t.Fatalf("EnsureTable = %v, want ErrIncompatibleSchema", err)
			}
			if after := snowColumns(t, w, "PURCHASES"); after != before {
				t.Fatalf("columns changed by a rejected schema:\n%s\n%s", before, after)
			}
		})
	}
}

func testSnowEveryType(t *testing.T, b snowBackend) {
	cfg := b.newSchema(t)
	w := openSnowAt(t, cfg)
	if err := w.EnsureTable(t.Context(), "EVERY", mustParse(t, everyType)); err != nil {
		t.Fatal(err)
	}
	// A restarted sink checks the table it made against the same schema: float and
	// double both read back as FLOAT, int and decimal(10,0) as NUMBER(10,0), and neither is
	// an incompatible change.
	if err := openSnowAt(t, cfg).EnsureTable(t.Context(), "EVERY", mustParse(t, everyType)); err != nil {
		t.Fatalf("EnsureTable again after a restart: %v", err)
	}
	wide, _ := new(big.Rat).SetString("123456789012345678901234567890.125")
	full := map[string]any{
		"event_id": "e1", "b": true, "i": 7, "l": int64(1) << 40, "f": float32(1.5),
		"d": 1234567.891, // gosnowflake itself would bind this as 1.2345679e+06
		"s": "hi", "u": "6f1c2d4e-0000-4000-8000-000000000001", "e": "B",
		"raw": []byte{0, 1, 2}, "fx": [4]byte{9, 8, 7, 6},
		"dec": big.NewRat(-31415, 100), "wide": wide,
		"day":  time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
		"tod":  10*time.Hour + 5*time.Minute + 3*time.Second + 250*time.Microsecond,
		"tsm":  time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC),
		"lts":  time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), // the first instant the sink accepts
		"tags": []any{"a", "b"}, "attrs": map[string]any{"z": int64(1), "a": int64(2)},
		"addr": map[string]any{"city": "Berlin"}, "opt": int64(5), "either": "x",
	}
	epoch, _ := claim(t, w, "every.clean", 0)
	batch := sink.Batch{Table: "EVERY", Topic: "every.clean", Start: 0, End: 4, Epoch: epoch, Rows: []sink.Row{
		{Offset: 0, Values: full},
		{Offset: 1, Values: map[string]any{"event_id": "e2"}}, // every other column NULL
		{Offset: 2, EventID: "e3", Values: map[string]any{"d": -1e300, "f": float32(0.1), "raw": []byte{}}},
		// Past 2262, where nanoseconds since 1970 overflow int64. Not 9999-12-31
		// 23:59:59.999999: fakesnow turns a timestamp bind into float seconds, which rounds
		// that to year 10000 and fails (HTTP 500); Snowflake takes it.
		{Offset: 3, EventID: "e4", Values: map[string]any{"d": 5e-324, "tsm": time.Date(2500, 1, 1, 0, 0, 0, 500000000, time.UTC)}},
	}}
	write(t, w, batch)
	write(t, w, batch) // a retry of the committed batch changes nothing

	rows, err := w.Query(t.Context(), `SELECT event_id, b, i, l, f, d, s, u, e, raw, fx, CAST(dec AS VARCHAR), wide,
		day, tod, tsm, lts, tags, attrs, addr, opt, either, tsm IS NULL, lts IS NULL FROM every ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		vals := make([]any, 24)
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		// fakesnow reads a NULL TIMESTAMP_NTZ back as 1970-01-01 (it is NULL in SQL).
		for i, isNull := range vals[22:] {
			if null, _ := isNull.(bool); null {
				vals[15+i] = nil
			}
		}
		got = append(got, snowRender(t, vals[:22]))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"e1|true|7|1099511627776|1.5|1.234567891e+06|hi|6f1c2d4e-0000-4000-8000-000000000001|B|000102|09080706|-314.15|" +
			"123456789012345678901234567890.125|2026-11-27|10:05:03.00025|2026-11-27 10:00:00.123456|" +
			`0001-01-01 00:00:00|["a","b"]|{"a":2,"z":1}|{"city":"Berlin"}|5|"x"`,
		"e2|||||||||||||||||||||",
		"e3||||0.1|-1e+300||||(empty)||||||||||||",
		"e4|||||5e-324||||||||||2500-01-01 00:00:00.5||||||",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	cols := snowColumns(t, w, "EVERY")
	for _, c := range []string{"I NUMBER(10,0)", "L NUMBER(19,0)", "F FLOAT", "RAW BINARY", "DEC NUMBER(10,2)",
		"WIDE TEXT", "DAY DATE", "TOD TIME", "TSM TIMESTAMP_NTZ", "ATTRS VARIANT"} {
		if !strings.Contains(cols, c) {
			t.Fatalf("columns of EVERY = %s, want %s", cols, c)
		}
	}
}

// snowRender joins scanned values with '|': NULL empty, times by their column's
// precision, bytes in hex, JSON normalised (Snowflake pretty-prints VARIANT).
func snowRender(t *testing.T, vals []any) string {
	t.Helper()
	parts := make([]string, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case nil:
		case []byte:
			parts[i] = hex.EncodeToString(x)
			if i == 9 && len(x) == 0 { // RAW of e3: an empty value, not NULL
				parts[i] = "(empty)"
			}
		case time.Time:
			switch i {
			case 13:
				parts[i] = x.Format(time.DateOnly)
			case 14:
				parts[i] = strings.TrimRight(x.Format("15:04:05.000000"), "0")
			default:
				parts[i] = x.UTC().Format("2006-01-02 15:04:05.999999")
			}
		case float64:
			parts[i] = strconv.FormatFloat(x, 'g', -1, 64)
		case string:
			parts[i] = x
			if i >= 17 && i != 20 { // VARIANT columns
				var j any
				if err := json.Unmarshal([]byte(x), &j); err != nil {
					t.Fatalf("column %d: %q is not JSON: %v", i, x, err)
				}
				out, _ := json.Marshal(j)
				parts[i] = string(out)
			}
		default:
			parts[i] = fmt.Sprint(x)
		}
	}
	return strings.Join(parts, "|")
}

// testSnowKeyPair logs in with an encrypted key (gosnowflake signs a JWT with it). It
// runs on fakesnow only, which takes any credentials: a real account would need the
// test key registered as the user's RSA_PUBLIC_KEY.
func testSnowKeyPair(t *testing.T, b snowBackend) {
	if b.createSchema {
		t.Skip("needs the test key registered for the user; the suite's own login covers key pairs on a real account")
	}
	cfg := b.newSchema(t)
	cfg.Password, cfg.PrivateKeyPEM, cfg.PrivateKeyPassphrase = "", []byte(keyDES3SHA1), testKeyPassphrase
	w := openSnowAt(t, cfg)
	if n := scalar(t, w, `SELECT count(*) FROM "SLUICE_MIGRATIONS"`); n != 2 {
		t.Fatalf("migrations = %d, want 2", n)
	}
}

func testSnowCheck(t *testing.T, b snowBackend) {
	cfg := b.newSchema(t)
	w := openSnowAt(t, cfg)
	ensure(t, w, "PURCHASES", "purchases")
	verdict, err := sink.CheckSnowflake(t.Context(), cfg)
	if err != nil {
		t.Fatalf("CheckSnowflake = %v\n%s", err, verdict)
	}
	for _, line := range []string{
		"ok: CREATE TABLE, INSERT, MERGE (INSERT and UPDATE), DELETE, DROP TABLE in SLUICE_TEST." + cfg.Schema,
		"ok: SELECT, INSERT, UPDATE on SLUICE_OFFSETS",
		"ok: SELECT, INSERT on PURCHASES",
		"ok: SELECT, INSERT, DELETE on SLUICE_STAGE_PURCHASES",
	} {
		if !strings.Contains(verdict, line) {
			t.Fatalf("verdict lacks %q:\n%s", line, verdict)
		}
	}
	if tables := queryStrings(t, w, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = CURRENT_SCHEMA() AND table_name LIKE 'SLUICE_CHECK_%'`); len(tables) != 0 {
		t.Fatalf("probe tables left: %q", tables)
	}
}

func TestSnowflakeTypeNames(t *testing.T) {
	d := sink.Snowflake{}
	tests := []struct {
		name     string
		typ      sink.ColumnType
		sql      string
		readBack sink.ColumnType // what ParseType makes of the name INFORMATION_SCHEMA reports
	}{
		{"string", sink.ColumnType{Kind: sink.KindString}, "VARCHAR", sink.ColumnType{Kind: sink.KindString}},
		{"int", sink.ColumnType{Kind: sink.KindInt}, "NUMBER(10,0)", sink.ColumnType{Kind: sink.KindInt}},
		{"long", sink.ColumnType{Kind: sink.KindLong}, "NUMBER(19,0)", sink.ColumnType{Kind: sink.KindLong}},
		{"double", sink.ColumnType{Kind: sink.KindDouble}, "FLOAT", sink.ColumnType{Kind: sink.KindDouble}},
		{"float reads back as double", sink.ColumnType{Kind: sink.KindFloat}, "FLOAT", sink.ColumnType{Kind: sink.KindDouble}},
		{"bool", sink.ColumnType{Kind: sink.KindBool}, "BOOLEAN", sink.ColumnType{Kind: sink.KindBool}},
		{"timestamp", sink.ColumnType{Kind: sink.KindTimestamp}, "TIMESTAMP_NTZ", sink.ColumnType{Kind: sink.KindTimestamp}},
		{"date", sink.ColumnType{Kind: sink.KindDate}, "DATE", sink.ColumnType{Kind: sink.KindDate}},
		{"time", sink.ColumnType{Kind: sink.KindTime}, "TIME", sink.ColumnType{Kind: sink.KindTime}},
		{"bytes", sink.ColumnType{Kind: sink.KindBytes}, "BINARY", sink.ColumnType{Kind: sink.KindBytes}},
		{"json", sink.ColumnType{Kind: sink.KindJSON}, "VARIANT", sink.ColumnType{Kind: sink.KindJSON}},
		{"decimal", sink.ColumnType{Kind: sink.KindDecimal, Precision: 10, Scale: 2}, "NUMBER(10,2)",
			sink.ColumnType{Kind: sink.KindDecimal, Precision: 10, Scale: 2}},
		{"decimal(38,0)", sink.ColumnType{Kind: sink.KindDecimal, Precision: 38}, "NUMBER(38,0)",
			sink.ColumnType{Kind: sink.KindDecimal, Precision: 38}},
		{"decimal(19,0) reads back as long", sink.ColumnType{Kind: sink.KindDecimal, Precision: 19}, "NUMBER(19,0)",
			sink.ColumnType{Kind: sink.KindLong}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.TypeName(tt.typ); got != tt.sql {
				t.Fatalf("TypeName(%s) = %q, want %q", tt.typ, got, tt.sql)
			}
			reported := tt.sql
			if reported == "VARCHAR" {
				reported = "TEXT" // INFORMATION_SCHEMA's name for it
			}
			if got := d.ParseType(reported); got != tt.readBack {
				t.Fatalf("ParseType(%q) = %s, want %s", reported, got, tt.readBack)
			}
		})
	}
	for _, other := range []string{"TIMESTAMP_TZ", "OBJECT", "ARRAY", "NUMBER(39,0)", "NUMBER(5,6)", "GEOGRAPHY"} {
		if got := d.ParseType(other); got.Kind != sink.KindOther || got.Raw != other {
			t.Fatalf("ParseType(%q) = %+v, want KindOther", other, got)
		}
	}
}

func TestSnowflakeStatements(t *testing.T) {
	d := sink.Snowflake{}
	cols := []sink.Column{
		{Name: "K", Type: sink.ColumnType{Kind: sink.KindString}},
		{Name: "M", Type: sink.ColumnType{Kind: sink.KindJSON}},
		{Name: "N", Type: sink.ColumnType{Kind: sink.KindDecimal, Precision: 5, Scale: 1}},
	}
	sel := `SELECT "K", PARSE_JSON("M") AS "M", "N" FROM "S" WHERE "X" = ?`
	tests := []struct{ name, got, want string }{
		{"merge ignoring existing keys", d.InsertSelect("T", cols, []string{"K"}, sel, sink.ConflictIgnore),
			`MERGE INTO "T" AS T USING (` + sel + `) AS S ON T."K" = S."K" ` +
				`WHEN NOT MATCHED THEN INSERT ("K", "M", "N") VALUES (S."K", S."M", S."N")`},
		{"merge replacing existing keys", d.InsertSelect("T", cols, []string{"K"}, sel, sink.ConflictReplace),
			`MERGE INTO "T" AS T USING (` + sel + `) AS S ON T."K" = S."K" ` +
				`WHEN MATCHED THEN UPDATE SET "M" = S."M", "N" = S."N" ` +
				`WHEN NOT MATCHED THEN INSERT ("K", "M", "N") VALUES (S."K", S."M", S."N")`},
		{"replace with only key columns", d.InsertSelect("T", cols[:1], []string{"K"}, sel, sink.ConflictReplace),
			`MERGE INTO "T" AS T USING (` + sel + `) AS S ON T."K" = S."K" ` +
				`WHEN NOT MATCHED THEN INSERT ("K") VALUES (S."K")`},
		{"no key", d.InsertSelect("T", cols, nil, sel, sink.ConflictIgnore), `INSERT INTO "T" ("K", "M", "N") ` + sel},
		{"create", d.CreateTable("T", cols, []string{"K"}),
			`CREATE TABLE IF NOT EXISTS "T" ("K" VARCHAR, "M" VARIANT, "N" NUMBER(5,1), PRIMARY KEY ("K"))`},
		{"add column", d.AddColumn("T", cols[1]), `ALTER TABLE "T" ADD COLUMN IF NOT EXISTS "M" VARIANT`},
		{"insert values", d.InsertValues("T", cols[:2], 2), `INSERT INTO "T" ("K", "M") VALUES (?, ?), (?, ?)`},
		{"from stage json", d.FromStage(cols[1]), `PARSE_JSON("M")`},
		{"from stage decimal", d.FromStage(cols[2]), `CAST("N" AS NUMBER(5,1))`},
		{"from stage string", d.FromStage(cols[0]), `"K"`},
		{"quote", d.Quote(`A"B`), `"A""B"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("\n got %s\nwant %s", tt.got, tt.want)
			}
		})
	}
}

func TestSnowflakeConfigValidate(t *testing.T) {
	good := sink.SnowflakeConfig{Account: "org-acct", User: "SLUICE", Database: "DB", Schema: "PUBLIC", Password: "pw"}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: testKeyPKCS8(t)})
	tests := []struct {
		name   string
		mutate func(c *sink.SnowflakeConfig)
		want   string // "" = valid; else the field the error names
	}{
		{"password", func(c *sink.SnowflakeConfig) {}, ""},
		{"key pair", func(c *sink.SnowflakeConfig) { c.Password, c.PrivateKeyPEM = "", keyPEM }, ""},
		{"encrypted key pair", func(c *sink.SnowflakeConfig) {
			c.Password, c.PrivateKeyPEM, c.PrivateKeyPassphrase = "", []byte(keyAES256SHA256), testKeyPassphrase
		}, ""},
		{"local server", func(c *sink.SnowflakeConfig) { c.Host, c.Port, c.Protocol = "127.0.0.1", 8080, "http" }, ""},
		{"no account", func(c *sink.SnowflakeConfig) { c.Account = " " }, "snowflake.account"},
		{"no user", func(c *sink.SnowflakeConfig) { c.User = "" }, "snowflake.user"},
		{"no database", func(c *sink.SnowflakeConfig) { c.Database = "" }, "snowflake.database"},
		{"no schema", func(c *sink.SnowflakeConfig) { c.Schema = "" }, "snowflake.schema"},
		{"no credentials", func(c *sink.SnowflakeConfig) { c.Password = "" }, "snowflake.password"},
		{"password and key", func(c *sink.SnowflakeConfig) { c.PrivateKeyPEM = keyPEM }, "snowflake.password"},
		{"passphrase without key", func(c *sink.SnowflakeConfig) { c.PrivateKeyPassphrase = "x" }, "snowflake.private_key_passphrase"},
		{"bad key", func(c *sink.SnowflakeConfig) { c.Password, c.PrivateKeyPEM = "", []byte("nope") }, "snowflake.private_key"},
		{"wrong passphrase", func(c *sink.SnowflakeConfig) {
			c.Password, c.PrivateKeyPEM, c.PrivateKeyPassphrase = "", []byte(keyAES256SHA256), "wrong"
		}, "snowflake.private_key"},
		{"port", func(c *sink.SnowflakeConfig) { c.Port = 70000 }, "snowflake.port"},
		{"protocol", func(c *sink.SnowflakeConfig) { c.Protocol = "ftp" }, "snowflake.protocol"},
		{"host with scheme", func(c *sink.SnowflakeConfig) { c.Host = "https://x.snowflakecomputing.com" }, "snowflake.host"},
		{"retries", func(c *sink.SnowflakeConfig) { c.MaxRetryCount = -1 }, "snowflake.max_retry_count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want+":")):
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestCheckSnowflakeUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	if err := ln.Close(); err != nil { // nothing listens there now: connection refused
		t.Fatal(err)
	}
	cfg := sink.SnowflakeConfig{Account: "fakesnow", User: "u", Password: "p", Database: "D", Schema: "S",
		Host: "127.0.0.1", Port: addr.Port, Protocol: "http", MaxRetryCount: 1}
	verdict, err := sink.CheckSnowflake(t.Context(), cfg)
	if err == nil || !strings.HasPrefix(verdict, "FAIL: connect: ") {
		t.Fatalf("CheckSnowflake = %v\n%s\nwant a failed connect", err, verdict)
	}
}

// testKeyPassphrase encrypts the test keys below. They are throwaway keys made for this
// test with OpenSSL 3 and used nowhere else:
//
//	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out plain.pem
//	openssl pkcs8 -topk8 -in plain.pem -passout pass:sluice-test                # AES-256-CBC, HMAC-SHA256
//	openssl pkcs8 -topk8 -v2 des3 -v2prf hmacWithSHA1 -in plain.pem -passout pass:sluice-test
//	openssl pkcs8 -topk8 -v2 aes-128-cbc -v2prf hmacWithSHA512 -iter 1000 -in plain.pem -passout pass:sluice-test
const testKeyPassphrase = "sluice-test"

// testKeyModulusSHA256 is the SHA-256 of the key's modulus (openssl rsa -noout -modulus).
const testKeyModulusSHA256 = "c1ec4546c13acce88cc13939846a45d34936cd2b2f2320254cedb37676ae41c2"

const (
	keyAES256SHA256 = `-----BEGIN ENCRYPTED PRIVATE KEY-----
MIIFLTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI9WxH1nykhvoCAggA
MAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAEqBBAHR2HnyIn/MnwfvPn21XhGBIIE
0MBuIYczxo0EQuiUlDZ5NQcFp45JhmBZTIdevwibKF/sCAlx0odyng8ntIb3D6lY
0I+EEnQkP31Ndmif49EomWDip5w5L2RVZQQB6UOSGqKTOyid8tFwAX/0HaLsSxv9
8HmWcnYDQ7EjjLCpu3qM0HPZOs3TGESyleSBg8XYpoXwhC728PunMEqkkWU8Chfr
hP+f8D1Yprs5vPDpdJNIcPAkNxApR+y4hu32T1ImQdTODFdBeQ3hPNF/ak8qsr5Q
FCYYk4ocTMxpBDqXUdaHQMUvstFm61f/bIOoMbaoILvJ00H8ajEUc07nC7Mnj4ma
z3VNZvQVs3FeZS+KeINM8/LNsVVhvWQRvOoFLFc5mkYNON5VoD+MVTTCoYtSg4C+
zoR9YoNl/22AkA5B+InNgY4lc+Q4SgKnKhyl5Bd1TYX+gXaGzffQax/HUaaMDzMr
8HB/sY0rp8ZVgj7GiSFiY6GQUK2GvBw2fyRY4u+kWPnZ6uEdljZ/VmcmnQQI5Bzb
Y/rMFenIRi4ZZ8jWFypSH08madCmjtza9VC16ReZKwO34NZY3q+vAUAQf2KjB//6
TjSGzUQ6/FlYUDDrs02X+wf/kQvReFwl9p0uN3JhxIDrZXAdVs95Dv07sXyb8PS5
bDle1DAk7Il4+LY82U92T6wfVwaaqnJZMwafR9GM/KWgOW0uyRTasCEXSZaKLQux
wo7Ey0XkMChDUgSKZbrJSwVpyryKHLkE0IuwesC3OnLf81mfn+6tmOEyFr5hbtxB
ZOryZEr5vrbtlOBRA+IbpEWL3TTLD8+GTrEegEjRocricvoJaXn5tjS1WhlEEnYp
dWRq8icnmDCo5LFUgiYi+JqYePxmeMgIJsdcq52eur+UDF4/XWzEZoXNcz5HsYfo
92AS8/H4DLT74RrqzN02lXt81DYlF8k8Up32vSKrGGkXx+nd5a6MRQwxz2WF6riE
gvP92NHhio6ZyuXbxH/z/xnXx0GjQ4TiRhSMjk90qaQzdkqgfigxMifoNvmJED77
NLunKxq8ubFbb22VaeAx9fLqLAs7N3JtaKn55/RuXtm3eCcDAQruVSaie35wG7vW
ujHmMc70CIlb9opoccD1/4yS1vB7uMtYrZZ0+YytxYAoYk5pcE9NC5rsCc0czjQ3
pKe14Lav2Ml04P2LTeD302tbElvLZ7OhFpHwczMiFt9SrghdYO8iWSmF802Yzpkw
p9W2GDbB7PhfPPfA1f1Bg3NuRgf1TZesxdcisbsNyjnX86lmslzx3TOrCyJt7so8
4C77YWhRawpSBii9jh/02guEvGS6bXl1IrxO+Jww+H63kzWzPtuK+0Ihb+LdaiFV
SX2FbKxtZRzGdaGLBbU470bLC4Cdnndo9oYB9O0fNdOdIRaBEnfzbaAhmKGJwgOb
Yp1iojZvyxAz/jB0WipMVuCHWrZF48tx/cQ9BwqcscGIwf05l3gI9vSJuE9loXqY
/Bj/UYzA2CliWyz+LhXNFnCBDxizTTfMXesjAOalL/O9ydfc5IOLwRS5F4bGdCQf
CF/CfNNVXlm+Bpeu0XZrWqhP9XxzNkwSUCdqVl9FVlHJQU4/WYvlHvM4lwRuZ+U1
jNLY3PpOSlshs7k0JDo3UIkP7hHHO3FtNKtDo3145d9Q
-----END ENCRYPTED PRIVATE KEY-----`
	keyDES3SHA1 = `-----BEGIN ENCRYPTED PRIVATE KEY-----
MIIFDjBABgkqhkiG9w0BBQ0wMzAbBgkqhkiG9w0BBQwwDgQI2toTaOkdfBICAggA
MBQGCCqGSIb3DQMHBAjBD3Mr1XjSBASCBMgDXi8k7cgnMr9ZhihtQTesb3Yt9KNV
zhmyZzPZld5WFhN+T+cMyvfTj1mbj71QKLmbP+DW4a2knJvtTmnvb/usGvCqTlNf
OCmE5NuhtpeHSOUoKKcNK8fIA9/KKFvfgVXUN3RRktOViAI3IOmZ8wgoG3oEXK8I
f/qiwcUGWdfCmVVlZNubYA2zeUiBjxC7meRR4v88QyRijcwpyJDqcIGhTVBkPxN9
23ebB+hpXkUJMebgeZyGZTvQr2ls1CMfzgTXjOO50kJ2FAtDEhd6qcWIuKROkyX4
WVoN8IOJfP49AnI0u1KwgortOC+bIB20xST5e6GybdUoUUUd/7/hXv1gaBCbV2Jg
yqEvG6TuoSquPAME3g+VFO1D8iuNYfA65l19Aj2XZ8YM71040m7ugGxMu7eh5fby
vEmgZ/1f7VI4I/dQv4hEUicUq1RQdP7F1LdDZziBpfWwc93LluE/NZZwPFncTiMW
bCBCawgEPml06/FAC9J+85/JQVcerC06O78s++bHHOwX3dxyR4FIpz92N6KXIfqm
bhn4/ltjk93d6JhzGGvrSnALyhwG8IVpKOSqDY7y4bwc1q2mooGj6U4oJ9gY0tjG
K0ZVSDZair8MH3IHZlRmj54uCHqttYUz/4CUPlAy34dIAUgkIGIgKcNe9x8iLwEp
0Bg+6oIWCAQllFS5SQAjnnTcxDGTHuMvLYtqFduCQ5kdCugX/+rLJtehsvIE5G8x
Ay4UO4Zh2YAetRtfiRUurOf6EGUmOd4ELFDywVxA6sg9kHgpUZqQJpm0oUH7iask
bmfs//KbyM5+F27RpSIzgSZI0AuozWPE3DjIZTwzdwpmzY+MMqjX7eceAGUQICt+
3aLG3uohhhndFUwyAWFPGZZyP7qki/XdBZcL8mtUdxe6ieb7ACS+RjDMxUmeZQFh
PcvCToq1SYzyO+ibLGomumhO+rcdXCdCEpkLTApYX39H9n84+668bfhTy3/J6BFZ
pz4Iju3y+bUz/eEmn3mph6Uk7xxq0QziDj0demNI61cHoYfAMoXU2vne37mpz5vZ
2AFojGHy7P/vBUbyK7uy3suXEn7kqKXYKMX6kGTjO4anCvhcab38wvad5qGlflOc
Lf3bfwnmG/1pK+Cg+Svx2SRZ4DkemQYnmppEzmdVC/ITB2GA9NQkFhDtNmeV4Emc
dWRsJbc+ttmkoFAvO9F96CZfer2U1QmOgSRBBn17dRXS2eCJPjVaxv1Y2iF26DCH
fp3ObgiykSQlB8VcQ15vA+bIUMri/6wjsHPA//RUERSSbmjTsul6BJdcoCtrZavi
To6wQFN0AZ4UjtnZCzp8W85OUUhtZeCRZvUL41l6WeiJuPAvps+onkidxs4R5xm8
uUDgUpKwAGVk5tNxNxaTcxPPvOG78n8KjyNIfClo/mUUflWLxr//Axb1hNxOTA4J
CiN9Bze0BvbFKyKB3ljWLhSSPGHrh0l9aNhUD8VC3f1efDvKKyWx7cIKl6nrqc64
fIrNK1jA+CbSyfkLIAnKpho1HIZCzbBTbNjuYeoHtvyenUcwC2cDLZK3O/S/o+cl
6LeaS4av0NdSYfaTixJnXlvJcP3p0DYPKlgetZS+SRWznAYrOzvoiMHWvNZIxlJ3
7i8=
-----END ENCRYPTED PRIVATE KEY-----`
	keyAES128SHA512 = `-----BEGIN ENCRYPTED PRIVATE KEY-----
MIIFLTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQIhXR34P2JPvYCAgPo
MAwGCCqGSIb3DQILBQAwHQYJYIZIAWUDBAECBBD3hw9gQij0h9NrI5tBSWAQBIIE
0OisU0IQvKrMPY3hRn9Mg4bkHKDJDN6xOf0uQNYhNUovCQ9QAh/ZQ5H0xQofvndd
MCJjc4W1Odyi47o5gCHT1EMdMd/RPJP4unTI+5/q1eqfPxhQi7mqpH2z9LgxUuh5
doz/XuI2Vo6ZwA7/Gz9tH/ioTi2l59wJ4oqryV4gBhP3W/jlnJXw6P13QJ7WyOOM
QP3ja98O3K9yeY/zi3CoOQ8lp5nvqviCjzBUlUMhZOuTt+5cee21NP9/MLEDYViC
/LvCLi0H/9nupShUdW9sa14/Knkz5MSmn4lIbQGmpfiULwxE3RaEX5CFL9NCVSkL
3GCT5sM+0VARk5s9Y4o7vXIpU9lPzUg7mEe51qj376sQM84uNFaI9yRUUmLuaCAv
oxmeTaAK+uZhx8NZvKdNnzdycPDc/b3bHyB+GixeL/+5ig2mYLDFjS9rqQsavgy/
PK56xgjkhF73JZf7IuGe4SbfCPPm7HSWdm66zhDM7wQLX96JI8nnajfSGkZeeEtE
+pYVJkPWdTwkQMEILPnmyrj3V1sFK0UzK4WQmBGVqusSRrO7s1tGuQ1gzCjIabcz
SA8UKzTA8QsTUfewe+6SSZ4qXP6+Ic/d1+SDJYF40O6yFxOqSQPvDWCk8sQwJND/
93k4GPZnSAC1Hley5Uvvdk1Cl3pGO9YYVEawprh2uqMpNnELnu6SnCZWibv6MhmL
hz5iXN+gRYmyrXnhIvKqOJUKmlAagtFbi4bfgFTM08D/kveMI9Y0TVrPVI+J5Im1
pHqgNdtO7+mEt5TjkseJfIlMZS35N8E+iXfEW9uOJi0+/fhAoi5VqFiJT3EYR1Im
a5NzIewKgXuDaT6suZgPgRyoE5f3Dxp2DEaA/TPxlag5RFf6suoIf+l+7V+SPKkh
h2bipNjomsIFrIE9ZitHagcp0sOzcqMPJIYBxljjdPI+v+xJE7Dn2bKBnDnW9xGx
/KEVfPe0UmNU9lqVUTmQ97wXSSO/7y5mZ/eifOiSa1iMjN9aC2mwJT3AYjFPwY8L
Xf5UdP4KTc28K9EH3gb8doWZrEOVG4gW3non5wlwhwhT7w7JV2VqSwF9v+4+mQXd
IkJYJlLlHSDvSeYUAKicwUQPKOSF+d+JryB2Hut1YvfbMFbtRoL04x//P/GLnDJH
wI+KLv6BBufRLp7y6XfMYaCuIxzZcjUsbw4ilvBga6gnUvGN8dE5TwlEI4/XMlUj
68Qri6mgN8OZ2sIUznEHZyqaw5HPAPXTG/MgCwk08olqYvZbd+bGasv1Gnc/lCel
Av6MIqUQ1wQzATtKmD+FVDB6hifFw/082IBQxC9aoc0j6rPo2k7X6T2VfSx6f7N0
bZ0PDId7/301BxUVNT2OWwpndNHbUwCxwSPRzjUbh9tkyuNgXF7LuJceOoRR4zgb
92oTt7jxioF3hfO9YcgSbM2HmtmexjWkUbASObF31nOIrJMipLRCxyi05tvdJgpx
0YeP1ZPvbWmLhwYJ9n4ucxyH0Sxb/eWDnIBM5dDpqj9XY5GlXm7QVYdA6GXSvxWE
M6wu13mwpQ853xZcM1yow0i7ePIEH+0zxmrml12CflibIuYmfNkwPoOEZYq30iDa
vuuwo486l3yaN4C2MJGkuryQV/m3ijo/Nx/KFMTfKGUj
-----END ENCRYPTED PRIVATE KEY-----`
)

// testKeyPKCS8 is the test key as plain PKCS#8 DER.
func testKeyPKCS8(t testing.TB) []byte {
	t.Helper()
	key, err := sink.ParseSnowflakeKey([]byte(keyAES256SHA256), testKeyPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParseSnowflakeKey(t *testing.T) {
	plain := testKeyPKCS8(t)
	rsaKey, err := x509.ParsePKCS8PrivateKey(plain)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	block := func(typ string, der []byte, headers map[string]string) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: der})
	}
	tests := []struct {
		name, pem, passphrase string
		wantErr               string // "" = parses to the test key
	}{
		{"PKCS#8", string(block("PRIVATE KEY", plain, nil)), "", ""},
		{"PKCS#8 ignores a passphrase", string(block("PRIVATE KEY", plain, nil)), "unused", ""},
		{"PKCS#1", string(block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey.(*rsa.PrivateKey)), nil)), "", ""},
		{"PBES2 AES-256-CBC HMAC-SHA256 (openssl default)", keyAES256SHA256, testKeyPassphrase, ""},
		{"PBES2 DES-EDE3-CBC HMAC-SHA1 (Snowflake docs)", keyDES3SHA1, testKeyPassphrase, ""},
		{"PBES2 AES-128-CBC HMAC-SHA512", keyAES128SHA512, testKeyPassphrase, ""},
		{"wrong passphrase", keyAES256SHA256, "sluice-tesT", "wrong passphrase"},
		{"no passphrase", keyDES3SHA1, "", "set the passphrase"},
		{"EC key", string(block("PRIVATE KEY", ecDER, nil)), "", "needs RSA"},
		{"legacy PEM encryption", string(block("RSA PRIVATE KEY", []byte{1}, map[string]string{"Proc-Type": "4,ENCRYPTED"})), "x", "legacy PEM"},
		{"certificate", string(block("CERTIFICATE", []byte{1}, nil)), "", "PEM block"},
		{"not PEM", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ", "", "no PEM block"},
		{"truncated DER", string(block("ENCRYPTED PRIVATE KEY", []byte{0x30, 0x82, 0x05}, nil)), "x", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := sink.ParseSnowflakeKey([]byte(tt.pem), tt.passphrase)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSnowflakeKey = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(key.N.Bytes()); hex.EncodeToString(sum[:]) != testKeyModulusSHA256 {
				t.Fatal("parsed another key than the test key")
			}
		})
	}
}

// FuzzParseSnowflakeKey feeds arbitrary PEM to the key parser (a config value): it must
// return a key or an error, never panic or spin.
func FuzzParseSnowflakeKey(f *testing.F) {
	for _, k := range []string{keyAES256SHA256, keyDES3SHA1, keyAES128SHA512} {
		f.Add([]byte(k), testKeyPassphrase)
		if b, _ := pem.Decode([]byte(k)); b != nil {
			f.Add(b.Bytes, "") // raw DER: exercised below as an encrypted block
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, passphrase string) {
		_, _ = sink.ParseSnowflakeKey(data, passphrase)
		encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: data})
		_, _ = sink.ParseSnowflakeKey(encrypted, passphrase+"x")
	})
}
