// Package metrics declares Hermod's Prometheus metrics. Each binary exposes
// the metrics of the work it does: it makes a registry with New, then
// registers the sets of the components it runs (Delivery for deliverers and
// agents, Routing for the router, Recording for the recorder); the
// all-in-one registers them all.
package metrics

import (
	"errors"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/version"
)

// Metrics is one process's registry.
type Metrics struct {
	Registry *prometheus.Registry
}

// New creates a registry with the Go and process collectors and
// hermod_build_info{binary, version, goversion} = 1.
func New(binary string) *Metrics {
	r := prometheus.NewRegistry()
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "hermod_build_info",
		Help:        "Always 1; the labels say which binary and version runs.",
		ConstLabels: prometheus.Labels{"binary": binary, "version": version.Version, "goversion": runtime.Version()}})
	info.Set(1)
	r.MustRegister(info, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Metrics{Registry: r}
}

// Delivery are the metrics of a process that makes delivery attempts.
// Its methods do nothing on a nil *Delivery.
type Delivery struct {
	Attempts        *prometheus.CounterVec // by outcome
	AttemptDuration prometheus.Histogram
	EndToEnd        prometheus.Histogram
	DeadLetters     prometheus.Counter
	Parked          *prometheus.CounterVec // by reason
	InFlight        prometheus.Gauge
	BreakerOpen     *prometheus.GaugeVec // by webhook_id, 1 while open
	SlotWaiting     prometheus.Gauge
	SlotWaits       *prometheus.CounterVec // by result
	SlowLane        prometheus.Gauge
	SlowLaneFulls   prometheus.Counter
}

// NewDelivery creates the delivery metrics and registers them on r.
func NewDelivery(r prometheus.Registerer) *Delivery {
	m := &Delivery{
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hermod_delivery_attempts_total",
			Help: "Delivery attempts by outcome (success, retry, dead)."}, []string{"outcome"}),
		AttemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hermod_delivery_attempt_seconds",
			Help: "Duration of HTTP delivery attempts.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}),
		EndToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hermod_delivery_latency_seconds",
			Help: "Time from enqueue to a successful delivery.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 16)}),
		DeadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "hermod_dead_letters_total",
			Help: "Deliveries that died and went to the dead-letter stream."}),
		Parked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hermod_deliveries_parked_total",
			Help: "Deliveries parked outside the deliverers' window, by reason."}, []string{"reason"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hermod_deliveries_in_flight",
			Help: "HTTP attempts running in this process."}),
		BreakerOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hermod_webhook_breaker_open",
			Help: "1 while this process's failure breaker for the webhook is open, else 0."}, []string{"webhook_id"}),
		SlotWaiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hermod_deliveries_waiting_for_slot",
			Help: "Deliveries waiting in this process for one of their webhook's in-flight slots."}),
		SlotWaits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hermod_delivery_slot_waits_total",
			Help: "Waits for a webhook's in-flight slot, by result (acquired, or parked when none came free in time)."}, []string{"result"}),
		SlowLane: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hermod_slow_lane_attempts",
			Help: "Attempts running to slow webhooks (their attempts take a second or more), which together may hold half of the workers."}),
		SlowLaneFulls: prometheus.NewCounter(prometheus.CounterOpts{Name: "hermod_slow_lane_full_total",
			Help: "Deliveries of slow webhooks parked because attempts to slow webhooks held half of the workers."}),
	}
	r.MustRegister(m.Attempts, m.AttemptDuration, m.EndToEnd, m.DeadLetters, m.Parked, m.InFlight, m.BreakerOpen,
		m.SlotWaiting, m.SlotWaits, m.SlowLane, m.SlowLaneFulls)
	return m
}

// Attempt counts an attempt's outcome ("success", "retry", "dead").
func (m *Delivery) Attempt(outcome string) {
	if m != nil {
		m.Attempts.WithLabelValues(outcome).Inc()
	}
}

// Park counts a delivery parked for reason.
func (m *Delivery) Park(reason string) {
	if m != nil {
		m.Parked.WithLabelValues(reason).Inc()
	}
}

// Dead counts a dead letter.
func (m *Delivery) Dead() {
	if m != nil {
		m.Attempts.WithLabelValues("dead").Inc()
		m.DeadLetters.Inc()
	}
}

// Started and Finished bracket an HTTP attempt of seconds.
func (m *Delivery) Started() {
	if m != nil {
		m.InFlight.Inc()
	}
}

// Finished ends an attempt that took seconds.
func (m *Delivery) Finished(seconds float64) {
	if m != nil {
		m.InFlight.Dec()
		m.AttemptDuration.Observe(seconds)
	}
}

// Delivered observes the time from enqueue to delivery.
func (m *Delivery) Delivered(seconds float64) {
	if m != nil {
		m.EndToEnd.Observe(seconds)
	}
}

// WaitForSlot counts a delivery starting to wait for a slot.
func (m *Delivery) WaitForSlot() {
	if m != nil {
		m.SlotWaiting.Inc()
	}
}

// WaitedForSlot ends a wait for a slot: acquired, or not (parked).
func (m *Delivery) WaitedForSlot(acquired bool) {
	if m == nil {
		return
	}
	m.SlotWaiting.Dec()
	result := "parked"
	if acquired {
		result = "acquired"
	}
	m.SlotWaits.WithLabelValues(result).Inc()
}

// SlowLaneHeld sets how many attempts to slow webhooks run.
func (m *Delivery) SlowLaneHeld(n int32) {
	if m != nil {
		m.SlowLane.Set(float64(n))
	}
}

// SlowLaneFull counts a slow webhook's delivery refused a worker.
func (m *Delivery) SlowLaneFull() {
	if m != nil {
		m.SlowLaneFulls.Inc()
	}
}

// Breaker sets webhook id's breaker gauge.
func (m *Delivery) Breaker(id string, open bool) {
	if m == nil {
		return
	}
	if open {
		m.BreakerOpen.WithLabelValues(id).Set(1)
	} else {
		m.BreakerOpen.DeleteLabelValues(id)
	}
}

// Routing are the router's metrics.
type Routing struct {
	EventsRouted     prometheus.Counter
	DeliveriesQueued prometheus.Counter
	// EventsRefused counts events the router terminated without a
	// delivery, by reason: too_large, not_an_envelope, delivery_copy,
	// reserved_family (a hermod.* event on a platform subject),
	// not_operational (an operational subject carrying another type).
	EventsRefused *prometheus.CounterVec
	// FilterErrors counts filter expressions that gave no answer for an
	// event (the webhook did not match it), by reason: missing_field,
	// cost_limit, not_bool, eval, compile.
	FilterErrors *prometheus.CounterVec
}

// NewRouting creates the router's metrics and registers them on r.
func NewRouting(r prometheus.Registerer) *Routing {
	m := &Routing{
		EventsRouted: prometheus.NewCounter(prometheus.CounterOpts{Name: "hermod_events_routed_total",
			Help: "Events fanned out by the router."}),
		DeliveriesQueued: prometheus.NewCounter(prometheus.CounterOpts{Name: "hermod_deliveries_enqueued_total",
			Help: "Deliveries enqueued by the router."}),
		EventsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hermod_events_refused_total",
			Help: "Events the router refused (terminated without delivering), by reason."}, []string{"reason"}),
		FilterErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hermod_filter_errors_total",
			Help: "Evaluations of a webhook's filter expression that gave no answer (the event did not match the webhook), by reason."}, []string{"reason"}),
	}
	for _, reason := range FilterErrorReasons {
		m.FilterErrors.WithLabelValues(reason)
	}
	r.MustRegister(m.EventsRouted, m.DeliveriesQueued, m.EventsRefused, m.FilterErrors)
	return m
}

// FilterErrorReasons are the reasons of hermod_filter_errors_total
// (filterexpr's Reason constants), shown at 0 from the start.
var FilterErrorReasons = []string{"missing_field", "cost_limit", "not_bool", "eval", "compile"}

// FilterError counts one filter expression that gave no answer for reason.
func (m *Routing) FilterError(reason string) {
	if m != nil {
		m.FilterErrors.WithLabelValues(reason).Inc()
	}
}

// Refused counts one event refused for reason.
func (m *Routing) Refused(reason string) {
	if m != nil {
		m.EventsRefused.WithLabelValues(reason).Inc()
	}
}

// Routed counts one event fanned out to n deliveries.
func (m *Routing) Routed(n int) {
	if m != nil {
		m.EventsRouted.Inc()
		m.DeliveriesQueued.Add(float64(n))
	}
}

// Recording are the recorder's metrics.
type Recording struct {
	RecordErrors prometheus.Counter
}

// NewRecording creates the recorder's metrics and registers them on r.
func NewRecording(r prometheus.Registerer) *Recording {
	m := &Recording{RecordErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "hermod_record_write_errors_total",
		Help: "Failed writes of delivery records to Redis (retried)."})}
	r.MustRegister(m.RecordErrors)
	return m
}

// Error counts a failed write.
func (m *Recording) Error(error) {
	if m != nil {
		m.RecordErrors.Inc()
	}
}

// NewIndexUnconfirmed creates hermod_index_notify_unconfirmed_total (the
// API's webhook changes that some webhook index did not confirm in time)
// and registers it on r.
func NewIndexUnconfirmed(r prometheus.Registerer) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "hermod_index_notify_unconfirmed_total",
		Help: "Webhook changes that some webhook index did not confirm within the wait (they apply within the index's version poll)."})
	r.MustRegister(c)
	return c
}

// Ops are the metrics of operational events (package opsevents).
type Ops struct {
	// Published counts operational events published, by type.
	Published *prometheus.CounterVec
	// Suppressed counts operational events not published, by type and
	// reason: cooldown (a degradation within HERMOD_OPS_EVENTS_COOLDOWN of
	// the last one told), dead_limit (over HERMOD_OPS_EVENTS_DEAD_LIMIT in
	// the window; counted in the next one's "suppressed"), ops_delivery (a
	// delivery of an operational event died: never told, so events cannot
	// loop), publish_failed (JetStream did not take it).
	Suppressed *prometheus.CounterVec
	// Agents is the number of registered agents by status (active,
	// inactive, never_seen), as the API's agent watcher last counted them
	// (every heartbeat interval). Every API replica counts the same.
	Agents *prometheus.GaugeVec
	// Queued is the number of recorded batches waiting for the
	// operational events' watcher (at most opsevents.QueueSize).
	Queued prometheus.Gauge
}

// NewOps creates the operational events' metrics and registers them on r;
// when r has them already (the all-in-one: the router's recorder and the
// API's agent watcher both tell), it returns those.
func NewOps(r prometheus.Registerer) *Ops {
	m := &Ops{
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hermod_ops_events_published_total",
			Help: "Operational events (hermod.*) published, by type."}, []string{"type"}),
		Suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hermod_ops_events_suppressed_total",
			Help: "Operational events not published (coalesced, over the limit, about an operational event's delivery, or failed), by type and reason."},
			[]string{"type", "reason"}),
	}
	m.Agents = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hermod_agents",
		Help: "Registered agents by status: active (a heartbeat within 3 intervals), inactive, never_seen."}, []string{"status"})
	m.Published = registerOrGet(r, m.Published)
	m.Suppressed = registerOrGet(r, m.Suppressed)
	m.Agents = registerOrGet(r, m.Agents)
	m.Queued = registerOrGet(r, prometheus.NewGauge(prometheus.GaugeOpts{Name: "hermod_ops_events_queued",
		Help: "Recorded batches waiting for the operational events' watcher."}))
	// Every series that can be counted exists from the start, at 0, so a
	// rate or an increase sees the first one.
	for _, t := range []string{catalog.WebhookDegraded, catalog.WebhookRecovered, catalog.DeliveryDead,
		catalog.AgentInactive, catalog.AgentActive, catalog.ReplayFinished} {
		m.Published.WithLabelValues(t)
		m.Suppressed.WithLabelValues(t, "publish_failed")
	}
	m.Suppressed.WithLabelValues(catalog.WebhookDegraded, "cooldown")
	m.Suppressed.WithLabelValues(catalog.AgentInactive, "cooldown")
	m.Suppressed.WithLabelValues(catalog.DeliveryDead, "dead_limit")
	m.Suppressed.WithLabelValues(catalog.DeliveryDead, "ops_delivery")
	return m
}

// Queue adds d to the batches waiting for the watcher.
func (m *Ops) Queue(d float64) {
	if m != nil {
		m.Queued.Add(d)
	}
}

// SetAgents sets the agents' count by status.
func (m *Ops) SetAgents(active, inactive, neverSeen int) {
	if m != nil {
		m.Agents.WithLabelValues("active").Set(float64(active))
		m.Agents.WithLabelValues("inactive").Set(float64(inactive))
		m.Agents.WithLabelValues("never_seen").Set(float64(neverSeen))
	}
}

// registerOrGet registers c on r, or returns the equal collector r has.
func registerOrGet[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a programming error, as MustRegister's
	}
	return c
}

// Publish counts one event of type t published.
func (m *Ops) Publish(t string) {
	if m != nil {
		m.Published.WithLabelValues(t).Inc()
	}
}

// Suppress counts one event of type t not published, for reason.
func (m *Ops) Suppress(t, reason string) {
	if m != nil {
		m.Suppressed.WithLabelValues(t, reason).Inc()
	}
}
