package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// answer is what a test reads of an answer: status, and the envelope's
// code and field for a refusal, or the preview for a 200.
type answer struct {
	status  int
	code    string
	field   string
	limit   float64
	preview Preview
}

func (a answer) String() string {
	if a.status == http.StatusOK {
		return fmt.Sprintf("200 %s (event %s)", a.preview.Body, a.preview.Event)
	}
	return fmt.Sprintf("%d %s on %q (limit %v)", a.status, a.code, a.field, a.limit)
}

func (h *hostile) answer(t *testing.T, method, path string, body []byte) answer {
	t.Helper()
	rec, err := h.serve(method, path, bearer(hostileKey), body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	a := answer{status: rec.Code}
	if rec.Code == http.StatusOK || rec.Code == http.StatusCreated || rec.Code == http.StatusAccepted {
		if path != "/api/v1/events" && json.Unmarshal(rec.Body.Bytes(), &a.preview) != nil {
			t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		return a
	}
	var e APIError
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("%s %s: %d is not the error envelope: %s", method, path, rec.Code, rec.Body)
	}
	a.code = e.Code
	a.field, _ = e.Details["field"].(string)
	a.limit, _ = e.Details["limit_bytes"].(float64)
	return a
}

// createWebhook saves a webhook of body plus a name, url and event types.
func (h *hostile) createWebhook(t *testing.T, body map[string]any) string {
	t.Helper()
	full := map[string]any{"name": "preview", "url": "https://127.0.0.1:9/hook", "event_types": []string{"alert.*"}}
	for k, v := range body {
		full[k] = v
	}
	rec, err := h.serve("POST", "/api/v1/webhooks", bearer(hostileKey), mustJSON(t, full))
	if err != nil || rec.Code != http.StatusCreated {
		t.Fatalf("create webhook %v: %v %d %s", full, err, rec.Code, rec.Body)
	}
	var w WebhookView
	if err := json.Unmarshal(rec.Body.Bytes(), &w); err != nil {
		t.Fatal(err)
	}
	return w.ID
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A given event is held to exactly the rules of POST /api/v1/events: every
// event that route refuses, both preview routes refuse with the same status
// and code, on the same field under event.; every event it takes, they
// render (with its id and labels).
func TestPreviewEventFollowsTheEventRules(t *testing.T) {
	h := startHostile(t)
	saved := "/api/v1/webhooks/" + h.createWebhook(t, map[string]any{"format": "slack"}) + "/preview"
	labels := map[string]string{}
	for i := range 17 {
		labels[fmt.Sprintf("k%d", i)] = "v"
	}
	for _, c := range []struct {
		name  string
		event string
		field string // "" = accepted; "-" = refused without a field (400)
	}{
		{"a valid event", `{"event_type":"alert.triggered","data":{"alert_id":"a-1","message":"cpu"}}`, ""},
		{"an id and labels", `{"event_type":"alert.triggered","data":{},"id":"ev-42","labels":{"env":"prod"}}`, ""},
		{"null data", `{"event_type":"alert.triggered","data":null}`, ""},
		{"the reserved test type", `{"event_type":"webhook.test","data":{}}`, "event_type"},
		{"a type outside the catalogue", `{"event_type":"alert.nope","data":{}}`, "event_type"},
		{"no event type", `{"data":{}}`, "event_type"},
		{"an event type of the wrong type", `{"event_type":7,"data":{}}`, "event_type"},
		{"no data", `{"event_type":"alert.triggered"}`, "data"},
		{"a bad id", `{"event_type":"alert.triggered","data":{},"id":"a b"}`, "id"},
		{"a label breaking the label rules", `{"event_type":"alert.triggered","data":{},"labels":{"env":"a b"}}`, "labels"},
		{"a label value with CR/LF", `{"event_type":"alert.triggered","data":{},"labels":{"env":"a\r\nb"}}`, "labels"},
		{"too many labels", `{"event_type":"alert.triggered","data":{},"labels":` + string(mustJSON(t, labels)) + `}`, "labels"},
		{"labels of the wrong type", `{"event_type":"alert.triggered","data":{},"labels":["env:prod"]}`, "labels"},
		{"an unknown field", `{"event_type":"alert.triggered","data":{},"severity":"high"}`, "severity"},
		{"not an object", `["alert.triggered"]`, "-"},
		{"a string", `"alert.triggered"`, "-"},
	} {
		t.Run(c.name, func(t *testing.T) {
			direct := h.answer(t, "POST", "/api/v1/events", []byte(c.event))
			switch {
			case c.field == "" && direct.status != http.StatusAccepted,
				c.field == "-" && (direct.status != http.StatusBadRequest || direct.field != ""),
				c.field != "" && c.field != "-" && (direct.status != http.StatusUnprocessableEntity || direct.field != c.field):
				t.Fatalf("POST /api/v1/events: %v, want field %q", direct, c.field)
			}
			for _, p := range []struct{ path, body string }{
				{saved, `{"event":` + c.event + `}`},
				{"/api/v1/webhooks/preview", `{"webhook":{"format":"slack"},"event":` + c.event + `}`},
			} {
				got := h.answer(t, "POST", p.path, []byte(p.body))
				if c.field == "" {
					var env struct {
						ID     string            `json:"id"`
						Type   string            `json:"event_type"`
						Labels map[string]string `json:"labels"`
					}
					var given struct {
						ID     string            `json:"id"`
						Labels map[string]string `json:"labels"`
					}
					_ = json.Unmarshal([]byte(c.event), &given)
					if got.status != http.StatusOK || json.Unmarshal(got.preview.Event, &env) != nil || env.Type != "alert.triggered" ||
						env.ID == "" || (given.ID != "" && env.ID != given.ID) || fmt.Sprint(env.Labels) != fmt.Sprint(given.Labels) {
						t.Errorf("%s: %d %s on %q (event %s), want 200 with the event", p.path, got.status, got.code, got.field, got.preview.Event)
					}
					continue
				}
				want := direct
				if direct.field != "" {
					want.field = "event." + direct.field
				}
				if got.status != want.status || got.code != want.code || got.field != want.field {
					t.Errorf("%s: %d %s on %q, want %d %s on %q", p.path, got.status, got.code, got.field, want.status, want.code, want.field)
				}
			}
		})
	}
}

// A given event may be as large as POST /api/v1/events takes, more than
// other bodies may be; one larger is refused as that route refuses it.
func TestPreviewEventSizeIsTheEventLimit(t *testing.T) {
	h := startHostile(t)
	event := func(n int64) string {
		return `{"event_type":"alert.triggered","data":{"message":"` + strings.Repeat("m", int(n)) + `"}}`
	}
	over := len(event(0))
	fits := event(h.s.opts.MaxEventBytes - int64(over))
	if int64(len(fits)) != h.s.opts.MaxEventBytes || int64(len(fits)) <= h.s.opts.MaxBodyBytes {
		t.Fatalf("an event of %d bytes: not between the limits %d and %d", len(fits), h.s.opts.MaxBodyBytes, h.s.opts.MaxEventBytes)
	}
	if a := h.answer(t, "POST", "/api/v1/events", []byte(fits)); a.status != http.StatusAccepted {
		t.Fatalf("POST /api/v1/events at the limit: %v", a)
	}
	if a := h.answer(t, "POST", "/api/v1/webhooks/preview", []byte(`{"webhook":{"format":"slack"},"event":`+fits+`}`)); a.status != http.StatusOK {
		t.Errorf("preview of an event at the limit: %v", a)
	}
	tooBig := event(h.s.opts.MaxEventBytes - int64(over) + 1)
	if a := h.answer(t, "POST", "/api/v1/events", []byte(tooBig)); a.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST /api/v1/events over the limit: %v", a)
	}
	a := h.answer(t, "POST", "/api/v1/webhooks/"+h.webhook+"/preview", []byte(`{"event":`+tooBig+`}`))
	if a.status != http.StatusRequestEntityTooLarge || a.code != "too_large" || int64(a.limit) != h.s.opts.MaxEventBytes {
		t.Errorf("preview of an event over the limit: %v", a)
	}
	// The webhook body keeps the create route's limit.
	big := `{"webhook":{"format":"slack","description":"` + strings.Repeat("d", int(h.s.opts.MaxBodyBytes)) + `"}}`
	if a := h.answer(t, "POST", "/api/v1/webhooks/preview", []byte(big)); a.status != http.StatusRequestEntityTooLarge ||
		int64(a.limit) != h.s.opts.MaxBodyBytes {
		t.Errorf("preview of a webhook body over the limit: %v", a)
	}
}

// A render that fails names what to fix: the given event's data field when
// the event lacks one the format needs; the option when a sample lacks the
// field the option names; the template when a template fails, even on one
// event (its deliveries would fail the same way).
func TestPreviewRenderErrorField(t *testing.T) {
	h := startHostile(t)
	const key = "R0123456789abcdef0123456789ABCDE"
	pdDedup := map[string]any{"format": "pagerduty", "format_options": map[string]any{"routing_key": key, "dedup_field": "fingerprint"}}
	pd := map[string]any{"format": "pagerduty", "format_options": map[string]any{"routing_key": key}}
	amCluster := map[string]any{"format": "alertmanager", "format_options": map[string]any{"label_fields": []string{"cluster"}}}
	tmpl := map[string]any{"format": "template", "format_options": map[string]any{"template": `{n: (.data.count | tonumber)}`}}
	resolved := func(data string) string { return `{"event_type":"alert.resolved","data":` + data + `}` }
	for _, c := range []struct {
		name    string
		webhook map[string]any
		request string // the preview body beside the webhook
		field   string // "" = rendered
	}{
		{"the dedup field given", pdDedup, `"event":` + resolved(`{"alert_id":"a-1","fingerprint":"f9"}`), ""},
		{"a given event without the dedup field", pdDedup, `"event":` + resolved(`{"alert_id":"a-1"}`), "event.data.fingerprint"},
		{"a given event without the pair's id", pd, `"event":` + resolved(`{"name":"cpu"}`), "event.data.alert_id"},
		{"a given event without a label field", amCluster, `"event":` + resolved(`{"alert_id":"a-1"}`), "event.data.cluster"},
		{"a given event with every label field", amCluster, `"event":` + resolved(`{"alert_id":"a-1","cluster":"c-1"}`), ""},
		{"a sample without the dedup field", pdDedup, `"event_type":"alert.resolved"`, "format_options.dedup_field"},
		{"a sample without a label field", amCluster, `"event_type":"alert.resolved"`, "format_options.label_fields"},
		{"a sample with the pair's id", pd, `"event_type":"alert.resolved"`, ""},
		{"a template failing on a given event", tmpl, `"event":{"event_type":"alert.triggered","data":{"count":"many"}}`,
			"format_options.template"},
		{"a template on a given event it can render", tmpl, `"event":{"event_type":"alert.triggered","data":{"count":"3"}}`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := h.createWebhook(t, c.webhook)
			for _, p := range []struct{ path, body string }{
				{"/api/v1/webhooks/" + id + "/preview", "{" + c.request + "}"},
				{"/api/v1/webhooks/preview", `{"webhook":` + string(mustJSON(t, c.webhook)) + "," + c.request + "}"},
			} {
				got := h.answer(t, "POST", p.path, []byte(p.body))
				switch {
				case c.field == "" && got.status != http.StatusOK:
					t.Errorf("%s: %v, want 200", p.path, got)
				case c.field != "" && (got.status != http.StatusUnprocessableEntity || got.code != "invalid_field" || got.field != c.field):
					t.Errorf("%s: %v, want 422 on %s", p.path, got, c.field)
				case c.field == "" && strings.Contains(string(got.preview.Body), key):
					t.Errorf("%s: the routing key in the preview: %s", p.path, got.preview.Body)
				}
			}
		})
	}
}

// A preview says whether the router would send the webhook the event: its
// event types, filters and filter expression, with why the expression gave
// no answer when it did not.
func TestPreviewSaysWhetherTheWebhookMatches(t *testing.T) {
	h := startHostile(t)
	expr := `data.severity == "critical" && labels.env == "prod"`
	saved := "/api/v1/webhooks/" + h.createWebhook(t, map[string]any{"filter": expr}) + "/preview"
	unsaved := `{"webhook":{"event_types":["alert.*"],"filter":` + string(mustJSON(t, expr)) + `},"event":%s}`
	for _, c := range []struct {
		event   string
		matches bool
		reason  string
	}{
		{`{"event_type":"alert.triggered","data":{"severity":"critical"},"labels":{"env":"prod"}}`, true, ""},
		{`{"event_type":"alert.triggered","data":{"severity":"low"},"labels":{"env":"prod"}}`, false, ""},
		{`{"event_type":"alert.triggered","data":{"severity":"critical"}}`, false, "missing_field"},
		{`{"event_type":"deployment.applied","data":{"severity":"critical"},"labels":{"env":"prod"}}`, false, ""},
	} {
		for _, p := range []struct{ path, body string }{
			{saved, `{"event":` + c.event + `}`},
			{"/api/v1/webhooks/preview", fmt.Sprintf(unsaved, c.event)},
		} {
			got := h.answer(t, "POST", p.path, []byte(p.body))
			reason := ""
			if got.preview.FilterError != nil {
				reason = got.preview.FilterError.Reason
			}
			if got.status != http.StatusOK || got.preview.Matches != c.matches || reason != c.reason {
				t.Errorf("%s %s: %d matches %v, filter error %q; want matches %v, %q", p.path, c.event, got.status, got.preview.Matches, reason, c.matches, c.reason)
			}
		}
	}
	got := h.answer(t, "POST", "/api/v1/webhooks/preview", []byte(`{"webhook":{"filter":"data.x =="},"event_type":"alert.triggered"}`))
	if got.status != http.StatusUnprocessableEntity || got.field != "webhook.filter" {
		t.Errorf("a broken expression in the previewed webhook: %v, want 422 on webhook.filter", got)
	}
}
