package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// The webhook view names the custom headers, sorted, and never holds a
// value; without headers it has none and an empty list (never null).
func TestWebhookViewHeaders(t *testing.T) {
	now := time.Now().UTC()
	w := &webhooks.Webhook{ID: "0d1f3b0c-0000-4000-8000-000000000001", Name: "n", URL: "https://example.test/in",
		Headers:    map[string]string{"X-Scope-Orgid": "tenant-v4lue", "Dd-Api-Key": "dd-s3cret-v4lue"},
		EventTypes: []string{"*"}, MaxRetries: 5, TimeoutSeconds: 30, Enabled: true, CreatedAt: now, UpdatedAt: now}
	b, err := json.Marshal(webhookView(w, store.WebhookStats{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"tenant-v4lue", "dd-s3cret-v4lue"} {
		if strings.Contains(string(b), v) {
			t.Errorf("the view holds a header value: %s", b)
		}
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["has_headers"] != true || !reflect.DeepEqual(got["header_names"], []any{"Dd-Api-Key", "X-Scope-Orgid"}) {
		t.Errorf("has_headers %v, header_names %v", got["has_headers"], got["header_names"])
	}
	if _, ok := got["headers"]; ok {
		t.Errorf("the view has a headers member: %s", b)
	}
	w.Headers = nil
	b, _ = json.Marshal(webhookView(w, store.WebhookStats{}))
	if !strings.Contains(string(b), `"has_headers":false`) || !strings.Contains(string(b), `"header_names":[]`) {
		t.Errorf("view without headers: %s", b)
	}
}
