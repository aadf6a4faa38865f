//go:build faults

package faults

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
	"github.com/hermodhq/hermod/shared/hermodtest"
)

// TestRestartNATS kills nats-server with SIGKILL while deliveries flow and
// starts it again on the same port and store. Hermod's processes reconnect
// and go on; ingest meanwhile answers 503 and is sent again.
func TestRestartNATS(t *testing.T) {
	r := startRun(t, "restart-nats", fleet.Config{Layout: fleet.LayoutServices}, receiver.Fast)
	r.send()
	r.awaitShare(0.25)
	r.fault("kill -9 nats-server, then start it again on its store", func() {
		r.f.NATS.Kill()
		r.f.StartNATS()
	})
	r.verify(checks{duplicatesAllowed: true}, "")
}

// TestRestartRedis kills redis-server with SIGKILL while deliveries flow:
// delivery goes on without it, the API answers 503 where it needs Redis,
// and once Redis is started again on its append-only file the records
// catch up with every delivery.
func TestRestartRedis(t *testing.T) {
	r := startRun(t, "restart-redis", fleet.Config{Layout: fleet.LayoutServices}, receiver.Fast)
	r.send()
	r.awaitShare(0.25)
	var during int
	var down time.Duration
	r.fault("kill -9 redis-server; start it again once delivery went on and the API answered 503", func() {
		r.f.Redis.Stop()
		at, _, _, err := r.arrived()
		if err != nil {
			t.Fatal(err)
		}
		hermodtest.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
			code, answer, err := call(r.f, http.MethodGet, "/api/v1/webhooks/"+r.hookIDs[0], nil)
			if err == nil && code != http.StatusServiceUnavailable {
				err = fmt.Errorf("GET webhook with Redis down: %d %s", code, answer)
			}
			return err
		})
		hermodtest.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
			now, _, _, err := r.arrived()
			if err == nil && now-at < 500 {
				err = fmt.Errorf("%d deliveries since Redis went down", now-at)
			}
			during = now - at
			return err
		})
		down = time.Since(r.faultAt)
		if err := r.f.Redis.Start(); err != nil {
			t.Fatal(err)
		}
	})
	r.verify(checks{}, fmt.Sprintf("Redis down %.1f s, %d deliveries meanwhile", down.Seconds(), during))
}
