package allinone_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	allinone "github.com/hermodhq/hermod/services/hermod"
	"github.com/hermodhq/hermod/shared/hermodtest"
)

// dyingWebhook makes a webhook whose n deliveries die at once (the sink
// answers 500, max_retries 1) and returns it with its sink, the switch that
// fixes the sink, the dead deliveries' ids and the time before the first.
func dyingWebhook(t *testing.T, p *pipeline, n int) (string, *hermodtest.Sink, *atomic.Bool, map[string]bool, time.Time) {
	t.Helper()
	s := hermodtest.NewSink(t)
	var fixed atomic.Bool
	s.SetAnswer(func(int, *http.Request) int {
		if fixed.Load() {
			return 200
		}
		return 500
	})
	since := time.Now().Add(-time.Second)
	wh := p.createWebhook(map[string]any{"name": "replayed", "url": s.URL, "event_types": []string{"stack.created"}, "max_retries": 1})
	for i := range n {
		p.publish("stack.created", map[string]any{"stack_id": fmt.Sprintf("s-%d", i)})
	}
	dead := map[string]bool{}
	for _, d := range p.waitStatus(wh, "dead", n, 30*time.Second) {
		dead[d["id"].(string)] = true
	}
	if s.Count() != n {
		t.Fatalf("the sink got %d requests before the replay, want %d", s.Count(), n)
	}
	return wh, s, &fixed, dead, since
}

// noBreaker keeps the failure breaker shut while the deliveries die (each
// would otherwise wait out its cooldown).
func noBreaker(c *allinone.Config) { c.Isolation.Threshold = 1000 }

func (p *pipeline) startReplay(wh string, since time.Time) string {
	p.t.Helper()
	return p.must(202, "POST", "/api/v1/webhooks/"+wh+"/replay", map[string]any{"statuses": []string{"dead", "failed"},
		"since": since.UTC().Format(time.RFC3339Nano), "until": time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)})["id"].(string)
}

func (p *pipeline) waitReplay(id, state string, timeout time.Duration) map[string]any {
	p.t.Helper()
	var r map[string]any
	hermodtest.CheckFor(p.t, timeout, 50*time.Millisecond, func() error {
		if r = p.must(200, "GET", "/api/v1/replays/"+id, nil); r["state"] != state {
			return fmt.Errorf("replay %v, want %s", r, state)
		}
		return nil
	})
	return r
}

// replayedOnce checks that the sink's requests after the first before
// carry every id of dead exactly once as their webhook-id.
func replayedOnce(t *testing.T, s *hermodtest.Sink, before int, dead map[string]bool) {
	t.Helper()
	got := map[string]int{}
	for _, r := range s.Received()[before:] {
		got[r.Header.Get("webhook-id")]++
	}
	for id := range dead {
		if got[id] != 1 {
			t.Errorf("delivery %s arrived %d times after the replay, want once", id, got[id])
		}
	}
	if len(got) != len(dead) {
		t.Errorf("%d webhook-ids arrived after the replay, want %d: %v", len(got), len(dead), got)
	}
}

// A webhook's dead deliveries, replayed once its receiver is fixed, each
// arrive once more with their webhook-id; their records turn success and
// the replay's counts say so.
func TestReplayDeliversDeadDeliveriesOnce(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, noBreaker)
		// An operator's webhook told when a replay finishes.
		told := hermodtest.NewSink(t)
		p.createWebhook(map[string]any{"name": "replay news", "url": told.URL, "event_types": []string{"hermod.replay.finished"}})
		const n = 12
		wh, s, fixed, dead, since := dyingWebhook(t, p, n)
		fixed.Store(true)
		id := p.startReplay(wh, since)
		r := p.waitReplay(id, "done", 30*time.Second)
		if r["matched"].(float64) != n || r["requeued"].(float64) != n || r["skipped"].(float64) != 0 || r["finished_at"] == nil {
			t.Errorf("replay %v, want %d matched and requeued", r, n)
		}
		hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(told, 1) })
		var ev struct {
			EventType string         `json:"event_type"`
			Data      map[string]any `json:"data"`
		}
		if err := json.Unmarshal(told.Received()[0].Body, &ev); err != nil || ev.EventType != "hermod.replay.finished" ||
			ev.Data["id"] != id || ev.Data["webhook_id"] != wh || ev.Data["state"] != "done" ||
			ev.Data["requeued"] != float64(n) || ev.Data["message"] != fmt.Sprintf("%d of %d deliveries sent again", n, n) {
			t.Errorf("hermod.replay.finished: %v %s", err, told.Received()[0].Body)
		}
		for _, d := range p.waitStatus(wh, "success", n, 30*time.Second) {
			if !dead[d["id"].(string)] {
				t.Errorf("success %v was not one of the dead deliveries", d["id"])
			}
		}
		hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(s, 2*n) })
		replayedOnce(t, s, n, dead)
		if len(p.deliveries(wh, "dead")) != 0 {
			t.Error("deliveries still dead after the replay")
		}
		list := p.must(200, "GET", "/api/v1/replays?webhook_id="+wh, nil)["data"].([]any)
		if len(list) != 1 || list[0].(map[string]any)["id"] != id {
			t.Errorf("replays of the webhook: %v", list)
		}
	})
}

// Stopped mid-replay, the all-in-one gives the replay up; started again on
// the same NATS and Redis, it resumes where it was, and every dead delivery
// arrives once.
func TestReplayResumesAfterRestart(t *testing.T) {
	t.Parallel()
	slow := func(c *allinone.Config) { noBreaker(c); c.ReplayRate = 4 }
	p := startPipeline(t, slow)
	const n = 16
	wh, s, fixed, dead, since := dyingWebhook(t, p, n)
	fixed.Store(true)
	id := p.startReplay(wh, since)
	hermodtest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if r := p.must(200, "GET", "/api/v1/replays/"+id, nil); r["requeued"].(float64) < 2 {
			return fmt.Errorf("replay %v", r)
		}
		return nil
	})
	p.stop()
	p2 := startPipelineOn(t, p.NS, p.Redis, slow)
	mid := p2.must(200, "GET", "/api/v1/replays/"+id, nil)
	if mid["requeued"].(float64) >= n {
		t.Fatalf("the replay finished before the restart: %v", mid)
	}
	r := p2.waitReplay(id, "done", 30*time.Second)
	if r["requeued"].(float64) != n || r["matched"].(float64) != n {
		t.Errorf("replay after the restart %v, want %d requeued", r, n)
	}
	p2.waitStatus(wh, "success", n, 30*time.Second)
	hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(s, 2*n) })
	replayedOnce(t, s, n, dead)
}
