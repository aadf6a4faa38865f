package formats

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hermodhq/hermod/shared/catalog"
)

// The receivers' own rules, written from their published definitions (the
// bodies are checked against them; nothing of those documents is copied):
//
//   - PagerDuty Events API v2: the OpenAPI document PagerDuty publishes
//     (github.com/PagerDuty/api-schema, reference/events-v2/openapiv3.json):
//     routing_key and event_action (trigger, acknowledge, resolve) required;
//     dedup_key required unless trigger; a trigger's payload needs summary,
//     source and severity (critical, warning, error, info); timestamp is a
//     date-time; each link needs href. PagerDuty documents summary up to
//     1,024 characters and dedup_key up to 255.
//   - Datadog Events API v1: the EventCreateRequest model of Datadog's Go
//     client (github.com/DataDog/datadog-api-client-go): title and text
//     required, text up to 4,000 characters (markdown between "%%% \n" and
//     "\n %%%"), aggregation_key up to 100, alert_type one of error,
//     warning, info, success, user_update, recommendation, snapshot,
//     date_happened an integer no older than 18 hours.
//   - Alertmanager API v2 PostableAlert: labels required (name to string,
//     label names [a-zA-Z_][a-zA-Z0-9_]*), annotations name to string,
//     startsAt/endsAt date-times, generatorURL a URI.
//   - Slack Block Kit (its documented limits): text or blocks; at most 50
//     blocks; a section's text up to 3,000 characters, at most 10 fields of
//     up to 2,000; a button's text up to 75 and its url up to 3,000; a
//     context at most 10 elements.
//   - Teams: a message with an attachment of content type
//     application/vnd.microsoft.card.adaptive whose content is an Adaptive
//     Card (type AdaptiveCard, a version); TextBlock needs text, FactSet
//     facts of title and value strings, Action.OpenUrl a url.

type check func(v map[string]any) error

func need(cond bool, format string, a ...any) error {
	if cond {
		return nil
	}
	return fmt.Errorf(format, a...)
}

func str(v any) string { s, _ := v.(string); return s }

func chars(s string) int { return utf8.RuneCountInString(s) }

func dateTime(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

func pagerDutyRules(v map[string]any) error {
	action := str(v["event_action"])
	if err := need(str(v["routing_key"]) != "" && slices.Contains([]string{"trigger", "acknowledge", "resolve"}, action),
		"routing_key and event_action: %v", v); err != nil {
		return err
	}
	if err := need(chars(str(v["dedup_key"])) <= 255 && (action == "trigger" || str(v["dedup_key"]) != ""), "dedup_key %q", v["dedup_key"]); err != nil {
		return err
	}
	for _, l := range asList(v["links"]) {
		if err := need(str(l.(map[string]any)["href"]) != "", "link without href"); err != nil {
			return err
		}
	}
	if action != "trigger" {
		return nil
	}
	p, _ := v["payload"].(map[string]any)
	if err := need(p != nil && str(p["summary"]) != "" && chars(str(p["summary"])) <= 1024 && str(p["source"]) != "" &&
		slices.Contains([]string{"critical", "warning", "error", "info"}, str(p["severity"])), "payload %v", p); err != nil {
		return err
	}
	if ts, ok := p["timestamp"]; ok {
		return need(dateTime(str(ts)), "timestamp %v", ts)
	}
	return nil
}

func datadogRules(now time.Time) check {
	return func(v map[string]any) error {
		title, text := str(v["title"]), str(v["text"])
		if err := need(title != "" && text != "" && chars(text) <= 4000 && chars(str(v["aggregation_key"])) <= 100,
			"title/text/aggregation_key: %q %d %q", title, chars(text), v["aggregation_key"]); err != nil {
			return err
		}
		if err := need(strings.HasPrefix(text, "%%% \n") && strings.HasSuffix(text, "\n %%%"), "markdown block %q", text); err != nil {
			return err
		}
		if err := need(slices.Contains([]string{"error", "warning", "info", "success", "user_update", "recommendation", "snapshot"},
			str(v["alert_type"])), "alert_type %v", v["alert_type"]); err != nil {
			return err
		}
		n, ok := v["date_happened"].(json.Number)
		sec, err := n.Int64()
		return need(ok && err == nil && now.Sub(time.Unix(sec, 0)) < 18*time.Hour, "date_happened %v", v["date_happened"])
	}
}

func alertmanagerRules(v map[string]any) error {
	alerts := asList(v["list"])
	if err := need(len(alerts) == 1, "%d alerts", len(alerts)); err != nil {
		return err
	}
	a := alerts[0].(map[string]any)
	labels, _ := a["labels"].(map[string]any)
	if err := need(len(labels) > 0, "no labels"); err != nil {
		return err
	}
	for k, val := range labels {
		if err := need(labelNameRe.MatchString(k) && str(val) != "", "label %q=%v", k, val); err != nil {
			return err
		}
	}
	for k, val := range a["annotations"].(map[string]any) {
		if err := need(str(val) != "" || val == "", "annotation %q=%v", k, val); err != nil {
			return err
		}
	}
	for _, k := range []string{"startsAt", "endsAt"} {
		if t, ok := a[k]; ok {
			if err := need(dateTime(str(t)), "%s %v", k, t); err != nil {
				return err
			}
		}
	}
	if u, ok := a["generatorURL"]; ok {
		if _, err := url.ParseRequestURI(str(u)); err != nil {
			return err
		}
	}
	return nil
}

func slackRules(v map[string]any) error {
	blocks := asList(v["blocks"])
	if err := need(str(v["text"]) != "" || len(blocks) > 0, "neither text nor blocks"); err != nil {
		return err
	}
	if err := need(len(blocks) <= 50 && chars(str(v["text"])) <= 3000, "%d blocks, text %d", len(blocks), chars(str(v["text"]))); err != nil {
		return err
	}
	for _, b := range blocks {
		blk := b.(map[string]any)
		switch blk["type"] {
		case "section":
			if t, ok := blk["text"].(map[string]any); ok {
				if err := need(chars(str(t["text"])) <= 3000, "section text %d", chars(str(t["text"]))); err != nil {
					return err
				}
			}
			fields := asList(blk["fields"])
			if err := need(len(fields) <= 10, "%d fields", len(fields)); err != nil {
				return err
			}
			for _, f := range fields {
				if err := need(chars(str(f.(map[string]any)["text"])) <= 2000, "field text"); err != nil {
					return err
				}
			}
		case "context":
			if err := need(len(asList(blk["elements"])) <= 10, "context elements"); err != nil {
				return err
			}
		case "actions":
			for _, e := range asList(blk["elements"]) {
				btn := e.(map[string]any)
				if err := need(chars(str(btn["text"].(map[string]any)["text"])) <= 75 && chars(str(btn["url"])) <= 3000,
					"button text %d, url %d characters", chars(str(btn["text"].(map[string]any)["text"])), chars(str(btn["url"]))); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("unexpected block type %v", blk["type"])
		}
	}
	return nil
}

func teamsRules(v map[string]any) error {
	atts := asList(v["attachments"])
	if err := need(v["type"] == "message" && len(atts) == 1, "message %v", v); err != nil {
		return err
	}
	att := atts[0].(map[string]any)
	card, _ := att["content"].(map[string]any)
	if err := need(att["contentType"] == "application/vnd.microsoft.card.adaptive" && card != nil && card["type"] == "AdaptiveCard" &&
		str(card["version"]) != "", "attachment %v", att); err != nil {
		return err
	}
	for _, b := range asList(card["body"]) {
		el := b.(map[string]any)
		switch el["type"] {
		case "TextBlock":
			if err := need(str(el["text"]) != "", "TextBlock without text"); err != nil {
				return err
			}
		case "FactSet":
			for _, f := range asList(el["facts"]) {
				fact := f.(map[string]any)
				if _, ok := fact["value"].(string); !ok || str(fact["title"]) == "" {
					return fmt.Errorf("fact %v", fact)
				}
			}
		default:
			return fmt.Errorf("unexpected element %v", el["type"])
		}
	}
	for _, a := range asList(card["actions"]) {
		act := a.(map[string]any)
		if err := need(act["type"] == "Action.OpenUrl" && str(act["url"]) != "", "action %v", act); err != nil {
			return err
		}
	}
	return nil
}

func asList(v any) []any { l, _ := v.([]any); return l }

// decode reads a rendered body keeping numbers exact.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{"list": v}
}

// Every catalogue event type, with plain, long, linked and old events,
// renders a body each receiver's rules accept.
func TestBodiesFollowTheReceiversRules(t *testing.T) {
	long := strings.Repeat("déjà vu, ", 2000)
	formats := []struct {
		name  Name
		opts  *Options
		rules check
	}{
		{Slack, nil, slackRules},
		{PagerDuty, &Options{RoutingKey: routingKey}, pagerDutyRules},
		{Datadog, &Options{Tags: []string{"team:sre"}}, datadogRules(now)},
		{Alertmanager, &Options{Labels: map[string]string{"team": "sre"}}, alertmanagerRules},
		{Teams, nil, teamsRules},
	}
	for _, et := range catalog.Default {
		id := testEvent(et.Type).idField()
		variants := map[string]map[string]any{
			"plain":  {id: "x-1", "name": "n"},
			"long":   {id: long, "name": long, "message": long, "status": long, "other": long, "a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": 9, "j": 10, "k": 11},
			"linked": {id: "x-1", "url": "https://example.com/" + strings.Repeat("p", 4000), "nested": map[string]any{"x": []any{1, "two"}}},
			"empty":  {},
		}
		for vname, data := range variants {
			body := envelope(t, et.Type, data)
			for _, f := range formats {
				r := mustCompile(t, f.name, f.opts)
				out, err := r.Render(t.Context(), body, now)
				ev, _ := parseEvent(body)
				if vname == "empty" && ev.resolves() && (f.name == PagerDuty || f.name == Alertmanager) {
					// A resolve without its id field would match nothing: refused.
					if err == nil || !strings.Contains(err.Error(), "cannot resolve") {
						t.Errorf("%s %s without its id: %v, want a refusal", f.name, et.Type, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s %s %s: %v", f.name, et.Type, vname, err)
				}
				if err := f.rules(decode(t, out)); err != nil {
					t.Errorf("%s %s (%s): %v", f.name, et.Type, vname, err)
				}
			}
		}
	}
	// An event older than Datadog's 18 hours is dated now.
	old, _ := json.Marshal(map[string]any{"id": "ev-old", "event_type": "deployment.failed", "timestamp": now.Add(-48 * time.Hour).Format(time.RFC3339),
		"data": map[string]any{"deployment_id": "d-1"}})
	out, err := mustCompile(t, Datadog, nil).Render(t.Context(), old, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := datadogRules(now)(decode(t, out)); err != nil {
		t.Errorf("an old event: %v", err)
	}
}
