package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// replayAll re-publishes dead letters the way `sluice dlq replay` does and returns how
// many it produced.
func replayAll(t *testing.T, p *harness.Pipeline, dead []harness.Record, f dlq.Filter) int {
	t.Helper()
	prod, err := kafka.NewProducer(p.Deps.Kafka, kafka.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = prod.Close(ctx)
	}()
	recs := make([]*kgo.Record, len(dead))
	for i, r := range dead {
		recs[i] = r.Raw
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n, err := dlq.Replay(ctx, prod, recs, "", f)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	return n
}

// headerCount counts r's headers, failing on a repeated key.
func headerCount(t *testing.T, r harness.Record) int {
	t.Helper()
	seen := map[string]bool{}
	for _, h := range r.Raw.Headers {
		if seen[h.Key] {
			t.Errorf("%s/%d@%d: header %s appears twice", r.Topic, r.Partition, r.Offset, h.Key)
		}
		seen[h.Key] = true
	}
	return len(r.Raw.Headers)
}

// A dead letter replayed without a fix fails again: it is dead-lettered again with its
// headers replaced, not appended, and its attempt count carried on. A dead letter of a
// record that is valid now, replayed three times, appears exactly once in the clean topic.
func TestReplay(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly())
	evs := events(t, "purchases", 41, 2)
	evs[0]["amount"] = -5.0 // schema-valid, breaks the rule amount >= 0
	recs := rawRecords(t, p, "purchases", 1, evs)

	p.Produce(recs[0])
	settle(t, p)
	dl := p.ReadAll("purchases.dlq")
	if len(dl) != 1 {
		t.Fatalf("dlq has %d records, want 1", len(dl))
	}
	first := dl[0]
	if n := replayAll(t, p, dl, dlq.Filter{}); n != 1 {
		t.Fatalf("replayed %d, want 1", n)
	}
	settle(t, p)
	dl = p.ReadAll("purchases.dlq")
	if len(dl) != 2 {
		t.Fatalf("dlq has %d records after a replay, want 2", len(dl))
	}
	// The replay is partitioned by key, so its dead letter may sit on another partition.
	again := dl[0]
	if again.Headers[wire.HeaderReplayed] == "" {
		again = dl[1]
	}
	if again.Headers[wire.HeaderReplayed] != "true" || again.Headers[wire.HeaderOriginalTopic] != "purchases" ||
		again.Headers[wire.HeaderStage] != "clean" || again.Headers[wire.HeaderClass] != "permanent" {
		t.Errorf("dead letter of the replay: headers %v", again.Headers)
	}
	if string(again.Raw.Value) != string(first.Raw.Value) || again.Key != first.Key {
		t.Errorf("dead letter of the replay: key or value changed")
	}
	// Replaced, not appended: one more header, sluice-replayed.
	if got, want := headerCount(t, again), headerCount(t, first)+1; got != want {
		t.Errorf("dead letter of the replay has %d headers, want %d: %v", got, want, again.Headers)
	}
	if got, was := wire.Attempts(again.Raw), wire.Attempts(first.Raw); got <= was {
		t.Errorf("sluice-attempts = %d after a replay of a letter with %d: the count is not carried on "+
			"(dlq.DeadLetter should write wire.Attempts(rec)+1)", got, was)
	}
	if ids := idsOf(t, p.ReadAll("purchases.clean")); len(ids) != 0 {
		t.Errorf("clean has %v, want nothing", ids)
	}

	// A dead letter of a record that is valid now (a transient failure, say).
	valid := recs[1]
	valid.Offset = 9
	p.Produce(dlq.Record(valid, "purchases.dlq", dlq.Letter{
		Stage: "enrich", Class: dlq.Transient, Err: errors.New("registry: timeout"), Attempts: 6, FirstFailure: time.Now(),
	}))
	onlyValid := dlq.Filter{Stages: []string{"enrich"}}
	for round := range 3 {
		if n := replayAll(t, p, p.ReadAll("purchases.dlq"), onlyValid); n != 1 {
			t.Fatalf("round %d: replayed %d, want 1", round, n)
		}
		settle(t, p)
		clean := p.ReadAll("purchases.clean")
		if ids, id := idsOf(t, clean), evs[1]["event_id"].(string); len(ids) != 1 || ids[id] != 1 {
			t.Fatalf("round %d: clean has %v, want %s once", round, ids, id)
		}
	}
	if got := len(p.ReadAll("purchases.dlq")); got != 3 {
		t.Errorf("dlq has %d records, want 3 (the valid replays are not dead-lettered)", got)
	}
}
