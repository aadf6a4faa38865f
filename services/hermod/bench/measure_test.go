package bench

import (
	"fmt"
	"strings"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
	"github.com/hermodhq/hermod/shared/streams"
)

// window is one scenario's measured window: the CPU every process used and
// the requests the receiver got between open and close.
type window struct {
	f        *external
	cpu0     map[string]time.Duration
	parked0  map[string]float64
	requests int // requests the receiver had got when the window opened
	// publisherCPU is the CPU of the publisher run in the window (its
	// whole life: it exits before the window closes).
	publisherCPU time.Duration
	published    bool
}

// openWindow starts measuring.
func (f *external) openWindow() *window {
	c, err := f.Counts()
	if err != nil {
		f.b.Fatal(err)
	}
	return &window{f: f, cpu0: f.CPU(), parked0: f.parked(), requests: totalRequests(c)}
}

// measured is what a closed window saw.
type measured struct {
	stats    map[string]receiver.Stats // by prefix, cumulative since the fleet started
	requests int                       // requests the receiver got in the window
	cpu      map[string]time.Duration  // CPU used in the window, by role
	parked   map[string]int            // deliveries parked in the window, by reason
	notes    []string
}

// close waits until want distinct deliveries arrived at each prefix (at
// most timeout: a loss is noted, and failed by the scenario's check), then
// until the recorder has taken every result (so its Redis writes count),
// and reads the CPU and the receiver's stats.
func (w *window) close(want map[string]int, timeout time.Duration) measured {
	f := w.f
	f.b.Helper()
	var m measured
	deadline := time.Now().Add(timeout)
	for {
		c, err := f.Counts()
		if err != nil {
			f.b.Fatal(err)
		}
		short := shortOf(c, want)
		if short == "" {
			break
		}
		if time.Now().After(deadline) {
			m.notes = append(m.notes, fmt.Sprintf("missing after %s: %s", timeout, short))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := f.AwaitEmpty(streams.ResultsStream, 60*time.Second); err != nil {
		m.notes = append(m.notes, "recorder still busy at the end of the window ("+err.Error()+")")
	}
	cpu1 := f.CPU()
	m.cpu = map[string]time.Duration{}
	for role, d := range cpu1 {
		m.cpu[role] = d - w.cpu0[role] // a process started in the window started from 0
	}
	if w.published {
		m.cpu[fleet.RolePublisher] = w.publisherCPU
	}
	m.parked = map[string]int{}
	for reason, n := range f.parked() {
		if d := int(n - w.parked0[reason]); d > 0 { // the reasons that grew; a process started in the window counts from 0
			m.parked[reason] = d
		}
	}
	m.stats = f.Stats()
	m.requests = totalRequests(countsOf(m.stats)) - w.requests
	return m
}

// shortOf describes the prefixes with fewer distinct deliveries than want,
// "" when none.
func shortOf(c map[string]receiver.Counts, want map[string]int) string {
	var short []string
	for prefix, n := range want {
		if got := c[prefix].Distinct; got < n {
			short = append(short, fmt.Sprintf("%s %d of %d", prefix, got, n))
		}
	}
	return strings.Join(short, ", ")
}

func totalRequests(c map[string]receiver.Counts) int {
	n := 0
	for _, p := range c {
		n += p.Requests
	}
	return n
}

func countsOf(s map[string]receiver.Stats) map[string]receiver.Counts {
	out := make(map[string]receiver.Counts, len(s))
	for k, v := range s {
		out[k] = v.Counts
	}
	return out
}
