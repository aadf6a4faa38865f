package fleet

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/publisher"
)

// Load is one run of the publisher.
type Load struct {
	Mode      string  // publisher.ModeHTTP or ModeJetStream
	EventType string  // the type of every event
	Events    int     // events to send
	Rate      float64 // events per second; 0: as fast as possible
	Conns     int     // HTTP requests at once
	IDPrefix  string  // event ids are IDPrefix + sequence number
}

// Publish runs the publisher process to its end and returns its result
// and the CPU time it used. Refused events fail tb (not at once).
func (f *Fleet) Publish(l Load) (publisher.Result, time.Duration) {
	f.TB.Helper()
	args := []string{"-mode", l.Mode, "-type", l.EventType, "-events", strconv.Itoa(l.Events),
		"-id-prefix", l.IDPrefix, "-rate", strconv.FormatFloat(l.Rate, 'f', -1, 64),
		"-conns", strconv.Itoa(max(l.Conns, 1)), "-api", f.APIURL, "-nats", f.NATSURL}
	p := StartProc(f.TB, RolePublisher, f.Bins.Publisher, args, map[string]string{"HERMOD_BENCH_ADMIN_KEY": AdminKey}, f.LogDir)
	timeout := 5 * time.Minute
	if l.Rate > 0 {
		timeout += time.Duration(float64(l.Events) / l.Rate * float64(time.Second))
	}
	if err := p.Wait(timeout); err != nil {
		f.TB.Fatal(err)
	}
	var res publisher.Result
	if err := json.Unmarshal(p.Stdout(), &res); err != nil {
		f.TB.Fatalf("publisher result %q: %v (log %s)", p.Stdout(), err, filepath.Base(p.Log))
	}
	if res.Errors > 0 {
		f.TB.Errorf("publisher: %d of %d events refused, first: %s", res.Errors, res.Events, res.FirstError)
	}
	if res.Accepted+res.Errors != l.Events {
		f.TB.Errorf("publisher: %d accepted + %d refused of %d events", res.Accepted, res.Errors, l.Events)
	}
	return res, p.ExitedCPU()
}
