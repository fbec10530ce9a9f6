// Package e2e holds black-box tests of the running pipeline, started through the
// harness on the backend named by SLUICE_TEST_BACKEND (kfake by default).
package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// testNow is the wall clock of the event generators, fixed for the whole run so the same
// seed always gives the same events (and ids). The API takes receive time from the real
// clock, so it must be close to the real now: events are at most a run's length old.
var testNow = time.Now().UTC().Truncate(time.Second)

func fixedNow() time.Time { return testNow }

// events returns n deterministic events of topic.
func events(t *testing.T, topic string, seed uint64, n int) []map[string]any {
	t.Helper()
	now := fixedNow()
	g, err := gen.New(topic, gen.Options{Seed: seed, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ndjson(t *testing.T, evs []map[string]any) []byte {
	t.Helper()
	var b strings.Builder
	for _, e := range evs {
		b.Write(mustJSON(t, e))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// accepted is the 202 body.
type accepted struct {
	Accepted int      `json:"accepted"`
	EventIDs []string `json:"event_ids"`
}

func post202(t *testing.T, p *harness.Pipeline, topic, ct string, body []byte, hdrs ...string) accepted {
	t.Helper()
	code, _, b := p.Post(topic, ct, body, hdrs...)
	if code != 202 {
		t.Fatalf("POST %s (%s): status %d, want 202: %s", topic, ct, code, b)
	}
	var a accepted
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("202 body %s: %v", b, err)
	}
	return a
}

const caughtUp = 30 * time.Second

// settle waits until the clean stage committed everything in the raw topics.
func settle(t *testing.T, p *harness.Pipeline) {
	t.Helper()
	p.WaitCaughtUp("sluice.clean", caughtUp, gen.Topics()...)
}

// idsOf returns the event ids of records, failing on any record without one.
func idsOf(t *testing.T, rs []harness.Record) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, r := range rs {
		if r.DecodeErr != nil {
			t.Fatalf("%s/%d@%d does not decode: %v", r.Topic, r.Partition, r.Offset, r.DecodeErr)
		}
		id, _ := r.Value["event_id"].(string)
		if id == "" || r.Headers[wire.HeaderEventID] != id {
			t.Fatalf("%s/%d@%d: event_id %q, header %q", r.Topic, r.Partition, r.Offset, id, r.Headers[wire.HeaderEventID])
		}
		ids[id]++
	}
	return ids
}

// exactlyOnce checks that every id in want appears exactly once in got and nothing else
// does.
func exactlyOnce(t *testing.T, got map[string]int, want []string) {
	t.Helper()
	wantSet := map[string]bool{}
	for _, id := range want {
		wantSet[id] = true
		switch got[id] {
		case 1:
		case 0:
			t.Errorf("event %s lost", id)
		default:
			t.Errorf("event %s appears %d times", id, got[id])
		}
	}
	for id, n := range got {
		if !wantSet[id] {
			t.Errorf("unexpected event %s (%d times)", id, n)
		}
	}
}

// rawRecords encodes events of topic exactly as the ingest API would, for partition.
func rawRecords(t *testing.T, p *harness.Pipeline, topic string, partition int32, evs []map[string]any) []*kgo.Record {
	t.Helper()
	ts := p.Deps.Schemas[topic]
	enc := ingest.NewEncoder(ingest.Topic{Name: topic, KeyField: ts.Topic.KeyField, Subject: topic + "-value", Codec: ts.Raw},
		time.Now, 5*time.Minute)
	recs := make([]*kgo.Record, 0, len(evs))
	for _, ev := range evs {
		r, _, err := enc.Record(ev, "")
		if err != nil {
			t.Fatal(err)
		}
		r.Partition = partition
		recs = append(recs, r)
	}
	return recs
}
