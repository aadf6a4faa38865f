package bench

import (
	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/services/hermod/bench/publisher"
)

// load is one run of the publisher.
type load struct {
	mode     string  // publisher.ModeHTTP or ModeJetStream
	events   int     // events to send
	rate     float64 // events per second; 0: as fast as possible
	conns    int     // HTTP requests at once
	idPrefix string  // event ids are the layout, idPrefix and a sequence number
}

// publish runs the publisher process to its end and returns its result;
// with w, its CPU counts in that window.
func (f *external) publish(l load, w *window) publisher.Result {
	f.b.Helper()
	res, cpu := f.Publish(fleet.Load{Mode: l.mode, EventType: eventType, Events: l.events, Rate: l.rate, Conns: l.conns,
		IDPrefix: f.Layout + "-" + l.idPrefix})
	if w != nil {
		w.publisherCPU, w.published = cpu, true
	}
	return res
}
