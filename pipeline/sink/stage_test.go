package sink_test

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/sink"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Committed purchases land once each, aborted ones never; SLUICE_OFFSETS and the
// group's lag offsets reach the end of the log (markers included); metrics count rows
// and report freshness against the injected clock.
func TestStageWritesExactlyOnce(t *testing.T) {
	e := newStageEnv(t)
	e.produce(true, e.purchases(20)...)
	e.produce(false, e.purchases(5)...) // aborted: its rows never land, its offsets are covered
	e.produce(true, e.purchases(20)...)

	clock := newFakeClock(t0.Add(time.Hour))
	reg := prometheus.NewRegistry()
	cfg := e.config(e.w, clock)
	cfg.FlushRows = 7 // flushes by rows and, for the rest, by time
	cfg.Registerer = reg
	var (
		latMu   sync.Mutex
		latency []time.Duration
	)
	cfg.Latency = func(topic string, d time.Duration) {
		latMu.Lock()
		defer latMu.Unlock()
		if topic == cleanTopic {
			latency = append(latency, d)
		}
	}
	e.run(cfg)
	e.waitOffsets(cleanTopic, func() { clock.Advance(cfg.FlushInterval) })
	e.checkRows()
	if n := count(t, e.w, "purchases"); n != 120 {
		t.Fatalf("PURCHASES has %d rows, want 120", n)
	}

	ends := e.ends(cleanTopic)
	eventually(t, func() bool {
		offs, err := e.adm.FetchOffsets(t.Context(), wire.GroupID(wire.StageSink))
		if err != nil {
			return false
		}
		for p, end := range ends {
			if o, ok := offs.Lookup(cleanTopic, p); !ok || o.At != end {
				return false
			}
		}
		return true
	}, "group %s commits the warehouse offsets %v for lag", wire.GroupID(wire.StageSink), ends)

	if got := metricValue(t, reg, "sluice_sink_rows_total", "table", "PURCHASES"); got != 120 {
		t.Errorf("sluice_sink_rows_total = %v, want 120", got)
	}
	if got := metricValue(t, reg, "sluice_sink_flush_duration_seconds", "table", "PURCHASES"); got < 6 {
		t.Errorf("flushes observed = %v, want at least 6", got)
	}
	if got := metricValue(t, reg, "sluice_sink_errors_total"); got != 0 {
		t.Errorf("sluice_sink_errors_total = %v, want 0", got)
	}
	latMu.Lock()
	if len(latency) != 120 || slices.Min(latency) < 59*time.Minute {
		t.Errorf("latency observed %d times, want 120 of about 1h: %v", len(latency), latency)
	}
	latMu.Unlock()
	// The newest committed purchase is seq 44, ingested at t0 + 44ms.
	want := clock.Now().Sub(t0.Add(44 * time.Millisecond)).Seconds()
	if got := metricValue(t, reg, "sluice_sink_freshness_seconds", "table", "PURCHASES"); math.Abs(got-want) > 1e-6 {
		t.Errorf("sluice_sink_freshness_seconds = %v, want %v", got, want)
	}
}

// The time flush fires FlushInterval after the first buffered record although no
// further record arrives: the poll wakes on the injected clock.
func TestStageTimeFlushWithoutNewRecords(t *testing.T) {
	e := newStageEnv(t)
	var recs []*kgo.Record
	for seq := range 5 {
		recs = append(recs, e.purchaseRecord(e.clean, 0, seq, nil))
	}
	e.produce(true, recs...)

	clock := newFakeClock(t0)
	cfg := e.config(e.w, clock)
	cfg.FlushRows = 1000
	cfg.FlushInterval = time.Minute
	e.run(cfg)
	// Once the records are buffered the stage arms its flush timer a minute ahead.
	eventually(t, func() bool { return slices.Contains(clock.pending(), time.Minute) }, "flush timer armed")
	if n := count(t, e.w, "purchases"); n != 0 {
		t.Fatalf("%d rows before the flush interval, want 0", n)
	}
	clock.Advance(time.Minute)
	e.waitOffsets(cleanTopic, nil) // no new records, no further clock move
	e.checkRows()
}

// A sink killed after its warehouse commit but before it learned of it (a lost
// acknowledgement) is replaced by a new instance: every row lands once and no batch is
// written twice.
func TestStageKilledMidwayRestartsExactlyOnce(t *testing.T) {
	e := newStageEnv(t)
	for range 4 {
		e.produce(true, e.purchases(25)...)
	}
	lost := make(chan struct{})
	a := &countingWarehouse{Warehouse: e.w, afterWrite: func(ctx context.Context, n int) error {
		if n < 4 {
			return nil
		}
		close(lost)
		<-ctx.Done() // committed; the process dies before it hears back
		return ctx.Err()
	}}
	cfg := e.config(a, nil)
	cfg.FlushRows, cfg.InstanceID = 10, "a"
	ra := e.run(cfg)
	select {
	case <-lost:
	case <-time.After(waitFor):
		t.Fatal("the first sink never wrote four batches")
	}
	ra.kill(t)
	if n := count(t, e.w, "purchases"); n == 0 || n == 300 {
		t.Fatalf("%d rows when killed, want some but not all", n)
	}

	b := &countingWarehouse{Warehouse: e.w}
	cfg.Warehouse, cfg.InstanceID = b, "b"
	e.run(cfg)
	e.waitOffsets(cleanTopic, nil)
	e.checkRows()
	_, rowsA, _ := a.counts()
	_, rowsB, _ := b.counts()
	if rowsA+rowsB != 300 {
		t.Fatalf("rows committed %d (killed) + %d (restarted), want 300 in total: a batch was written twice or lost", rowsA, rowsB)
	}
}

// A second sink joining the group mid-way takes partitions over: the first drops what
// it buffered for them, the second re-reads from the warehouse offset, and every row
// lands once with no batch written twice.
func TestStageRebalanceExactlyOnce(t *testing.T) {
	e := newStageEnv(t)
	clock := newFakeClock(t0)
	e.produce(true, e.purchases(25)...)

	a := &countingWarehouse{Warehouse: e.w}
	cfg := e.config(a, clock)
	cfg.FlushRows, cfg.FlushInterval, cfg.InstanceID = 10, time.Minute, "a"
	e.run(cfg)
	// 25 per partition: two flushes of 10 each, 5 left buffered (the clock stands still).
	eventually(t, func() bool { _, rows, _ := a.counts(); return rows == 60 }, "first sink commits 60 rows")

	b := &countingWarehouse{Warehouse: e.w}
	cfg.Warehouse, cfg.InstanceID = b, "b"
	e.run(cfg)
	eventually(t, func() bool { _, _, claims := b.counts(); return claims > 0 }, "second sink is assigned a partition")

	e.produce(true, e.purchases(25)...)
	e.waitOffsets(cleanTopic, func() { clock.Advance(time.Minute) })
	e.checkRows()
	_, rowsA, _ := a.counts()
	_, rowsB, _ := b.counts()
	if rowsA+rowsB != 150 || rowsB == 0 {
		t.Fatalf("rows committed %d (first) + %d (second), want 150 in total with some by the second", rowsA, rowsB)
	}
}

// A partition claimed by another owner stops (ErrFenced) while the others go on; after
// FencedRetry the sink, still assigned the partition, claims it again and catches up.
func TestStageFencedPartitionStopsThenReclaims(t *testing.T) {
	e := newStageEnv(t)
	e.produce(true, e.purchases(5)...)
	clock := newFakeClock(t0)
	reg := prometheus.NewRegistry()
	a := &countingWarehouse{Warehouse: e.w}
	cfg := e.config(a, clock)
	cfg.FlushRows, cfg.FlushInterval, cfg.FencedRetry, cfg.Registerer = 1000, time.Second, time.Hour, reg
	e.run(cfg)
	eventually(t, func() bool { _, _, claims := a.counts(); return claims == stagePartitions }, "the sink claims every partition")
	claim(t, e.w, cleanTopic, 0) // another owner

	ends := e.ends(cleanTopic)
	eventually(t, func() bool {
		clock.Advance(time.Second)
		return metricValue(t, reg, "sluice_sink_errors_total", "class", sink.ErrClassFenced) == 1 &&
			nextOffset(t, e.w, cleanTopic, 1) == ends[1] && nextOffset(t, e.w, cleanTopic, 2) == ends[2]
	}, "partition 0 fenced, partitions 1 and 2 committed")
	if got := nextOffset(t, e.w, cleanTopic, 0); got != 0 {
		t.Fatalf("fenced partition 0 committed up to %d", got)
	}

	clock.Advance(time.Hour)
	e.waitOffsets(cleanTopic, func() { clock.Advance(time.Second) })
	e.checkRows()
}

// When the warehouse offset moved under the sink (same epoch, another writer), the
// sink claims again, seeks to the stored offset and goes on from there.
func TestStageOffsetMismatchClaimsAgain(t *testing.T) {
	e := newStageEnv(t)
	e.produce(true, e.purchases(5)...)
	clock := newFakeClock(t0)
	reg := prometheus.NewRegistry()
	a := &countingWarehouse{Warehouse: e.w}
	cfg := e.config(a, clock)
	cfg.FlushRows, cfg.FlushInterval, cfg.Registerer = 1000, time.Second, reg
	e.run(cfg)
	eventually(t, func() bool { _, _, claims := a.counts(); return claims == stagePartitions }, "the sink claims every partition")
	// Offsets 0 and 1 of partition 0 committed by someone else, with the sink's epoch.
	write(t, e.w, sink.Batch{Table: "PURCHASES", Topic: cleanTopic, Partition: 0, Start: 0, End: 2, Epoch: 1})
	delete(e.written, "ev-00-000000")
	delete(e.written, "ev-00-000001")

	e.waitOffsets(cleanTopic, func() { clock.Advance(time.Second) })
	e.checkRows()
	if got := metricValue(t, reg, "sluice_sink_errors_total", "class", sink.ErrClassOffsetMismatch); got != 1 {
		t.Errorf("offset mismatches = %v, want 1", got)
	}
	if _, _, claims := a.counts(); claims != stagePartitions+1 {
		t.Errorf("claims = %d, want %d", claims, stagePartitions+1)
	}
}

// A row the warehouse rejects and a record that does not decode go to the DLQ with
// sluice-stage sink before their offsets commit; the other rows land.
func TestStageDeadLetters(t *testing.T) {
	e := newStageEnv(t)
	good := e.purchases(3)
	rejected := e.purchaseRecord(e.clean, 1, 100, nil)
	rejected.Headers[0].Value = []byte("another-id") // event_id differs from the header
	garbage := &kgo.Record{Topic: cleanTopic, Partition: 2, Value: []byte("not avro"),
		Headers: []kgo.RecordHeader{{Key: wire.HeaderEventID, Value: []byte("garbage")}}}
	e.produce(true, append(good, rejected, garbage)...)
	delete(e.written, "another-id")
	delete(e.written, "garbage")

	reg := prometheus.NewRegistry()
	cfg := e.config(e.w, nil)
	cfg.Registerer = reg
	e.run(cfg)
	e.waitOffsets(cleanTopic, nil)
	e.checkRows()

	dead := e.readDLQ(cleanDLQ)
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}
	slices.SortFunc(dead, func(a, b *kgo.Record) int { return int(a.Partition - b.Partition) })
	for i, tt := range []struct {
		orig *kgo.Record
		err  string
	}{
		{rejected, "differs from the sluice-event-id header"},
		{garbage, "malformed"},
	} {
		d := dead[i]
		for k, want := range map[string]string{
			wire.HeaderStage:             wire.StageSink,
			wire.HeaderClass:             string(dlq.Permanent),
			wire.HeaderOriginalTopic:     cleanTopic,
			wire.HeaderOriginalPartition: strconv.Itoa(int(tt.orig.Partition)),
			wire.HeaderOriginalOffset:    strconv.FormatInt(tt.orig.Offset, 10),
			wire.HeaderAttempts:          "1",
		} {
			if got := headerOf(d, k); got != want {
				t.Errorf("dead letter %d: %s = %q, want %q", i, k, got, want)
			}
		}
		if !strings.Contains(headerOf(d, wire.HeaderError), tt.err) {
			t.Errorf("dead letter %d: %s = %q, want it to mention %q", i, wire.HeaderError, headerOf(d, wire.HeaderError), tt.err)
		}
		if string(d.Value) != string(tt.orig.Value) || d.Partition != tt.orig.Partition {
			t.Errorf("dead letter %d: value or partition (%d) changed", i, d.Partition)
		}
	}
	for class, want := range map[string]float64{sink.ErrClassRejected: 1, sink.ErrClassUndecodable: 1, sink.ErrClassTransient: 0} {
		if got := metricValue(t, reg, "sluice_sink_errors_total", "class", class); got != want {
			t.Errorf("sluice_sink_errors_total{class=%s} = %v, want %v", class, got, want)
		}
	}
}

// A dead letter is durable before the offsets that cover it commit: while the broker
// refuses writes to the DLQ the partition holding the bad record does not move past
// it, and it commits once the DLQ accepts the letter.
func TestStageDeadLetterDurableBeforeOffsets(t *testing.T) {
	e := newStageEnv(t)
	bad := e.purchaseRecord(e.clean, 1, 100, nil)
	bad.Value = []byte("not avro")
	e.produce(true, append(e.purchases(2), bad)...)
	delete(e.written, "ev-01-000100")
	refuse := e.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: cleanDLQ, Err: kerr.NotEnoughReplicas, Count: -1})

	e.run(e.config(e.w, nil))
	eventually(t, func() bool { return refuse.Hits() >= 2 }, "the sink tries the DLQ twice")
	if got := nextOffset(t, e.w, cleanTopic, 1); got > bad.Offset {
		t.Fatalf("partition 1 committed up to %d, past its undelivered dead letter at %d", got, bad.Offset)
	}
	refuse.Remove()
	e.waitOffsets(cleanTopic, nil)
	e.checkRows()
	if dead := e.readDLQ(cleanDLQ); len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
}

// A new optional field adds a column when its first record arrives; a writer schema
// whose field changed type sends its records to the DLQ and leaves the table alone.
func TestStageSchemaEvolution(t *testing.T) {
	e := newStageEnv(t)
	v2 := e.register(cleanTopic+"-value", withField(t, e.clean,
		map[string]any{"name": "coupon", "type": []any{"null", "string"}, "default": nil}, ""))
	// Registered under another subject: the registry would refuse it as a new version.
	bad := e.register("incompatible-value", withField(t, e.clean, nil, "items"))

	old := e.purchaseRecord(e.clean, 0, 0, nil)
	added := e.purchaseRecord(v2, 0, 1, map[string]any{"coupon": "XMAS"})
	changed := e.purchaseRecord(bad, 0, 2, map[string]any{"items": "three"})
	e.produce(true, old, added, changed)
	delete(e.written, "ev-00-000002")

	e.run(e.config(e.w, nil))
	e.waitOffsets(cleanTopic, nil)
	e.checkRows()
	if got := nullString(t, e.w, `SELECT coupon FROM purchases WHERE event_id = 'ev-00-000001'`); got.String != "XMAS" {
		t.Errorf("coupon of the new-schema row = %v, want XMAS", got)
	}
	if got := nullString(t, e.w, `SELECT coupon FROM purchases WHERE event_id = 'ev-00-000000'`); got.Valid {
		t.Errorf("coupon of the old-schema row = %v, want NULL", got)
	}
	if got := nullString(t, e.w, `SELECT data_type FROM information_schema.columns WHERE table_name = 'PURCHASES' AND column_name = 'ITEMS'`); got.String != "INTEGER" {
		t.Errorf("ITEMS is %v after the incompatible record, want INTEGER", got)
	}
	dead := e.readDLQ(cleanDLQ)
	if len(dead) != 1 || headerOf(dead[0], wire.HeaderOriginalOffset) != strconv.FormatInt(changed.Offset, 10) ||
		!strings.Contains(headerOf(dead[0], wire.HeaderError), "incompatible") {
		t.Fatalf("dead letters %v, want the incompatible record", dead)
	}
}

// Window results upsert into AGGREGATES by window; a result AGGREGATES rejects goes to
// the sink's own dead-letter topic.
func TestStageAggregates(t *testing.T) {
	e := newStageEnv(t)
	encode := func(off int64, r sink.Row) *kgo.Record {
		val, err := e.agg.AppendEncode(nil, r.Values)
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: aggTopic, Partition: 0, Value: val, Headers: []kgo.RecordHeader{
			{Key: wire.HeaderEventID, Value: []byte("newest-" + strconv.FormatInt(off, 10))}}}
	}
	unnamed := result(3, "FR", 0, 1, 1, true)
	unnamed.Values["aggregation"] = ""
	e.produce(true,
		encode(0, result(0, "DE", 0, 1, 10, false)),
		encode(1, result(1, "DE", 0, 2, 30, true)), // the same window: replaces
		encode(2, result(2, "DE", 1, 1, 7, true)),
		encode(3, unnamed),
	)
	e.run(e.config(e.w, nil, aggTopic))
	e.waitOffsets(aggTopic, nil)

	got := queryStrings(t, e.w, `SELECT strftime(window_start, '%H:%M') || ' ' || CAST(measures->>'count' AS VARCHAR)
		FROM aggregates ORDER BY window_start`)
	if want := []string{"10:00 2", "10:01 1"}; !slices.Equal(got, want) {
		t.Fatalf("aggregates %v, want %v", got, want)
	}
	dead := e.readDLQ(wire.SinkDLQTopic)
	if len(dead) != 1 || headerOf(dead[0], wire.HeaderStage) != wire.StageSink || headerOf(dead[0], wire.HeaderOriginalTopic) != aggTopic {
		t.Fatalf("sink dead letters %v, want the unnamed result", dead)
	}
}

// NewStage names the missing or inconsistent field.
func TestNewStageValidates(t *testing.T) {
	e := newStageEnv(t)
	tests := []struct {
		name string
		edit func(*sink.StageConfig)
		want string
	}{
		{"no warehouse", func(c *sink.StageConfig) { c.Warehouse = nil }, "warehouse"},
		{"no decoder", func(c *sink.StageConfig) { c.Decoder = nil }, "decoder"},
		{"no topics", func(c *sink.StageConfig) { c.Topics = nil }, "topics"},
		{"unknown topic", func(c *sink.StageConfig) { c.Topics = []string{"nope"} }, `no schema for "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.config(e.w, nil)
			tt.edit(&cfg)
			_, err := sink.NewStage(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewStage = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

// The default dead-letter topics: the raw topic's for clean topics, the sink's own
// for the rest.
func TestDefaultDLQ(t *testing.T) {
	for topic, want := range map[string]string{
		"purchases.clean":           "purchases.dlq",
		"page_views.clean":          "page_views.dlq",
		"agg.revenue_by_country_1m": wire.SinkDLQTopic,
	} {
		if got := sink.DefaultDLQ(topic); got != want {
			t.Errorf("DefaultDLQ(%q) = %q, want %q", topic, got, want)
		}
	}
}

// withField returns codec's schema with field appended (if set) and the field named
// retype (if set) turned into a string.
func withField(t *testing.T, codec *schema.Codec, field map[string]any, retype string) string {
	t.Helper()
	b, err := codec.Schema.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	fields := s["fields"].([]any)
	for _, f := range fields {
		if m := f.(map[string]any); m["name"] == retype {
			m["type"] = "string"
			delete(m, "default")
		}
	}
	if field != nil {
		s["fields"] = append(fields, field)
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
