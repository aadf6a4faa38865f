package bench

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/publisher"
)

// load is one run of the publisher.
type load struct {
	mode     string  // publisher.ModeHTTP or ModeJetStream
	events   int     // events to send
	rate     float64 // events per second; 0: as fast as possible
	conns    int     // HTTP requests at once
	idPrefix string  // event ids are idPrefix + sequence number
}

// publish runs the publisher process to its end and returns its result;
// with w, its CPU counts in that window.
func (f *fleet) publish(l load, w *window) publisher.Result {
	f.b.Helper()
	args := []string{"-mode", l.mode, "-type", eventType, "-events", strconv.Itoa(l.events),
		"-id-prefix", f.layout + "-" + l.idPrefix, "-rate", strconv.FormatFloat(l.rate, 'f', -1, 64),
		"-conns", strconv.Itoa(max(l.conns, 1)), "-api", f.apiURL, "-nats", f.natsURL}
	p := startProc(f.b, rolePublisher, f.bins.publisher, args, map[string]string{"HERMOD_BENCH_ADMIN_KEY": adminKey}, f.logDir)
	timeout := 5 * time.Minute
	if l.rate > 0 {
		timeout += time.Duration(float64(l.events) / l.rate * float64(time.Second))
	}
	if err := p.wait(timeout); err != nil {
		f.b.Fatal(err)
	}
	var res publisher.Result
	if err := json.Unmarshal(p.stdout.Bytes(), &res); err != nil {
		f.b.Fatalf("publisher result %q: %v (log %s)", p.stdout.String(), err, filepath.Base(p.log))
	}
	if res.Errors > 0 {
		f.b.Errorf("publisher: %d of %d events refused, first: %s", res.Errors, res.Events, res.FirstError)
	}
	if res.Accepted+res.Errors != l.events {
		f.b.Errorf("publisher: %d accepted + %d refused of %d events", res.Accepted, res.Errors, l.events)
	}
	if w != nil {
		w.publisherCPU, w.published = p.exitedCPU(), true
	}
	return res
}
