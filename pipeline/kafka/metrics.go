package kafka

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// ClientMetrics returns the hook that publishes one franz-go client's metrics (connects,
// bytes and records produced and fetched, buffered records, request latency) on reg as
// sluice_kafka_*, labelled client=name. Each client needs its own hook (kprom registers
// its collectors once per client); name must be unique within reg. Nil reg: no option.
func ClientMetrics(reg prometheus.Registerer, name string) []kgo.Opt {
	if reg == nil {
		return nil
	}
	m := kprom.NewMetrics("sluice_kafka",
		kprom.Registerer(prometheus.WrapRegistererWith(prometheus.Labels{"client": name}, reg)))
	return []kgo.Opt{kgo.WithHooks(m)}
}
