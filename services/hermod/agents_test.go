package allinone_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
)

// Agent grants: registration with credentials shown once, validation,
// grant changes and revocation; a webhook with target labels gets its label
// set's consumer from the control plane and its deliveries wait there, never
// taken by the broker deliverers.
func TestAgentGrantsAndLabelSets(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		created := p.must(201, "POST", "/api/v1/agents", map[string]any{"id": "eu-prod-1", "labels": []string{"region:eu", "env:production", "env:production"}})
		creds, _ := created["credentials"].(map[string]any)
		token, _ := creds["token"].(string)
		if !strings.HasPrefix(token, "hagt_") || creds["agent_id"] != "eu-prod-1" || created["status"] != "INACTIVE" {
			t.Fatalf("created %v", created)
		}
		if got := created["labels"].([]any); len(got) != 2 || got[0] != "env:production" || got[1] != "region:eu" {
			t.Errorf("labels not canonical: %v", got)
		}
		for _, c := range []struct {
			body   any
			status int
			field  string
		}{
			{map[string]any{"id": "eu-prod-1", "labels": []string{"env:production"}}, 409, "id"},
			{map[string]any{"id": "bad id", "labels": []string{"env:production"}}, 422, "id"},
			{map[string]any{"id": "a.b", "labels": []string{"env:production"}}, 422, "id"},
			{map[string]any{"id": "x", "labels": []string{"no-colon"}}, 422, "labels"},
			{map[string]any{"id": "x", "labels": []string{}}, 422, "labels"},
			{map[string]any{"id": "x"}, 422, "labels"},
			{map[string]any{"labels": []string{"env:production"}}, 422, "id"},
			{map[string]any{"id": "x", "labels": []string{"a:b"}, "token": "mine"}, 422, "token"},
		} {
			code, body := p.do("POST", "/api/v1/agents", c.body)
			if code != c.status {
				t.Errorf("%v: %d %s", c.body, code, body)
				continue
			}
			if _, d := errorEnvelope(t, body); d["field"] != c.field {
				t.Errorf("%v: field %v", c.body, d["field"])
			}
		}
		got := p.must(200, "GET", "/api/v1/agents/eu-prod-1", nil)
		if _, has := got["credentials"]; has {
			t.Errorf("credentials returned again: %v", got)
		}
		list := p.must(200, "GET", "/api/v1/agents", nil)
		if len(list["data"].([]any)) != 1 {
			t.Errorf("list %v", list)
		}
		upd := p.must(200, "PUT", "/api/v1/agents/eu-prod-1", map[string]any{"labels": []string{"env:production"}})
		if l := upd["labels"].([]any); len(l) != 1 || l[0] != "env:production" {
			t.Errorf("updated %v", upd)
		}
		p.must(422, "PUT", "/api/v1/agents/eu-prod-1", map[string]any{"labels": []string{"bad"}})
		// The token is stored only as a hash.
		rdb := p.Redis.Client(t)
		keys, _ := rdb.Keys(context.Background(), store.AgentKey("*")).Result()
		for _, k := range keys {
			if strings.Contains(rdb.Get(context.Background(), k).Val(), token) {
				t.Errorf("%s holds the plaintext token", k)
			}
		}

		// A webhook delivered by agents: its label set's consumer exists,
		// and its delivery waits on the label set's subject.
		broker := hermodtest.NewSink(t)
		labels := []string{"env:production", "region:eu"}
		id := p.createWebhook(map[string]any{"name": "in-cluster", "url": broker.URL, "event_types": []string{"alert.*"},
			"target_labels": []string{"region:eu", "env:production"}})
		if _, err := p.JS.Consumer(context.Background(), streams.DeliveriesStream, streams.AgentConsumerName(labels)); err != nil {
			t.Fatalf("label set consumer: %v", err)
		}
		p.publish("alert.triggered", map[string]any{})
		hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
			if n := p.streamMsgs(streams.DeliveriesStream, streams.AgentSubject(labels, id)); n != 1 {
				return fmt.Errorf("%d of 1 delivery on the label set subject", n)
			}
			return nil
		})
		ds := p.waitStatus(id, "pending", 1, 5*time.Second)
		if tl := ds[0]["target_labels"].([]any); len(tl) != 2 {
			t.Errorf("delivery target labels %v", tl)
		}
		// The broker side has nothing in hand (a copy on its subjects would
		// have been sent), and the label set's consumer never handed the
		// delivery to anyone.
		p.waitIdle(5 * time.Second)
		if c := p.consumer(streams.AgentConsumerName(labels)); c.Delivered.Consumer != 0 || c.NumPending != 1 {
			t.Errorf("label set consumer: delivered %d, pending %d; want 0 and 1", c.Delivered.Consumer, c.NumPending)
		}
		if broker.Count() != 0 {
			t.Errorf("a broker deliverer delivered an agent webhook")
		}
		if r := p.must(409, "POST", "/api/v1/webhooks/"+id+"/test", nil); r["code"] != "no_agent" {
			t.Errorf("test endpoint: %v", r)
		}
		p.must(204, "DELETE", "/api/v1/agents/eu-prod-1", nil)
		p.must(404, "GET", "/api/v1/agents/eu-prod-1", nil)
		p.must(404, "DELETE", "/api/v1/agents/eu-prod-1", nil)
		if code, _ := p.do("GET", "/api/v1/agents/not%20valid", nil); code != http.StatusNotFound {
			t.Errorf("bad agent id: %d", code)
		}
	})
}

// Agents as separate processes: an agent registered through the API takes
// exactly the label sets its grant covers and delivers them (delivered_by
// agent:<id>, signed like broker deliveries); the broker deliverer takes the
// rest; a revoked agent stops.
func TestE2EAgentDeliversItsLabelSets(t *testing.T) {
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	env := map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(), "HERMOD_ENCRYPTION_KEY": testEncKey,
		"HERMOD_ACQUIRE_TTL": "5s", "HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8"}
	p, _, _ := startFleet(t, env, nil, 1)

	token := p.registerAgent("eu-1", "env:production", "region:eu")
	sinks := map[string]*hermodtest.Sink{}
	ids := map[string]string{}
	for name, labels := range map[string][]string{"broker": nil, "prod": {"env:production"}, "prod-eu": {"env:production", "region:eu"},
		"staging": {"env:staging"}, "prod-mon": {"env:production", "role:monitoring"}} {
		s := hermodtest.NewSink(t)
		sinks[name] = s
		body := map[string]any{"name": name, "url": s.URL, "event_types": []string{"alert.*"}, "secret": testSecret,
			"headers": map[string]any{"X-Fleet-Key": "key-" + name}}
		if labels != nil {
			body["target_labels"] = labels
		}
		ids[name] = p.createWebhook(body)
	}
	_, agentOps := startReady(t, "hermod-agent", map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_AGENT_ID": "eu-1",
		"HERMOD_AGENT_TOKEN": token})
	p.publish("alert.triggered", map[string]any{"severity": "critical"})
	for _, name := range []string{"broker", "prod", "prod-eu"} {
		s, name := sinks[name], name
		hermodtest.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
			if err := sinkGotExactly(s, 1); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
		verifySig(t, testSecret, s.Received()[0])
		// The custom headers reach an agent in its grant and go out with its deliveries.
		if v := s.Received()[0].Header.Values("X-Fleet-Key"); len(v) != 1 || v[0] != "key-"+name {
			t.Errorf("%s: X-Fleet-Key %q", name, v)
		}
	}
	for name, by := range map[string]string{"broker": "broker", "prod": "agent:eu-1", "prod-eu": "agent:eu-1"} {
		ds := p.waitStatus(ids[name], "success", 1, 10*time.Second)
		if ds[0]["delivered_by"] != by {
			t.Errorf("%s delivered by %v, want %s", name, ds[0]["delivered_by"], by)
		}
	}
	// The label sets the grant does not cover: their consumers have never
	// handed out a delivery and nobody is pulling from them (the agent pulls
	// from each label set it takes all the time).
	for name, labels := range map[string][]string{"staging": {"env:staging"}, "prod-mon": {"env:production", "role:monitoring"}} {
		cons := streams.AgentConsumerName(labels)
		hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
			c := p.consumer(cons)
			if c.Delivered.Consumer != 0 || c.NumPending != 1 || c.NumAckPending != 0 || c.NumWaiting != 0 {
				return fmt.Errorf("%s's consumer: delivered %d, pending %d, ack pending %d, pull requests %d; want 0, 1, 0, 0",
					name, c.Delivered.Consumer, c.NumPending, c.NumAckPending, c.NumWaiting)
			}
			return nil
		})
	}
	for _, name := range []string{"staging", "prod-mon"} {
		if sinks[name].Count() != 0 {
			t.Errorf("%s (not covered by the grant) was delivered", name)
		}
		if ds := p.deliveries(ids[name], "pending"); len(ds) != 1 {
			t.Errorf("%s: %d pending, want 1 waiting for a matching agent", name, len(ds))
		}
	}
	a := p.must(200, "GET", "/api/v1/agents/eu-1", nil)
	if a["status"] != "ACTIVE" || a["version"] == nil || a["last_seen_at"] == nil {
		t.Errorf("agent view %v", a)
	}
	// The test endpoint of an agent-delivered webhook is carried out by a matching ACTIVE agent.
	res := p.must(200, "POST", "/api/v1/webhooks/"+ids["prod-eu"]+"/test", nil)
	if res["success"] != true || res["by"] != "agent:eu-1" || res["status_code"].(float64) != 200 {
		t.Errorf("agent test result %v", res)
	}
	if got := sinks["prod-eu"].Received(); len(got) != 2 || got[1].Header.Get("X-Hermod-Event-Type") != "webhook.test" {
		t.Errorf("test event not received through the agent: %d requests", len(got))
	} else {
		verifySig(t, testSecret, got[1])
	}
	if r := p.must(409, "POST", "/api/v1/webhooks/"+ids["staging"]+"/test", nil); r["code"] != "no_agent" {
		t.Errorf("test without a matching agent: %v", r)
	}
	// Revoked: the control plane refuses it at its next heartbeat; it goes unready and takes nothing more.
	p.must(204, "DELETE", "/api/v1/agents/eu-1", nil)
	hermodtest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if code, body := httpGet("http://" + agentOps + "/readyz"); code != 503 {
			return fmt.Errorf("the revoked agent's /readyz answers %d %s, want 503", code, tail(body, 300))
		}
		return nil
	})
	before := map[string]int{"prod": sinks["prod"].Count(), "prod-eu": sinks["prod-eu"].Count()}
	p.publish("alert.resolved", map[string]any{})
	hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if err := sinkGotExactly(sinks["broker"], 2); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		return nil
	})
	// The second event's deliveries for the agent's label sets were routed
	// with the broker's. They must stay where they are, with nobody pulling
	// from those label sets any more: the revoked agent stopped taking them.
	for name, labels := range map[string][]string{"prod": {"env:production"}, "prod-eu": {"env:production", "region:eu"}} {
		cons, subject := streams.AgentConsumerName(labels), streams.AgentSubject(labels, ids[name])
		hermodtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			if n := p.streamMsgs(streams.DeliveriesStream, subject); n != 1 {
				return fmt.Errorf("%s: %d deliveries waiting on %s, want the second event's; its sink got %d requests",
					name, n, subject, sinks[name].Count())
			}
			if c := p.consumer(cons); c.NumWaiting != 0 {
				return fmt.Errorf("%s: %d pull requests on %s after the agent was revoked", name, c.NumWaiting, cons)
			}
			return nil
		})
		if n := sinks[name].Count(); n != before[name] {
			t.Errorf("revoked agent delivered %s again (%d requests, %d before the event)", name, n, before[name])
		}
	}
}

// A delivery that no agent may take waits and goes out when a matching agent
// is registered later; a grant changed with PUT applies without a restart;
// when the agent holding a delivery is killed, another matching agent
// delivers it after the acquire TTL with the same webhook-id.
func TestE2EAgentsLateGrantAndTakeover(t *testing.T) {
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	p, _, _ := startFleet(t, map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(),
		"HERMOD_ENCRYPTION_KEY": testEncKey, "HERMOD_ACQUIRE_TTL": "2s"}, nil, 0)

	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	slow := hermodtest.NewSink(t)
	slow.SetAnswer(func(n int, _ *http.Request) int {
		if n == 1 {
			select {
			case <-release:
			case <-time.After(60 * time.Second):
			}
		}
		return 200
	})
	staging := hermodtest.NewSink(t)
	slowID := p.createWebhook(map[string]any{"name": "slow", "url": slow.URL, "event_types": []string{"instance.crash"},
		"target_labels": []string{"env:production"}, "secret": testSecret})
	stagingID := p.createWebhook(map[string]any{"name": "staging", "url": staging.URL, "event_types": []string{"instance.started"},
		"target_labels": []string{"env:staging"}})
	p.publish("instance.started", map[string]any{})
	p.waitStatus(stagingID, "pending", 1, 10*time.Second)

	type agentProc struct {
		p   *proc
		ops string
	}
	start := func(id string, labels []string) agentProc {
		reg := p.must(201, "POST", "/api/v1/agents", map[string]any{"id": id, "labels": labels})
		a, ops := startReady(t, "hermod-agent", map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_AGENT_ID": id,
			"HERMOD_AGENT_TOKEN": reg["credentials"].(map[string]any)["token"].(string)})
		return agentProc{a, ops}
	}
	// Registered later: the waiting staging delivery goes out.
	a1 := start("a1", []string{"env:staging"})
	ds := p.waitStatus(stagingID, "success", 1, 15*time.Second)
	if ds[0]["delivered_by"] != "agent:a1" || staging.Count() != 1 {
		t.Errorf("late agent: %v, sink %d", ds[0], staging.Count())
	}
	// PUT extends a1's grant to production; it follows at its next heartbeat, without a restart.
	p.must(200, "PUT", "/api/v1/agents/a1", map[string]any{"labels": []string{"env:staging", "env:production"}})
	prodConsumer := streams.AgentConsumerName([]string{"env:production"})
	hermodtest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if log := readFile(t, a1.p.log); !strings.Contains(log, prodConsumer) {
			return fmt.Errorf("a1 has not taken the production label set %s:\n%s", prodConsumer, tail(log, 1000))
		}
		return nil
	})
	a2 := start("a2", []string{"env:production"})
	p.publish("instance.crash", map[string]any{})
	hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(slow, 1) })
	first := slow.Received()[0]
	var victim agentProc
	survivorID := ""
	hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		var seen []string
		for i, a := range []agentProc{a1, a2} {
			_, body := httpGet("http://" + a.ops + "/metrics")
			m := inFlightRe.FindStringSubmatch(body)
			if m != nil && m[1] == "1" {
				victim = a
				survivorID = []string{"agent:a2", "agent:a1"}[i]
				return nil
			}
			seen = append(seen, fmt.Sprintf("a%d: in flight %v", i+1, m))
		}
		return fmt.Errorf("no agent has the slow request in flight: %s", strings.Join(seen, "; "))
	})
	if err := victim.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.p.done
	hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error { return sinkGot(slow, 2) })
	got := slow.Received()
	if got[1].Header.Get("webhook-id") != first.Header.Get("webhook-id") {
		t.Errorf("takeover changed webhook-id")
	}
	verifySig(t, testSecret, got[1])
	done := p.waitStatus(slowID, "success", 1, 10*time.Second)
	if done[0]["delivered_by"] != survivorID {
		t.Errorf("delivered by %v, want %s", done[0]["delivered_by"], survivorID)
	}
	once.Do(func() { close(release) })
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
