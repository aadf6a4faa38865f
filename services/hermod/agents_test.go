package allinone_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
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
		keys, _ := rdb.Keys(context.Background(), "hermod:agent:*").Result()
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
		hermodtest.Eventually(t, 5*time.Second, "delivery on the label set subject", func() bool {
			return p.streamMsgs(streams.DeliveriesStream, streams.AgentSubject(labels, id)) == 1
		})
		ds := p.waitStatus(id, "pending", 1, 5*time.Second)
		if tl := ds[0]["target_labels"].([]any); len(tl) != 2 {
			t.Errorf("delivery target labels %v", tl)
		}
		time.Sleep(300 * time.Millisecond)
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
