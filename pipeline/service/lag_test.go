package service

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// A stage whose group has not joined or committed yet lags by every retained record of
// its inputs, not by nothing: the lag is on /metrics from the first refresh.
func TestLagOfAGroupThatNeverJoined(t *testing.T) {
	d, _ := setupEmbedded(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.Service.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 7 {
		r := &kgo.Record{Topic: "purchases", Partition: int32(i % 2), Value: []byte("x")}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	m, err := newLagMonitor(d)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if err := m.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	clean := wire.GroupID(wire.StageClean)
	for p, want := range map[string]float64{"0": 4, "1": 3, "2": 0} {
		if got := gauge(t, m.lag.WithLabelValues(clean, "purchases", p)); got != want {
			t.Errorf("lag of %s on purchases/%s: %v, want %v", clean, p, got, want)
		}
	}
	agg := wire.GroupID(wire.StageAggregate(config.Default().Aggregations[0].Name))
	if got := gauge(t, m.lag.WithLabelValues(agg, wire.RepartitionTopic(config.Default().Aggregations[0].Name), "0")); got != 0 {
		t.Errorf("lag of %s on an empty input: %v, want 0", agg, got)
	}
}

func gauge(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
