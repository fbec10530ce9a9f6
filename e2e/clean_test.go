package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Every event type, posted as one object, as an array and as NDJSON, appears exactly
// once in <topic>.clean, with its key, headers and processed_at.
func TestEveryTypeEveryShapeExactlyOnce(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly())
	want := map[string][]string{}
	for i, topic := range gen.Topics() {
		evs := events(t, topic, uint64(10+i), 21)
		a := post202(t, p, topic, "application/json", mustJSON(t, evs[0]))
		b := post202(t, p, topic, "application/json", mustJSON(t, evs[1:11]))
		c := post202(t, p, topic, "application/x-ndjson", ndjson(t, evs[11:]))
		if a.Accepted != 1 || b.Accepted != 10 || c.Accepted != 10 {
			t.Fatalf("%s: accepted %d/%d/%d, want 1/10/10", topic, a.Accepted, b.Accepted, c.Accepted)
		}
		for _, ids := range [][]string{a.EventIDs, b.EventIDs, c.EventIDs} {
			want[topic] = append(want[topic], ids...)
		}
		for j, ev := range evs {
			if got := want[topic][j]; got != ev["event_id"] {
				t.Fatalf("%s: event %d: id %s, want the posted %s", topic, j, got, ev["event_id"])
			}
		}
	}
	settle(t, p)
	for _, topic := range gen.Topics() {
		rs := p.ReadAll(topic + ".clean")
		exactlyOnce(t, idsOf(t, rs), want[topic])
		for _, r := range rs {
			if r.Key == "" || r.Key != r.Value["user_id"] {
				t.Errorf("%s: key %q, user_id %v", topic, r.Key, r.Value["user_id"])
			}
			if _, err := strconv.ParseInt(r.Headers[wire.HeaderIngestTS], 10, 64); err != nil {
				t.Errorf("%s: sluice-ingest-ts %q: %v", topic, r.Headers[wire.HeaderIngestTS], err)
			}
			if pa, ok := r.Value["processed_at"].(time.Time); !ok || pa.IsZero() {
				t.Errorf("%s: processed_at %v", topic, r.Value["processed_at"])
			}
			et, _ := r.Value["event_time"].(time.Time)
			if !r.Raw.Timestamp.Equal(et) {
				t.Errorf("%s: record timestamp %v, event_time %v", topic, r.Raw.Timestamp, et)
			}
		}
		if dl := p.ReadAll(topic + ".dlq"); len(dl) != 0 {
			t.Errorf("%s.dlq has %d records, want 0", topic, len(dl))
		}
	}
}

// Duplicate event ids are removed: the same body posted twice, a retried request with
// the same Idempotency-Key, and the same id inside one batch.
func TestDuplicatesRemoved(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly())
	evs := events(t, "purchases", 7, 5)
	first := post202(t, p, "purchases", "application/json", mustJSON(t, evs))
	again := post202(t, p, "purchases", "application/json", mustJSON(t, evs))
	if first.EventIDs[0] != again.EventIDs[0] {
		t.Fatalf("ids differ between identical posts: %v vs %v", first.EventIDs, again.EventIDs)
	}

	one := events(t, "purchases", 8, 1)[0]
	delete(one, "event_id")
	body := mustJSON(t, one)
	k1 := post202(t, p, "purchases", "application/json", body, "Idempotency-Key", "order-42-attempt")
	k2 := post202(t, p, "purchases", "application/json", body, "Idempotency-Key", "order-42-attempt")
	if k1.EventIDs[0] != "order-42-attempt" || k2.EventIDs[0] != "order-42-attempt" {
		t.Fatalf("Idempotency-Key not used as event_id: %v %v", k1.EventIDs, k2.EventIDs)
	}

	twin := events(t, "purchases", 9, 1)[0]
	post202(t, p, "purchases", "application/json", mustJSON(t, []map[string]any{twin, twin}))

	settle(t, p)
	want := append(append([]string{}, first.EventIDs...), "order-42-attempt", twin["event_id"].(string))
	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), want)
	if got := p.Metric("sluice_clean_duplicates_total", "topic", "purchases"); got != 5+1+1 {
		t.Errorf("sluice_clean_duplicates_total = %v, want 7", got)
	}
	// The raw topic keeps every accepted record: deduplication is the clean stage's job.
	if got := len(p.ReadAll("purchases")); got != 5+5+1+1+2 {
		t.Errorf("raw records = %d, want 14", got)
	}
}

// A record that breaks a rule, produced straight to Kafka, and one that does not decode
// both land in <topic>.dlq with every header, and the partition keeps flowing.
func TestDeadLetters(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly())
	evs := events(t, "purchases", 3, 3)
	evs[1]["amount"] = -5.0 // schema-valid, breaks the rule amount >= 0
	recs := rawRecords(t, p, "purchases", 1, evs)
	garbage := &kgo.Record{Topic: "purchases", Partition: 1, Key: []byte("u-1"), Value: []byte("\x00\x00\x00\x00\x01not avro"),
		Headers: []kgo.RecordHeader{{Key: wire.HeaderEventID, Value: []byte("bad-1")}, {Key: "trace", Value: []byte("abc")}}}
	recs = []*kgo.Record{recs[0], recs[1], garbage, recs[2]}
	p.Produce(recs...)
	settle(t, p)

	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), []string{evs[0]["event_id"].(string), evs[2]["event_id"].(string)})
	dl := p.ReadAll("purchases.dlq")
	if len(dl) != 2 {
		t.Fatalf("dlq has %d records, want 2", len(dl))
	}
	for i, want := range []struct {
		offset int64
		value  []byte
		errHas string
	}{{recs[1].Offset, recs[1].Value, "amount"}, {garbage.Offset, garbage.Value, "malformed"}} {
		r := dl[i]
		h := r.Headers
		for _, k := range []string{wire.HeaderClass, wire.HeaderError, wire.HeaderStage, wire.HeaderOriginalTopic,
			wire.HeaderOriginalPartition, wire.HeaderOriginalOffset, wire.HeaderAttempts, wire.HeaderFirstFailureTS} {
			if h[k] == "" {
				t.Errorf("dead letter %d: header %s missing (%v)", i, k, h)
			}
		}
		if h[wire.HeaderClass] != "permanent" || h[wire.HeaderStage] != "clean" || h[wire.HeaderOriginalTopic] != "purchases" ||
			h[wire.HeaderOriginalPartition] != "1" || h[wire.HeaderOriginalOffset] != strconv.FormatInt(want.offset, 10) || h[wire.HeaderAttempts] != "1" {
			t.Errorf("dead letter %d headers: %v (want offset %d)", i, h, want.offset)
		}
		if !containsFold(h[wire.HeaderError], want.errHas) {
			t.Errorf("dead letter %d: sluice-error %q does not mention %q", i, h[wire.HeaderError], want.errHas)
		}
		if string(r.Raw.Value) != string(want.value) || r.Partition != 1 {
			t.Errorf("dead letter %d: value or partition changed", i)
		}
	}
	if dl[1].Headers["trace"] != "abc" || dl[1].Headers[wire.HeaderEventID] != "bad-1" {
		t.Errorf("original headers not kept: %v", dl[1].Headers)
	}
	if got := p.Metric("sluice_dead_letters_total", "topic", "purchases", "class", "permanent"); got != 2 {
		t.Errorf("sluice_dead_letters_total = %v, want 2", got)
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
