package bench

import (
	"fmt"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/services/hermod/bench/publisher"
	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
	"github.com/hermodhq/hermod/shared/streams"
)

// eventType is the type of every event the external benchmark sends.
const eventType = "deployment.applied"

// scenario is one measurement, run once per layout on a fresh fleet.
type scenario struct {
	name  string               // sub-benchmark name
	title func(s sizes) string // its label in the tables
	run   func(f *external, s sizes) result
}

var scenarios = []scenario{
	{"1-one-endpoint", func(s sizes) string {
		return fmt.Sprintf("1. %d events → 1 webhook, HTTP ingest", s.oneEvents)
	}, oneEndpoint},
	{"2a-ten-endpoints-http", func(s sizes) string {
		return fmt.Sprintf("2a. %d events × 10 webhooks, HTTP ingest", s.tenHTTPEvents)
	}, tenEndpoints(publisher.ModeHTTP)},
	{"2b-ten-endpoints-jetstream", func(s sizes) string {
		return fmt.Sprintf("2b. %d events × 10 webhooks, JetStream", s.tenJSEvents)
	}, tenEndpoints(publisher.ModeJetStream)},
	{"3-backlog-drain", func(s sizes) string {
		return fmt.Sprintf("3. backlog of %d → 1 webhook drained", s.backlog)
	}, backlogDrain},
	{"4-steady", func(s sizes) string {
		return fmt.Sprintf("4. steady %d deliveries/s (%d events/s × 10) for %d s", s.steadyRate, s.steadyRate/10, s.steadySeconds)
	}, steady},
	{"5-fan-out", func(s sizes) string {
		return fmt.Sprintf("5. 1 event → %d webhooks", s.fanOutHooks)
	}, fanOut},
	{isolationAlone, func(s sizes) string {
		return fmt.Sprintf("6a. steady %d deliveries/s (%d events/s × %d healthy webhooks) for %d s, alone",
			s.isolationRate, isolationEvents(s), s.isolationHooks, s.isolationSeconds)
	}, isolation(besideNothing)},
	{isolationBeside, func(s sizes) string {
		return fmt.Sprintf("6b. the same beside a slow (%s) and a failing (500) webhook", s.slowDelay)
	}, isolation(besideSlowAndFailing)},
	{isolationTwoSlow, func(s sizes) string {
		return fmt.Sprintf("6c. the same beside two slow (%s) webhooks", s.slowDelay)
	}, isolation(besideTwoSlow)},
}

// createHooks creates a webhook per url for eventType through the API and
// waits until every webhook index (router, deliverer, API) has applied them.
func (f *external) createHooks(urls []string) {
	f.b.Helper()
	f.CreateHooks(urls, eventType)
}

// arrivalTimeout is how long n deliveries may take (200/s at the least).
func arrivalTimeout(n int) time.Duration { return time.Minute + time.Duration(n)*5*time.Millisecond }

func oneEndpoint(f *external, s sizes) result {
	f.createHooks(f.HookURLs(receiver.Fast, "one", 1))
	w := f.openWindow()
	pub := f.publish(load{mode: publisher.ModeHTTP, events: s.oneEvents, conns: s.httpConns, idPrefix: "one-"}, w)
	m := w.close(map[string]int{receiver.Fast: pub.Accepted}, arrivalTimeout(s.oneEvents))
	return newResult(s.oneEvents, receiver.Fast, m, &pub)
}

func tenEndpoints(mode string) func(f *external, s sizes) result {
	return func(f *external, s sizes) result {
		events := s.tenHTTPEvents
		if mode == publisher.ModeJetStream {
			events = s.tenJSEvents
		}
		f.createHooks(f.HookURLs(receiver.Fast, "ten-"+mode, 10))
		w := f.openWindow()
		pub := f.publish(load{mode: mode, events: events, conns: s.httpConns, idPrefix: "ten-" + mode + "-"}, w)
		m := w.close(map[string]int{receiver.Fast: pub.Accepted * 10}, arrivalTimeout(events*10))
		return newResult(events*10, receiver.Fast, m, &pub)
	}
}

// backlogDrain queues deliveries while the delivering process is stopped
// (the deliverer; for the all-in-one, the whole process, so its backlog is
// events still to be fanned out), then starts it and measures the drain.
// With the separate services the backlog comes through the API (HTTP
// ingest while the router fans out, nothing delivering: its rate is HTTP
// ingest alone); the all-in-one's API is down too, so there the events go
// straight to JetStream.
func backlogDrain(f *external, s sizes) result {
	f.createHooks(f.HookURLs(receiver.Fast, "backlog", 1))
	role := f.DeliveringRole()
	f.StopHermod(role)
	mode := publisher.ModeHTTP
	if f.Layout == fleet.LayoutAllInOne {
		mode = publisher.ModeJetStream
	}
	pub := f.publish(load{mode: mode, events: s.backlog, conns: s.httpConns, idPrefix: "backlog-"}, nil)
	queued := streams.DeliveriesStream
	if f.Layout == fleet.LayoutAllInOne {
		queued = streams.EventsStream
	}
	if err := f.AwaitMsgs(queued, uint64(pub.Accepted), arrivalTimeout(s.backlog)); err != nil {
		f.b.Fatalf("backlog not queued: %v", err)
	}
	// The recorder has written every "enqueued" result before the drain.
	if err := f.AwaitEmpty(streams.ResultsStream, arrivalTimeout(s.backlog)); err != nil {
		f.b.Fatalf("backlog not recorded: %v", err)
	}
	w := f.openWindow()
	f.StartHermod(role)
	m := w.close(map[string]int{receiver.Fast: pub.Accepted}, arrivalTimeout(s.backlog))
	r := newResult(s.backlog, receiver.Fast, m, &pub)
	r.notes = append(r.notes, fmt.Sprintf("queued in %s while %s was stopped, then drained from its start (its start-up CPU counts); "+
		"latency includes the time queued; ingest is the queueing's publish rate (%s), outside the window",
		queued, fleet.HermodBinary[role], mode))
	return r
}

func steady(f *external, s sizes) result {
	rate := max(s.steadyRate/10, 1)
	events := rate * s.steadySeconds
	f.createHooks(f.HookURLs(receiver.Fast, "steady", 10))
	w := f.openWindow()
	pub := f.publish(load{mode: publisher.ModeHTTP, events: events, rate: float64(rate), conns: s.httpConns, idPrefix: "steady-"}, w)
	m := w.close(map[string]int{receiver.Fast: pub.Accepted * 10}, arrivalTimeout(events*10))
	return newResult(events*10, receiver.Fast, m, &pub)
}

func fanOut(f *external, s sizes) result {
	began := time.Now()
	f.createHooks(f.HookURLs(receiver.Fast, "fanout", s.fanOutHooks))
	created := time.Since(began)
	w := f.openWindow()
	pub := f.publish(load{mode: publisher.ModeHTTP, events: 1, conns: 1, idPrefix: "fanout-"}, w)
	m := w.close(map[string]int{receiver.Fast: pub.Accepted * s.fanOutHooks}, arrivalTimeout(s.fanOutHooks))
	r := newResult(s.fanOutHooks, receiver.Fast, m, &pub)
	r.ingest = 0 // one event: no rate
	r.notes = append(r.notes, fmt.Sprintf("all arrived %.2f s after the send (max); %d webhooks created through the API in %.1f s",
		r.got.MaxMS/1000, s.fanOutHooks, created.Seconds()))
	return r
}
