//go:build faults

package faults

import (
	"fmt"
	"testing"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
	"github.com/hermodhq/hermod/shared/hermodtest"
)

// TestKillDeliverer kills one of two deliverers with SIGKILL while
// deliveries flow, and starts it again. What it had pulled comes back to
// the shared consumer when its lease (10 s) runs out; what it had
// attempted but not acknowledged is attempted again (at-least-once: those
// are the duplicates).
func TestKillDeliverer(t *testing.T) {
	r := startRun(t, "kill-deliverer", fleet.Config{Layout: fleet.LayoutServices, Deliverers: 2}, receiver.Fast)
	r.send()
	r.awaitShare(0.25)
	hermodtest.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
		n, err := metricSum(r.f, "deliverer-2", "hermod_delivery_attempts_total")
		if err == nil && n == 0 {
			err = fmt.Errorf("deliverer-2 has attempted nothing yet")
		}
		return err
	})
	r.killRestart("deliverer-2")
	r.verify(checks{duplicatesAllowed: true}, "")
}

// TestKillRouter kills the router (which also records outcomes) with
// SIGKILL while it fans out, and starts it again. Its unacknowledged
// events come back after the router consumer's 30 s ack wait and are
// fanned out again under the same delivery ids, which JetStream's
// duplicate window drops: no delivery twice.
func TestKillRouter(t *testing.T) {
	r := startRun(t, "kill-router", fleet.Config{Layout: fleet.LayoutServices}, receiver.Fast)
	r.send()
	r.awaitShare(0.25)
	r.killRestart(fleet.RoleRouter)
	r.verify(checks{}, "")
}

// TestKillAPIDuringIngest kills the API with SIGKILL during HTTP ingest
// and starts it again: every event it answered 202 must be delivered, and
// an event whose request died with it, sent again, is fanned out once.
func TestKillAPIDuringIngest(t *testing.T) {
	r := startRun(t, "kill-api", fleet.Config{Layout: fleet.LayoutServices}, receiver.Fast)
	in := r.send()
	hermodtest.CheckFor(t, 2*time.Minute, 10*time.Millisecond, func() error {
		if n := in.accepted.Load(); n < eventsPerRun/4 {
			return fmt.Errorf("%d events accepted", n)
		}
		return nil
	})
	accepted := in.accepted.Load()
	r.killRestart(fleet.RoleAPI)
	r.verify(checks{}, fmt.Sprintf("%d events accepted before the kill", accepted))
	if in.retried.Load() == 0 {
		t.Errorf("no event had to be sent again: the kill met no ingest")
	}
}

// TestKillAllInOne kills the all-in-one bin/hermod (API, router, recorder,
// deliverer in one process, here against the fleet's nats-server and
// redis-server) with SIGKILL while deliveries flow, and starts it again:
// everything it held comes back after the router's ack wait and the
// lease; repeats come only from the attempts it had not acknowledged.
func TestKillAllInOne(t *testing.T) {
	r := startRun(t, "kill-all-in-one", fleet.Config{Layout: fleet.LayoutAllInOne}, receiver.Fast)
	r.send()
	r.awaitShare(0.25)
	r.killRestart(fleet.RoleHermod)
	r.verify(checks{duplicatesAllowed: true}, "")
}
