//go:build faults

package faults

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
	"github.com/hermodhq/hermod/shared/hermodtest"
)

// shutdownTimeout is HERMOD_SHUTDOWN_TIMEOUT of the SIGTERM scenario.
const shutdownTimeout = 20 * time.Second

// TestSIGTERMDeliverer stops one of two deliverers with SIGTERM while
// attempts to slow webhooks (200 ms answers) are in flight: it must stop
// taking work, finish its attempts within HERMOD_SHUTDOWN_TIMEOUT, exit 0,
// and cause no second attempt; the other deliverer delivers the rest
// (what the stopped one had pulled but not begun comes back when its lease
// runs out, never attempted twice).
func TestSIGTERMDeliverer(t *testing.T) {
	r := startRun(t, "sigterm-deliverer", fleet.Config{Layout: fleet.LayoutServices, Deliverers: 2,
		SlowDelay: 200 * time.Millisecond, Env: map[string]string{"HERMOD_SHUTDOWN_TIMEOUT": shutdownTimeout.String()}},
		receiver.Slow)
	r.send()
	r.awaitShare(0.2)
	var inFlight float64
	hermodtest.CheckFor(t, time.Minute, 10*time.Millisecond, func() error {
		n, err := metricSum(r.f, "deliverer-2", "hermod_deliveries_in_flight")
		if err == nil && n == 0 {
			err = fmt.Errorf("deliverer-2 has no attempt in flight")
		}
		inFlight = n
		return err
	})
	p := r.f.Hermod("deliverer-2")
	var took time.Duration
	r.fault(fmt.Sprintf("SIGTERM deliverer-2 (%0.f attempts in flight)", inFlight), func() {
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(shutdownTimeout + 10*time.Second); err != nil {
			t.Errorf("deliverer-2 after SIGTERM: %v", err)
		}
		took = time.Since(r.faultAt)
	})
	if took > shutdownTimeout+2*time.Second {
		t.Errorf("deliverer-2 took %s to exit, over HERMOD_SHUTDOWN_TIMEOUT %s", took, shutdownTimeout)
	}
	r.started = []string{fleet.RoleAPI, fleet.RoleRouter, fleet.RoleDeliverer}
	r.verify(checks{}, fmt.Sprintf("deliverer-2 exited 0 %.1f s after SIGTERM with %.0f attempts in flight", took.Seconds(), inFlight))
}
