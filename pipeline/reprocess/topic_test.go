package reprocess

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// TestRefeedRecord: a re-fed copy keeps topic, partition, key, value, timestamp and the
// other headers; it carries the run id, the re-feed time as sluice-ingest-ts and the
// original's in sluice-first-ingest-ts; a copy of a copy keeps the first ingest time
// once and the latest run id once.
func TestRefeedRecord(t *testing.T) {
	ts := time.Date(2026, 11, 1, 10, 2, 3, 0, time.UTC)
	r := &kgo.Record{Topic: "purchases", Partition: 2, Key: []byte("u-1"), Value: []byte("v"), Timestamp: ts,
		Headers: []kgo.RecordHeader{{Key: wire.HeaderEventID, Value: []byte("e-1")}, {Key: wire.HeaderIngestTS, Value: []byte("111")}, {Key: "trace", Value: []byte("t")}}}
	c := refeedRecord(r, "run-1", "222")
	if c.Topic != r.Topic || c.Partition != 2 || string(c.Key) != "u-1" || string(c.Value) != "v" || !c.Timestamp.Equal(ts) {
		t.Fatalf("copy %+v", c)
	}
	hs := func(r *kgo.Record) map[string][]string {
		m := map[string][]string{}
		for _, h := range r.Headers {
			m[h.Key] = append(m[h.Key], string(h.Value))
		}
		return m
	}
	want := map[string]string{wire.HeaderEventID: "e-1", "trace": "t", wire.HeaderReprocessID: "run-1",
		wire.HeaderIngestTS: "222", wire.HeaderFirstIngestTS: "111"}
	check := func(r *kgo.Record, want map[string]string) {
		t.Helper()
		got := hs(r)
		if len(got) != len(want) {
			t.Errorf("headers %v, want %v", got, want)
		}
		for k, v := range want {
			if len(got[k]) != 1 || got[k][0] != v {
				t.Errorf("header %s = %v, want [%s]", k, got[k], v)
			}
		}
	}
	check(c, want)
	want[wire.HeaderReprocessID], want[wire.HeaderIngestTS], want[wire.HeaderFirstIngestTS] = "run-2", "333", "222"
	check(refeedRecord(c, "run-2", "333"), want)
}

// TestValidateTopicAndHorizon: an unknown topic lists the pipeline's, from must be
// before to, and the oldest --from is the latest event time minus the horizon plus the
// margin.
func TestValidateTopicAndHorizon(t *testing.T) {
	p := config.Default()
	from := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	if _, err := ValidateTopic(p, "nope", from, from.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), `unknown topic "nope" (the pipeline has: page_views, clicks, purchases)`) {
		t.Errorf("unknown topic: %v", err)
	}
	if _, err := ValidateTopic(p, "purchases", from, from); err == nil || !strings.Contains(err.Error(), "must be before --to") {
		t.Errorf("from = to: %v", err)
	}
	if tp, err := ValidateTopic(p, "purchases", from, from.Add(time.Hour)); err != nil || tp.Name != "purchases" {
		t.Errorf("valid: %v, %v", tp, err)
	}
	latest := from.Add(30 * time.Hour)
	if got, want := oldestFrom(latest, 24*time.Hour, time.Hour), from.Add(7*time.Hour); !got.Equal(want) {
		t.Errorf("oldestFrom = %s, want %s", got, want)
	}
}
