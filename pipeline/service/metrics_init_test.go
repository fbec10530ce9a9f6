package service

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// The counters whose label values the pipeline names exist at 0 before any event: late
// events and window results per aggregation, transactions per stage and result, dead
// letters, duplicates and retries per topic, redeliveries per retry tier.
func TestProcessorCountersStartAtZero(t *testing.T) {
	p := config.Default()
	if len(p.Aggregations) == 0 || len(p.RetryTiers) == 0 {
		t.Fatalf("built-in pipeline has %d aggregations and %d retry tiers", len(p.Aggregations), len(p.RetryTiers))
	}
	for _, aggs := range []bool{true, false} {
		reg := prometheus.NewRegistry()
		m := process.NewMetrics(reg)
		m.InitPipeline(p, aggs)
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]map[string]float64{} // family -> label set -> value
		for _, f := range fams {
			for _, mt := range f.GetMetric() {
				if got[f.GetName()] == nil {
					got[f.GetName()] = map[string]float64{}
				}
				got[f.GetName()][labels(mt)] = mt.GetCounter().GetValue()
			}
		}
		want := map[string][]string{}
		for _, a := range p.Aggregations {
			if aggs {
				want["sluice_late_events_total"] = append(want["sluice_late_events_total"], "aggregation="+a.Name)
				want["sluice_window_results_total"] = append(want["sluice_window_results_total"], "aggregation="+a.Name)
				want["sluice_stage_transactions_total"] = append(want["sluice_stage_transactions_total"],
					"result=commit,stage="+wire.StageAggregate(a.Name), "result=abort,stage="+wire.StageRepartition(a.Name))
			}
		}
		for _, tp := range p.Topics {
			want["sluice_clean_duplicates_total"] = append(want["sluice_clean_duplicates_total"], "topic="+tp.Name)
			want["sluice_dead_letters_total"] = append(want["sluice_dead_letters_total"],
				"class=permanent,stage=clean,topic="+tp.Name, "class=transient,stage=clean,topic="+tp.Name)
			for _, d := range p.RetryTiers {
				want["sluice_retries_total"] = append(want["sluice_retries_total"], "stage=clean,tier="+wire.RetryTopic(d.D())+",topic="+tp.Name)
			}
		}
		for _, d := range p.RetryTiers {
			want["sluice_retry_redeliveries_total"] = append(want["sluice_retry_redeliveries_total"], "tier="+wire.RetryTopic(d.D()))
		}
		want["sluice_stage_transactions_total"] = append(want["sluice_stage_transactions_total"],
			"result=commit,stage=clean", "result=abort,stage=clean", "result=commit,stage=retry")
		for fam, sets := range want {
			for _, s := range sets {
				v, ok := got[fam][s]
				if !ok || v != 0 {
					t.Errorf("aggs=%v: %s{%s} = %v (present %v), want 0 before any event", aggs, fam, s, v, ok)
				}
			}
		}
		if !aggs && len(got["sluice_late_events_total"]) > 0 {
			t.Errorf("clean-only processor created late-event counters %v", got["sluice_late_events_total"])
		}
	}
}

func labels(m *dto.Metric) string {
	s := ""
	for i, l := range m.GetLabel() { // sorted by name
		if i > 0 {
			s += ","
		}
		s += l.GetName() + "=" + l.GetValue()
	}
	return s
}
