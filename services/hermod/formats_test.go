package allinone_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

const pdKey = "R0123456789abcdef0123456789ABCDE"

// Payload formats end to end: a Slack webhook receives a Slack message
// signed over the body actually sent; a PagerDuty webhook triggers and then
// resolves with one dedup key, and its routing key is never returned; a
// template that cannot render an event makes the delivery dead, saying
// why; the test event is sent in the webhook's format; bad formats and
// options are refused naming the field.
func TestPayloadFormats(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		slack, pd, tmpl := hermodtest.NewSink(t), hermodtest.NewSink(t), hermodtest.NewSink(t)
		slackID := p.createWebhook(map[string]any{"name": "slack", "url": slack.URL, "event_types": []string{"alert.*"},
			"secret": testSecret, "format": "slack"})
		pdID := p.createWebhook(map[string]any{"name": "pd", "url": pd.URL, "event_types": []string{"alert.*"},
			"format": "pagerduty", "format_options": map[string]any{"routing_key": pdKey, "severity": map[string]string{"alert.*": "critical"}}})
		tmplID := p.createWebhook(map[string]any{"name": "tmpl", "url": tmpl.URL, "event_types": []string{"alert.*"},
			"format": "template", "format_options": map[string]any{"template": `{n: (.data.count | tonumber)}`}})
		// A template that would take gigabytes kills only its runner process.
		bombID := p.createWebhook(map[string]any{"name": "bomb", "url": tmpl.URL, "event_types": []string{"alert.triggered"},
			"format": "template", "format_options": map[string]any{"template": `"x" * 2147483646`}})

		p.publish("alert.triggered", map[string]any{"alert_id": "a-1", "name": "HighCPU", "message": "cpu above 90%", "count": "x"})
		p.waitStatus(slackID, "success", 1, 10*time.Second)
		got := slack.Received()[0]
		verifySig(t, testSecret, got)
		var msg map[string]any
		if err := json.Unmarshal(got.Body, &msg); err != nil || !strings.HasPrefix(msg["text"].(string), "An alert fired: alert a-1 (HighCPU)") ||
			msg["blocks"] == nil {
			t.Errorf("slack received %s (%v)", got.Body, err)
		}

		bomb := p.waitStatus(bombID, "dead", 1, 10*time.Second)
		if bomb[0]["dead_reason"] != "unrenderable" || !strings.Contains(bomb[0]["last_error"].(string), "ran out of memory") {
			t.Errorf("memory bomb delivery %v", bomb[0])
		}
		// The template fails on this event (count is not a number): dead, not retried.
		dead := p.waitStatus(tmplID, "dead", 1, 10*time.Second)
		if dead[0]["dead_reason"] != "unrenderable" || !strings.Contains(dead[0]["last_error"].(string), "tonumber") || tmpl.Count() != 0 {
			t.Errorf("template delivery %v, %d requests", dead[0], tmpl.Count())
		}

		p.publish("alert.resolved", map[string]any{"alert_id": "a-1"})
		p.waitStatus(pdID, "success", 2, 10*time.Second)
		var trigger, resolve map[string]any
		for _, r := range pd.Received() {
			var ev map[string]any
			if err := json.Unmarshal(r.Body, &ev); err != nil {
				t.Fatal(err)
			}
			if ev["event_action"] == "trigger" {
				trigger = ev
			} else {
				resolve = ev
			}
		}
		if trigger == nil || resolve == nil || trigger["dedup_key"] != resolve["dedup_key"] || trigger["routing_key"] != pdKey ||
			trigger["payload"].(map[string]any)["severity"] != "critical" {
			t.Errorf("pagerduty received trigger %v, resolve %v", trigger, resolve)
		}
		view := p.must(200, "GET", "/api/v1/webhooks/"+pdID, nil)
		raw, _ := json.Marshal(view)
		if view["format"] != "pagerduty" || view["has_routing_key"] != true || strings.Contains(string(raw), pdKey) {
			t.Errorf("webhook view %s", raw)
		}
		// An edit without the routing key keeps it.
		p.must(200, "PATCH", "/api/v1/webhooks/"+pdID, map[string]any{"format_options": map[string]any{"source": "prod"}})
		if v := p.must(200, "GET", "/api/v1/webhooks/"+pdID, nil); v["has_routing_key"] != true {
			t.Errorf("the routing key was lost by an edit: %v", v)
		}
		if strings.Contains(p.Logs.String(), pdKey) {
			t.Error("the routing key was logged")
		}

		// The test event goes out in the webhook's format.
		res := p.must(200, "POST", "/api/v1/webhooks/"+slackID+"/test", nil)
		last := slack.Received()[len(slack.Received())-1]
		if res["success"] != true || !strings.Contains(string(last.Body), `"blocks"`) {
			t.Errorf("test: %v, received %s", res, last.Body)
		}
		verifySig(t, testSecret, last)

		// Preview: rendered as a delivery would be, sent nowhere, no secret shown.
		before := pd.Count()
		pv := p.must(200, "POST", "/api/v1/webhooks/"+pdID+"/preview", map[string]any{"event_type": "alert.triggered"})
		pvBody, _ := json.Marshal(pv["body"])
		if pv["format"] != "pagerduty" || !strings.Contains(string(pvBody), `"routing_key":"\u003crouting_key\u003e"`) &&
			!strings.Contains(string(pvBody), `"routing_key":"<routing_key>"`) || strings.Contains(string(pvBody), pdKey) ||
			!strings.Contains(string(pvBody), "alert alert-123") || pd.Count() != before {
			t.Errorf("preview %v", pv)
		}
		un := p.must(200, "POST", "/api/v1/webhooks/preview", map[string]any{
			"webhook": map[string]any{"format": "template", "format_options": map[string]any{"template": "{x: .event_type, d: .data.deployment_id}"}},
			"event":   map[string]any{"event_type": "deployment.failed", "data": map[string]any{"deployment_id": "d-9"}}})
		if b, _ := json.Marshal(un["body"]); string(b) != `{"d":"d-9","x":"deployment.failed"}` {
			t.Errorf("unsaved preview %v", un)
		}
		for _, c := range []struct {
			path  string
			body  map[string]any
			field string
		}{
			{"/api/v1/webhooks/preview", map[string]any{"webhook": map[string]any{"format": "template", "format_options": map[string]any{"template": "{"}}},
				"webhook.format_options.template"},
			{"/api/v1/webhooks/" + tmplID + "/preview", map[string]any{"event_type": "alert.triggered"}, "format_options.template"},
			{"/api/v1/webhooks/" + slackID + "/preview", map[string]any{"event_type": "no.such"}, "event_type"},
		} {
			code, out := p.do("POST", c.path, c.body)
			if _, d := errorEnvelope(t, out); code != 422 || d["field"] != c.field {
				t.Errorf("preview %s %v: %d %s, want 422 on %s", c.path, c.body, code, out, c.field)
			}
		}

		for _, c := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"format": "email"}, "format"},
			{map[string]any{"format": "pagerduty"}, "format_options.routing_key"},
			{map[string]any{"format": "slack", "format_options": map[string]any{"tags": []string{"a"}}}, "format_options.tags"},
			{map[string]any{"format": "template", "format_options": map[string]any{"template": "{a: "}}, "format_options.template"},
			{map[string]any{"format": "slack", "format_options": map[string]any{"colour": "red"}}, "format_options"},
			{map[string]any{"format": "datadog", "format_options": map[string]any{"site": "datadoghq.eu"}}, "format_options.site"},
		} {
			body := map[string]any{"name": "bad", "url": slack.URL, "event_types": []string{"alert.*"}}
			for k, v := range c.body {
				body[k] = v
			}
			code, out := p.do("POST", "/api/v1/webhooks", body)
			if _, d := errorEnvelope(t, out); code != 422 || d["field"] != c.field {
				t.Errorf("%v: %d %s, want 422 on %s", c.body, code, out, c.field)
			}
		}
	})
}
