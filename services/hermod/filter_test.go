package allinone_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

// Filter expressions end to end: a create and an update with an
// expression that does not compile are refused with 422 naming filter and
// its position; of two webhooks on the same events, the one with an
// expression receives exactly the events it selects (an event lacking the
// field is no match, and counted); null clears the expression.
func TestFilterExpressions(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		all, some := hermodtest.NewSink(t), hermodtest.NewSink(t)
		body := func(url string, filter any) map[string]any {
			return map[string]any{"name": "f", "url": url, "event_types": []string{"alert.*"}, "filter": filter}
		}

		code, raw := p.do("POST", "/api/v1/webhooks", body(some.URL, `data.severity in ["critical","high"] &&`+"\n"+`  labels.env = "prod"`))
		if code != 422 {
			t.Fatalf("create with a broken filter: %d %s", code, raw)
		}
		refusal := func(raw []byte, line, column float64) {
			t.Helper()
			ecode, d := errorEnvelope(t, raw)
			var e struct{ Message string }
			_ = json.Unmarshal(raw, &e)
			if ecode != "invalid_field" || d["field"] != "filter" || d["line"] != line || d["column"] != column ||
				!strings.Contains(e.Message, fmt.Sprintf("%v:%v:", line, column)) {
				t.Errorf("refusal %s: want field filter at %v:%v", raw, line, column)
			}
		}
		refusal(raw, 2, 14)

		expr := `data.severity in ["critical","high"] && labels.env == "prod"`
		idAll := p.createWebhook(body(all.URL, nil))
		idSome := p.createWebhook(body(some.URL, expr))
		if w := p.must(200, "GET", "/api/v1/webhooks/"+idSome, nil); w["filter"] != expr {
			t.Errorf("view filter %v, want %q", w["filter"], expr)
		}
		if w := p.must(200, "GET", "/api/v1/webhooks/"+idAll, nil); w["filter"] != nil {
			t.Errorf("view of a webhook without filter: filter %v, want null", w["filter"])
		}
		code, raw = p.do("PATCH", "/api/v1/webhooks/"+idSome, map[string]any{"filter": "data.severity =="})
		if code != 422 {
			t.Fatalf("update with a broken filter: %d %s", code, raw)
		}
		refusal(raw, 1, 17)
		if w := p.must(200, "GET", "/api/v1/webhooks/"+idSome, nil); w["filter"] != expr {
			t.Errorf("a refused update changed the filter to %v", w["filter"])
		}

		publish := func(data map[string]any, labels map[string]string) string {
			ev := map[string]any{"event_type": "alert.triggered", "data": data}
			if labels != nil {
				ev["labels"] = labels
			}
			return p.must(202, "POST", "/api/v1/events", ev)["id"].(string)
		}
		prod := map[string]string{"env": "prod"}
		want := []string{
			publish(map[string]any{"severity": "critical"}, prod),
			publish(map[string]any{"severity": "high", "n": 2}, prod),
		}
		publish(map[string]any{"severity": "low"}, prod)
		publish(map[string]any{"severity": "critical"}, map[string]string{"env": "staging"})
		publish(map[string]any{"severity": "critical"}, nil) // no labels: labels.env is missing
		publish(map[string]any{"message": "no severity"}, prod)

		hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			if err := sinkGot(all, 6); err != nil {
				return err
			}
			return sinkGot(some, 2)
		})
		p.waitIdle(20 * time.Second)
		if err := sinkGotExactly(all, 6); err != nil {
			t.Error(err)
		}
		got := eventIDs(t, some)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("the filtered webhook received %v, want exactly %v", got, want)
		}
		if n := metricValue(p.metrics(), `hermod_filter_errors_total{reason="missing_field"}`); n != 2 {
			t.Errorf(`hermod_filter_errors_total{reason="missing_field"} = %v, want 2 (no labels, no severity)`, n)
		}

		// "" and null clear the expression.
		if w := p.must(200, "PATCH", "/api/v1/webhooks/"+idSome, map[string]any{"filter": ""}); w["filter"] != nil {
			t.Errorf("filter \"\" left %v", w["filter"])
		}
		p.must(200, "PATCH", "/api/v1/webhooks/"+idSome, map[string]any{"filter": "true"})
		if w := p.must(200, "PATCH", "/api/v1/webhooks/"+idSome, map[string]any{"filter": nil}); w["filter"] != nil {
			t.Errorf("filter null left %v", w["filter"])
		}
		publish(map[string]any{"severity": "low"}, nil)
		hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error { return sinkGot(some, 3) })
	})
}

// eventIDs are the envelope ids of what a sink received, sorted.
func eventIDs(t *testing.T, s *hermodtest.Sink) []string {
	t.Helper()
	var out []string
	for _, r := range s.Received() {
		var env struct{ ID string }
		if err := json.Unmarshal(r.Body, &env); err != nil {
			t.Fatalf("delivery body: %v", err)
		}
		out = append(out, env.ID)
	}
	slices.Sort(out)
	return out
}

// The separate binaries (api, router reading webhooks without the
// encryption key, deliverer) and an agent: a broker webhook and an agent
// webhook, each with an expression, receive exactly the events their
// expressions select; the agent delivers what the router matched.
func TestE2EFilterExpressionSeparateBinariesAndAgent(t *testing.T) {
	t.Parallel()
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	env := map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(), "HERMOD_ENCRYPTION_KEY": testEncKey,
		"HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8"}
	p, _, _ := startFleet(t, env, nil, 1)
	token := p.registerAgent("eu-1", "env:production")
	broker, agent := hermodtest.NewSink(t), hermodtest.NewSink(t)
	p.createWebhook(map[string]any{"name": "critical", "url": broker.URL, "event_types": []string{"alert.*"},
		"filter": `data.severity == "critical"`})
	p.createWebhook(map[string]any{"name": "the rest", "url": agent.URL, "event_types": []string{"alert.*"},
		"target_labels": []string{"env:production"}, "filter": `has(data.severity) && data.severity != "critical"`})
	startReady(t, "hermod-agent", map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_AGENT_ID": "eu-1", "HERMOD_AGENT_TOKEN": token})

	critical := p.publish("alert.triggered", map[string]any{"severity": "critical"})
	low := p.publish("alert.triggered", map[string]any{"severity": "low"})
	p.publish("alert.triggered", map[string]any{"message": "no severity"})
	p.waitIdle(20 * time.Second) // routed, and the broker's delivery made
	hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if n := p.streamMsgs(streams.DeliveriesStream, streams.AgentPrefix+">"); n != 0 {
			return fmt.Errorf("%d deliveries still wait for the agent", n)
		}
		return sinkGot(agent, 1)
	})
	if got := eventIDs(t, broker); !slices.Equal(got, []string{critical}) {
		t.Errorf("the broker webhook received %v, want exactly [%s]", got, critical)
	}
	if got := eventIDs(t, agent); !slices.Equal(got, []string{low}) {
		t.Errorf("the agent webhook received %v, want exactly [%s]", got, low)
	}
}
