package sink_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/sink"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Topics of the stage tests; every one has stagePartitions partitions.
const (
	cleanTopic      = "purchases.clean"
	cleanDLQ        = "purchases.dlq"
	aggTopic        = "agg.revenue_by_country_1m"
	stagePartitions = 3
	// waitFor bounds every wait on the broker or a running stage.
	waitFor = 15 * time.Second
)

// stageEnv is a kfake broker with the sink's topics, a schema registry holding the
// clean purchases and aggregate schemas, an in-memory warehouse and a transactional
// producer standing in for the processor.
type stageEnv struct {
	t       *testing.T
	cluster *kfake.Cluster
	kc      kafka.Config
	reg     *schema.Registry
	clean   *schema.Codec
	agg     *schema.Codec
	w       *sink.SQLWarehouse
	prod    *kgo.Client
	adm     *kadm.Client
	seq     map[int32]int
	written map[string]where // event id -> where its committed record is
}

// where is a record's place in its topic.
type where struct {
	partition int32
	offset    int64
}

func newStageEnv(t *testing.T) *stageEnv {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0),
		kfake.GroupMinSessionTimeout(100*time.Millisecond),
		kfake.SeedTopics(stagePartitions, cleanTopic, cleanDLQ, aggTopic, wire.SinkDLQTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	fake := srfake.New()
	t.Cleanup(fake.Close)
	src, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	e := &stageEnv{
		t:       t,
		cluster: c,
		kc: kafka.Config{Brokers: c.ListenAddrs(), MetadataMinAge: 50 * time.Millisecond,
			SessionTimeout: 600 * time.Millisecond},
		reg:     schema.NewRegistry(src),
		w:       openDuck(t),
		seq:     map[int32]int{},
		written: map[string]where{},
	}
	raw, _ := schema.Builtin("purchases.avsc")
	cleanAvsc, err := schema.Clean(raw)
	if err != nil {
		t.Fatal(err)
	}
	e.clean = e.register(cleanTopic+"-value", cleanAvsc)
	aggAvsc, err := schema.Aggregate("revenue_by_country_1m", []schema.AggregateMeasure{
		{Func: "sum", Column: "sum_amount"}, {Func: "avg", Column: "avg_amount"}})
	if err != nil {
		t.Fatal(err)
	}
	e.agg = e.register(aggTopic+"-value", aggAvsc)

	e.prod, err = kgo.NewClient(append(e.kc.Opts(), kgo.TransactionalID("test-processor"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.prod.Close)
	e.adm = kadm.NewClient(e.prod)
	return e
}

func (e *stageEnv) register(subject, avsc string) *schema.Codec {
	e.t.Helper()
	c, err := e.reg.Register(e.t.Context(), subject, avsc)
	if err != nil {
		e.t.Fatalf("register %s: %v", subject, err)
	}
	return c
}

// schemas is the StageConfig.Schemas of the test topics.
func (e *stageEnv) schemas(topic string) (string, avro.Schema, bool, bool) {
	switch topic {
	case cleanTopic:
		return "PURCHASES", e.clean.Schema, false, true
	case aggTopic:
		return "", nil, true, true
	}
	return "", nil, false, false
}

// config is a stage configuration on the env; clock may be nil (real time).
func (e *stageEnv) config(w sink.Warehouse, clock *fakeClock, topics ...string) sink.StageConfig {
	if len(topics) == 0 {
		topics = []string{cleanTopic}
	}
	cfg := sink.StageConfig{
		Kafka:         e.kc,
		Warehouse:     w,
		Decoder:       e.reg,
		Schemas:       e.schemas,
		Topics:        topics,
		FlushInterval: 50 * time.Millisecond,
		Backoff:       sinkBackoff,
		Rand:          func() float64 { return 0 },
	}
	if clock != nil {
		cfg.Now, cfg.AfterFunc, cfg.Sleep = clock.Now, clock.AfterFunc, clock.Sleep
	}
	return cfg
}

// sinkBackoff keeps retries short in tests (the fake clock's Sleep costs no time).
var sinkBackoff = dlq.Backoff{Base: 10 * time.Millisecond, Cap: 100 * time.Millisecond, Factor: 2}

// purchaseRecord is the clean record of the seq-th purchase of partition p, as the
// clean stage writes it: clean codec, event id and ingest ts headers, same partition.
func (e *stageEnv) purchaseRecord(codec *schema.Codec, p int32, seq int, extra map[string]any) *kgo.Record {
	e.t.Helper()
	row := purchase(p, int64(seq))
	for k, v := range extra {
		row.Values[k] = v
	}
	val, err := codec.AppendEncode(nil, row.Values)
	if err != nil {
		e.t.Fatal(err)
	}
	return &kgo.Record{Topic: cleanTopic, Partition: p, Key: []byte(row.Values["user_id"].(string)), Value: val,
		Headers: []kgo.RecordHeader{
			{Key: wire.HeaderEventID, Value: []byte(row.EventID)},
			{Key: wire.HeaderIngestTS, Value: []byte(strconv.FormatInt(row.IngestTS.UnixMicro(), 10))},
		}}
}

// purchases returns n new clean purchases for each partition.
func (e *stageEnv) purchases(n int) []*kgo.Record {
	e.t.Helper()
	var recs []*kgo.Record
	for p := range int32(stagePartitions) {
		for range n {
			recs = append(recs, e.purchaseRecord(e.clean, p, e.seq[p], nil))
			e.seq[p]++
		}
	}
	return recs
}

// produce writes recs in one transaction, committed or aborted, and remembers where
// each committed record with an event id went.
func (e *stageEnv) produce(commit bool, recs ...*kgo.Record) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), waitFor)
	defer cancel()
	if err := e.prod.BeginTransaction(); err != nil {
		e.t.Fatal(err)
	}
	perr := e.prod.ProduceSync(ctx, recs...).FirstErr()
	if err := e.prod.EndTransaction(ctx, kgo.TransactionEndTry(commit && perr == nil)); err != nil || perr != nil {
		e.t.Fatalf("produce: %v / end transaction: %v", perr, err)
	}
	if !commit {
		return
	}
	for _, r := range recs {
		for _, h := range r.Headers {
			if h.Key == wire.HeaderEventID {
				e.written[string(h.Value)] = where{r.Partition, r.Offset}
			}
		}
	}
}

// ends returns the high watermark of every partition of topic (markers included).
func (e *stageEnv) ends(topic string) map[int32]int64 {
	e.t.Helper()
	offs, err := e.adm.ListEndOffsets(e.t.Context(), topic)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// waitOffsets waits until SLUICE_OFFSETS of every partition of topic reached the
// topic's end, calling tick (if set) between checks (to move a fake clock).
func (e *stageEnv) waitOffsets(topic string, tick func()) {
	e.t.Helper()
	ends := e.ends(topic)
	eventually(e.t, func() bool {
		if tick != nil {
			tick()
		}
		for p, end := range ends {
			if nextOffset(e.t, e.w, topic, p) != end {
				return false
			}
		}
		return true
	}, "SLUICE_OFFSETS of %s reach %v", topic, ends)
}

// checkRows checks that PURCHASES holds exactly the committed purchases, each once,
// with RECORD_METADATA naming the record it came from.
func (e *stageEnv) checkRows(extraIDs ...string) {
	e.t.Helper()
	rows, err := e.w.Query(e.t.Context(), `SELECT event_id, CAST(record_metadata AS VARCHAR) FROM purchases`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	seen := map[string]int{}
	for rows.Next() {
		var id, md string
		if err := rows.Scan(&id, &md); err != nil {
			e.t.Fatal(err)
		}
		seen[id]++
		var m struct {
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
			Offset    int64  `json:"offset"`
		}
		if err := json.Unmarshal([]byte(md), &m); err != nil {
			e.t.Fatalf("metadata %s: %v", md, err)
		}
		if w, ok := e.written[id]; ok && (m.Topic != cleanTopic || m.Partition != w.partition || m.Offset != w.offset) {
			e.t.Errorf("event %s: metadata %s, want %s/%d@%d", id, md, cleanTopic, w.partition, w.offset)
		}
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	for id := range e.written {
		if seen[id] != 1 {
			e.t.Errorf("event %s: %d rows, want 1", id, seen[id])
		}
	}
	extra := map[string]bool{}
	for _, id := range extraIDs {
		extra[id] = true
	}
	for id := range seen {
		if _, ok := e.written[id]; !ok && !extra[id] {
			e.t.Errorf("unexpected row %s", id)
		}
	}
}

// eventually polls cond until it holds or waitFor passes: only for waits on the broker
// or on a running stage, which the test cannot observe directly.
func eventually(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: "+format, args...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readDLQ returns the committed records of a dead-letter topic.
func (e *stageEnv) readDLQ(topic string) []*kgo.Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), waitFor)
	defer cancel()
	var out []*kgo.Record
	if err := kafka.ReadCommitted(ctx, e.kc, topic, nil, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func headerOf(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// metricValue sums a counter or gauge (or a histogram's sample count) over the series
// whose labels include every given name=value pair.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.Label {
					found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

// count runs SELECT count(*) on a table.
func count(t *testing.T, w sink.Warehouse, table string) int64 {
	t.Helper()
	return scalar(t, w, fmt.Sprintf("SELECT count(*) FROM %s", table))
}

// nullString reads one string column of one row.
func nullString(t *testing.T, w sink.Warehouse, query string, args ...any) sql.NullString {
	t.Helper()
	rows, err := w.Query(t.Context(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var s sql.NullString
	if !rows.Next() {
		t.Fatalf("%s: no row (%v)", query, rows.Err())
	}
	if err := rows.Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}
