package allinone_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	allinone "github.com/hermodhq/hermod/services/hermod"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/store"
)

// opsGot is what a sink received of each event type, with the bodies.
func opsGot(s *hermodtest.Sink) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for _, r := range s.Received() {
		var env map[string]any
		if json.Unmarshal(r.Body, &env) != nil {
			continue
		}
		t := r.Header.Get("X-Hermod-Event-Type")
		out[t] = append(out[t], env)
	}
	return out
}

// Operational events end to end: a webhook whose receiver refuses its
// deliveries has them die; a second webhook subscribed to hermod.*
// receives each hermod.delivery.dead and one hermod.webhook.degraded
// (cooldown 1 h: a second burst is not told again), a Slack-format
// subscription gets a readable text, and when the receiver answers again
// hermod.webhook.recovered. The failing webhook, subscribed to hermod.*
// too, never receives an event about itself. The platform can publish
// the hermod family neither through the API nor straight to NATS.
func TestE2EOperationalEvents(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, func(c *allinone.Config) { c.OpsCooldown, c.OpsDeadLimit = time.Hour, 10 })
		var failing atomic.Bool
		failing.Store(true)
		bad := hermodtest.NewSink(t)
		bad.SetAnswer(func(int, *http.Request) int {
			if failing.Load() {
				return 404 // terminal: dead at once
			}
			return 200
		})
		watch, slack := hermodtest.NewSink(t), hermodtest.NewSink(t)
		f := p.createWebhook(map[string]any{"name": "flaky-receiver", "url": bad.URL + "/hook?token=s3cret",
			"event_types": []string{"alert.*", "hermod.*"}, "max_retries": 1})
		w := p.createWebhook(map[string]any{"name": "ops-watch", "url": watch.URL, "event_types": []string{"hermod.*"}})
		p.createWebhook(map[string]any{"name": "ops-slack", "url": slack.URL, "format": "slack",
			"event_types": []string{"hermod.webhook.degraded"}})

		for i := range 3 {
			p.publish("alert.triggered", map[string]any{"alert_id": fmt.Sprintf("a-%d", i)})
		}
		p.waitStatus(f, "dead", 3, 20*time.Second)
		p.waitWebhookStatus(f, "degraded", 10*time.Second)
		hermodtest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			got := opsGot(watch)
			if len(got["hermod.delivery.dead"]) < 3 || len(got["hermod.webhook.degraded"]) < 1 || slack.Count() < 1 {
				return fmt.Errorf("watcher got %d dead, %d degraded; slack %d", len(got["hermod.delivery.dead"]),
					len(got["hermod.webhook.degraded"]), slack.Count())
			}
			return nil
		})
		got := opsGot(watch)
		deg := got["hermod.webhook.degraded"][0]["data"].(map[string]any)
		if deg["webhook_id"] != f || deg["name"] != "flaky-receiver" || deg["reason"] != "dead_streak" ||
			deg["url_redacted"] != strings.TrimSuffix(bad.URL, "/") {
			t.Errorf("degraded data %v", deg)
		}
		seen := map[string]bool{}
		for _, e := range got["hermod.delivery.dead"] {
			d := e["data"].(map[string]any)
			if d["webhook_id"] != f || d["event_type"] != "alert.triggered" || d["reason"] != "terminal" ||
				d["attempts"] != 1.0 || d["last_status_code"] != 404.0 || d["delivery_id"] == "" {
				t.Errorf("delivery.dead data %v", d)
			}
			seen[d["delivery_id"].(string)] = true
		}
		if len(seen) != 3 {
			t.Errorf("delivery.dead about %d distinct deliveries, want 3", len(seen))
		}
		for _, r := range append(watch.Received(), slack.Received()...) {
			if strings.Contains(string(r.Body), "s3cret") || strings.Contains(string(r.Body), "/hook") {
				t.Errorf("an operational event carries the webhook's url: %s", r.Body)
			}
		}
		var sm map[string]any
		if err := json.Unmarshal(slack.Received()[0].Body, &sm); err != nil || !strings.Contains(sm["text"].(string), "webhook "+f+" (flaky-receiver)") {
			t.Errorf("slack message %v (%v)", sm, err)
		}

		// The receiver answers again: recovered, told to the watcher.
		failing.Store(false)
		p.publish("alert.triggered", map[string]any{"alert_id": "ok"})
		p.waitWebhookStatus(f, "active", 20*time.Second)
		hermodtest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			if n := len(opsGot(watch)["hermod.webhook.recovered"]); n != 1 {
				return fmt.Errorf("%d recovered events", n)
			}
			return nil
		})
		// A second burst within the cooldown: its deaths are told, its
		// degradation is not.
		failing.Store(true)
		for i := range 3 {
			p.publish("alert.triggered", map[string]any{"alert_id": fmt.Sprintf("b-%d", i)})
		}
		hermodtest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			if n := len(opsGot(watch)["hermod.delivery.dead"]); n != 6 {
				return fmt.Errorf("%d delivery.dead events, want 6", n)
			}
			return nil
		})
		p.waitWebhookStatus(f, "degraded", 10*time.Second)
		got = opsGot(watch)
		if len(got["hermod.webhook.degraded"]) != 1 || len(got["hermod.webhook.recovered"]) != 1 {
			t.Errorf("degraded %d, recovered %d: want each once within the cooldown", len(got["hermod.webhook.degraded"]), len(got["hermod.webhook.recovered"]))
		}
		// The failing webhook, subscribed to hermod.*, got nothing about itself.
		for _, r := range bad.Received() {
			if typ := r.Header.Get("X-Hermod-Event-Type"); typ != "alert.triggered" {
				t.Errorf("the failing webhook received %s: %s", typ, r.Body)
			}
		}
		metrics := p.metrics()
		if v := metricValue(metrics, `hermod_ops_events_published_total{type="hermod.webhook.degraded"}`); v != 1 {
			t.Errorf("published degraded %v\n%s", v, grepLines(metrics, "hermod_ops_events"))
		}
		if v := metricValue(metrics, `hermod_ops_events_suppressed_total{reason="cooldown",type="hermod.webhook.degraded"}`); v < 1 {
			t.Errorf("coalesced degraded %v\n%s", v, grepLines(metrics, "hermod_ops_events"))
		}

		// The platform cannot publish the family: not through the API...
		code, body := p.do("POST", "/api/v1/events", map[string]any{"event_type": "hermod.webhook.degraded", "id": "forged-1",
			"data": map[string]any{"webhook_id": w}})
		if code != 422 || !strings.Contains(string(body), "reserved_event_type") {
			t.Errorf("API publish of hermod.webhook.degraded: %d %s", code, body)
		}
		// ...nor on NATS: on a platform subject the router drops it, and its
		// own subject is captured by no stream.
		forged := `{"id":"forged-2","event_type":"hermod.webhook.degraded","timestamp":"2026-05-01T12:00:00Z","data":{"webhook_id":"x"}}`
		if _, err := p.JS.PublishMsg(t.Context(), &nats.Msg{Subject: "alert.triggered", Data: []byte(forged)}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.JS.PublishMsg(t.Context(), &nats.Msg{Subject: "hermod.webhook.degraded", Data: []byte(forged)}); !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Errorf("publish on hermod.webhook.degraded: %v, want no stream", err)
		}
		hermodtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			if v := metricValue(p.metrics(), `hermod_events_refused_total{reason="reserved_family"}`); v != 1 {
				return fmt.Errorf("refused reserved_family %v", v)
			}
			return nil
		})
		for _, r := range watch.Received() {
			if strings.Contains(string(r.Body), "forged") {
				t.Errorf("a forged operational event was delivered: %s", r.Body)
			}
		}
	})
}

// Two broken webhooks subscribed to each other's news cannot feed each
// other: A's deaths are told to B; B's deaths (deliveries of operational
// events) are told to nobody; each is told degraded once; then the
// pipeline is idle, with a fixed number of requests made.
func TestE2EOperationalEventsDoNotLoop(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, func(c *allinone.Config) { c.OpsCooldown = time.Hour })
		sa, sb := hermodtest.NewSink(t), hermodtest.NewSink(t)
		for _, s := range []*hermodtest.Sink{sa, sb} {
			s.SetAnswer(func(int, *http.Request) int { return 410 })
		}
		a := p.createWebhook(map[string]any{"name": "a", "url": sa.URL, "event_types": []string{"alert.*", "hermod.*"}, "max_retries": 1})
		b := p.createWebhook(map[string]any{"name": "b", "url": sb.URL, "event_types": []string{"hermod.*"}, "max_retries": 1})
		for i := range 3 {
			p.publish("alert.triggered", map[string]any{"alert_id": fmt.Sprintf("a-%d", i)})
		}
		p.waitWebhookStatus(a, "degraded", 20*time.Second)
		p.waitWebhookStatus(b, "degraded", 20*time.Second)
		p.waitIdle(20 * time.Second)
		ga, gb := opsGot(sa), opsGot(sb)
		// A: its 3 alerts and B's degradation. B: A's 3 deaths and A's degradation.
		if len(ga["alert.triggered"]) != 3 || len(ga["hermod.webhook.degraded"]) != 1 || len(sa.Received()) != 4 {
			t.Errorf("a received %d requests: %v", len(sa.Received()), ga)
		}
		if len(gb["hermod.delivery.dead"]) != 3 || len(gb["hermod.webhook.degraded"]) != 1 || len(sb.Received()) != 4 {
			t.Errorf("b received %d requests: %v", len(sb.Received()), gb)
		}
		if d := ga["hermod.webhook.degraded"]; len(d) == 1 && d[0]["data"].(map[string]any)["webhook_id"] != b {
			t.Errorf("a was told of %v", d[0]["data"])
		}
		m := p.metrics()
		if v := metricValue(m, `hermod_ops_events_suppressed_total{reason="ops_delivery",type="hermod.delivery.dead"}`); v != 5 {
			t.Errorf("deaths of operational events' deliveries not told: %v, want 5 (4 to b, 1 to a)\n%s", v, grepLines(m, "hermod_ops_events"))
		}
	})
}

// The API's agent watcher tells an agent going quiet and coming back. The
// heartbeats are written as the control plane writes them (the agent's
// own heartbeat runs every 10 s; INACTIVE takes 30 s without one).
func TestE2EOperationalAgentEvents(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		watch := hermodtest.NewSink(t)
		p.createWebhook(map[string]any{"name": "agents", "url": watch.URL, "event_types": []string{"hermod.agent.inactive", "hermod.agent.active"}})
		p.registerAgent("eu-quiet", "env:production")
		st := store.New(p.Redis.Client(t), nil)
		ctx := t.Context()
		if err := st.AgentSeen(ctx, "eu-quiet", "1.0", 0, time.Now().Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		hermodtest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			if n := len(opsGot(watch)["hermod.agent.inactive"]); n != 1 {
				return fmt.Errorf("%d agent.inactive events", n)
			}
			return nil
		})
		if err := st.AgentSeen(ctx, "eu-quiet", "1.0", 0, time.Now()); err != nil {
			t.Fatal(err)
		}
		hermodtest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			if n := len(opsGot(watch)["hermod.agent.active"]); n != 1 {
				return fmt.Errorf("%d agent.active events", n)
			}
			return nil
		})
		got := opsGot(watch)
		in := got["hermod.agent.inactive"][0]["data"].(map[string]any)
		back := got["hermod.agent.active"][0]["data"].(map[string]any)
		if in["agent_id"] != "eu-quiet" || fmt.Sprint(in["labels"]) != "[env:production]" || back["agent_id"] != "eu-quiet" || back["inactive_since"] == nil {
			t.Errorf("inactive %v, active %v", in, back)
		}
		if n := len(got["hermod.agent.inactive"]); n != 1 {
			t.Errorf("%d agent.inactive events, want 1", n)
		}
	})
}
