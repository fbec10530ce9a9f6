package process

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// emptyDecoder decodes every record to no fields (the test's records carry none).
type emptyDecoder struct{}

func (emptyDecoder) Decode(context.Context, []byte) (map[string]any, int, error) {
	return map[string]any{}, 0, nil
}

// TestLateEventsCountedOnCommit: sluice_late_events_total counts a late record once its
// transaction commits, and not when it aborts (the batch runs again).
func TestLateEventsCountedOnCommit(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	now := time.Unix(1_700_000_000, 0)
	a := &Aggregate{
		Agg: config.Aggregation{Name: "per_min", From: "orders", GroupBy: []string{"country"},
			Window: config.Window{Type: "tumbling", Size: config.Duration(time.Minute)}, Measures: []string{"count"}},
		Partitions: 1, Decoder: emptyDecoder{}, Now: func() time.Time { return now }, Metrics: m,
	}
	cfg, err := a.StageConfig(StageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	task, err := cfg.NewTask(TaskID{Topic: wire.RepartitionTopic("per_min"), Partition: 0})
	if err != nil {
		t.Fatal(err)
	}
	src := SourceID(wire.CleanTopic("orders"), 0)
	rec := func(ts time.Time) *kgo.Record {
		return &kgo.Record{Key: []byte("DE"), Value: []byte("{}"), Timestamp: ts,
			Headers: []kgo.RecordHeader{{Key: wire.HeaderSource, Value: []byte(src)}}}
	}
	late := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "sluice_late_events_total" {
				for _, mt := range mf.GetMetric() {
					return mt.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	var emitted []*kgo.Record
	emit := func(r *kgo.Record) { emitted = append(emitted, r) }
	ctx := context.Background()
	// Stream time 10 min; a record of minute 1 is late (its window closed long ago).
	for _, ts := range []time.Time{now.Add(10 * time.Minute), now.Add(time.Minute)} {
		if err := task.Handle(ctx, rec(ts), emit); err != nil {
			t.Fatal(err)
		}
	}
	if len(emitted) != 1 || emitted[0].Topic != wire.LateTopic("orders") {
		t.Fatalf("emitted %d records, want the late one on %s", len(emitted), wire.LateTopic("orders"))
	}
	if got := late(); got != 0 {
		t.Fatalf("before the transaction ends: %v late events counted, want 0", got)
	}
	task.Done(false)
	if got := late(); got != 0 {
		t.Fatalf("after an abort: %v late events counted, want 0", got)
	}
	if err := task.Handle(ctx, rec(now.Add(10*time.Minute)), emit); err != nil {
		t.Fatal(err)
	}
	if err := task.Handle(ctx, rec(now.Add(time.Minute)), emit); err != nil {
		t.Fatal(err)
	}
	task.Done(true)
	if got := late(); got != 1 {
		t.Fatalf("after the commit: %v late events counted, want 1", got)
	}
	task.Done(true) // an empty transaction counts nothing again
	if got := late(); got != 1 {
		t.Fatalf("after a second commit: %v late events counted, want 1", got)
	}
}
