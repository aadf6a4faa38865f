// Package metrics declares Hermod's Prometheus metrics.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics of one process. Each service registers them on its registry.
type Metrics struct {
	Registry         *prometheus.Registry
	Attempts         *prometheus.CounterVec // by outcome
	AttemptDuration  prometheus.Histogram
	EndToEnd         prometheus.Histogram
	EventsRouted     prometheus.Counter
	DeliveriesQueued prometheus.Counter
	DeadLetters      prometheus.Counter
	RecordErrors     prometheus.Counter
	Parked           *prometheus.CounterVec // by reason
	InFlight         prometheus.Gauge
	IndexUnconfirmed prometheus.Counter // changes some webhook index did not confirm in time
}

// New creates and registers the metrics.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hermod_delivery_attempts_total",
			Help: "Delivery attempts by outcome (success, retry, dead)."}, []string{"outcome"}),
		AttemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hermod_delivery_attempt_seconds",
			Help: "Duration of HTTP delivery attempts.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}),
		EndToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hermod_delivery_latency_seconds",
			Help: "Time from enqueue to a successful delivery.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 16)}),
		EventsRouted: prometheus.NewCounter(prometheus.CounterOpts{Name: "hermod_events_routed_total",
			Help: "Events fanned out by the router."}),
		DeliveriesQueued: prometheus.NewCounter(prometheus.CounterOpts{Name: "hermod_deliveries_enqueued_total",
			Help: "Deliveries enqueued by the router."}),
		DeadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "hermod_dead_letters_total",
			Help: "Deliveries that died and went to the dead-letter stream."}),
		RecordErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "hermod_record_write_errors_total",
			Help: "Failed writes of delivery records to Redis (retried)."}),
		Parked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hermod_deliveries_parked_total",
			Help: "Deliveries parked outside the deliverers' window, by reason."}, []string{"reason"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hermod_deliveries_in_flight",
			Help: "HTTP attempts running in this process."}),
		IndexUnconfirmed: prometheus.NewCounter(prometheus.CounterOpts{Name: "hermod_index_notify_unconfirmed_total",
			Help: "Webhook changes some known index did not confirm within the notifier's wait (applied by the version poll instead)."}),
	}
	r.MustRegister(m.Attempts, m.AttemptDuration, m.EndToEnd, m.EventsRouted, m.DeliveriesQueued,
		m.DeadLetters, m.RecordErrors, m.Parked, m.InFlight, m.IndexUnconfirmed, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
