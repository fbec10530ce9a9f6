package ingest

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Rejection reasons, the values of the reason label of
// sluice_ingest_requests_rejected_total.
const (
	reasonInvalid      = "invalid"
	reasonTooLarge     = "too_large"
	reasonContentType  = "content_type"
	reasonUnknownTopic = "unknown_topic"
	reasonUnavailable  = "unavailable"
)

// unknownTopic is the topic label of requests for a topic that does not exist, so that
// clients cannot create label values.
const unknownTopic = "_unknown"

// unmatchedRoute is the route label of requests that matched no route.
const unmatchedRoute = "_unmatched"

// metrics are the ingest API's Prometheus collectors. Every label is bounded: routes are
// patterns, topics are configured names or "_unknown", reasons a closed set.
type metrics struct {
	httpDuration    *prometheus.HistogramVec
	events          *prometheus.CounterVec
	rejected        *prometheus.CounterVec
	produceDuration *prometheus.HistogramVec
	// inflightBytes, connections and connRejected watch the memory bounds (admission.go,
	// connlimit.go).
	inflightBytes prometheus.Gauge
	connections   prometheus.Gauge
	connRejected  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, topics []Topic) (*metrics, error) {
	m := &metrics{
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_http_request_duration_seconds",
			Help:    "Duration of HTTP requests by route pattern, method and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ingest_events_total",
			Help: "Events received by the ingest API by topic and result (accepted: acknowledged by Kafka; rejected: part of a failed request).",
		}, []string{"topic", "result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ingest_requests_rejected_total",
			Help: "Ingest requests answered with an error, by topic and reason (invalid, too_large, content_type, unknown_topic, unavailable, key_reused, outcome_unknown, kafka_rejected, inflight_bytes).",
		}, []string{"topic", "reason"}),
		produceDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_ingest_produce_duration_seconds",
			Help:    "Time from handing a request's records to the producer until Kafka acknowledged them (or the wait failed), by topic.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"topic"}),
		inflightBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_ingest_inflight_bytes",
			Help: "Request body bytes reserved by ingest requests being read or answered (bounded by --max-inflight-bytes).",
		}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_http_connections",
			Help: "Open connections of the ingest API, WebSockets included (bounded by --max-connections).",
		}),
		connRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_http_connections_rejected_total",
			Help: "Connections refused on accept by reason (max_connections, max_connections_per_ip).",
		}, []string{"reason"}),
	}
	var err error
	m.httpDuration, err = register(reg, m.httpDuration)
	if err != nil {
		return nil, err
	}
	if m.events, err = register(reg, m.events); err != nil {
		return nil, err
	}
	if m.rejected, err = register(reg, m.rejected); err != nil {
		return nil, err
	}
	if m.produceDuration, err = register(reg, m.produceDuration); err != nil {
		return nil, err
	}
	if m.inflightBytes, err = register(reg, m.inflightBytes); err != nil {
		return nil, err
	}
	if m.connections, err = register(reg, m.connections); err != nil {
		return nil, err
	}
	if m.connRejected, err = register(reg, m.connRejected); err != nil {
		return nil, err
	}
	m.connRejected.WithLabelValues(reasonMaxConnections)
	m.connRejected.WithLabelValues(reasonMaxConnectionsPerIP)
	// Create the known series up front so that rates and alerts see zeros, not gaps.
	for _, t := range topics {
		m.events.WithLabelValues(t.Name, "accepted")
		m.events.WithLabelValues(t.Name, "rejected")
		for _, r := range []string{reasonInvalid, reasonTooLarge, reasonContentType, reasonUnavailable, reasonInflightBytes} {
			m.rejected.WithLabelValues(t.Name, r)
		}
		m.produceDuration.WithLabelValues(t.Name)
	}
	m.rejected.WithLabelValues(unknownTopic, reasonUnknownTopic)
	m.rejected.WithLabelValues(unknownTopic, reasonTooLarge)
	return m, nil
}

// register registers c, or returns the identical collector already registered (a second
// Server on the same registry shares the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("ingest: register metrics: %w", err)
	}
	return c, nil
}
