package webhooks_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hermodhq/hermod/shared/filterexpr"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// checkInvariants fails t when w breaks a rule an accepted webhook obeys.
func checkInvariants(t *testing.T, w *webhooks.Webhook) {
	t.Helper()
	if n := utf8.RuneCountInString(w.Name); n < 1 || n > 255 {
		t.Fatalf("name of %d runes accepted: %q", n, w.Name)
	}
	if err := webhooks.ValidateURL("url", w.URL); err != nil {
		t.Fatalf("invalid url accepted: %q: %v", w.URL, err)
	}
	if len(w.EventTypes) == 0 || len(w.EventTypes) > webhooks.MaxEventTypes {
		t.Fatalf("%d event types accepted", len(w.EventTypes))
	}
	seen := map[string]bool{}
	for _, p := range w.EventTypes {
		if !defaultCatalog.ValidPattern(p) || seen[p] {
			t.Fatalf("event types %q: invalid or repeated %q", w.EventTypes, p)
		}
		seen[p] = true
	}
	if strings.ContainsAny(w.AuthHeader, "\r\n\x00") || len(w.AuthHeader) > webhooks.MaxAuthHeaderLength {
		t.Fatalf("auth header %q accepted", w.AuthHeader)
	}
	if w.Filter != "" {
		if _, err := filterexpr.Compile(w.Filter); err != nil {
			t.Fatalf("filter %q accepted but does not compile: %v", w.Filter, err)
		}
	}
	if w.Headers != nil {
		canon, err := webhooks.CanonicalHeaders("headers", w.Headers)
		if err != nil || len(canon) != len(w.Headers) || len(canon) == 0 {
			t.Fatalf("headers not canonical: %q (%v)", webhooks.HeaderNames(w.Headers), err)
		}
		for k, v := range w.Headers {
			if canon[k] != v || strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("header %q not canonical or its value unsendable", k)
			}
		}
	}
	if utf8.RuneCountInString(w.Description) > webhooks.MaxDescription {
		t.Fatalf("description of %d runes", utf8.RuneCountInString(w.Description))
	}
	if w.TargetLabels != nil {
		canon, err := webhooks.CanonicalLabels("target_labels", w.TargetLabels)
		if err != nil || strings.Join(canon, "\n") != strings.Join(w.TargetLabels, "\n") || len(canon) == 0 {
			t.Fatalf("labels not canonical: %q (%v)", w.TargetLabels, err)
		}
	}
	if w.Filters != nil && w.Filters.Empty() {
		t.Fatalf("empty filters kept instead of nil")
	}
	if w.MaxRetries < 0 || w.MaxRetries > 10 || w.TimeoutSeconds < 1 || w.TimeoutSeconds > 300 {
		t.Fatalf("out of range: retries %d timeout %d", w.MaxRetries, w.TimeoutSeconds)
	}
}

// FuzzApplyUpdate applies arbitrary bodies as a partial update to a valid
// webhook: no input panics; an accepted update leaves a valid webhook whose
// secret and id did not change.
func FuzzApplyUpdate(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"name":"renamed","url":"http://[::1]:8080/x?y=1"}`,
		`{"description":null,"auth_header":null,"target_labels":null,"filters":null}`,
		`{"event_types":["*","*","deployment.*"],"max_retries":0,"timeout_seconds":300}`,
		`{"target_labels":["b:2","a:1","b:2"],"filters":{"labels":{"a":"1"},"agent_id":"7"}}`,
		`{"secret":null}`,
		`{"name":"  \u00e9  ","enabled":false}`,
		`{"filters":{"agent_id":null,"stack_id":null,"labels":null}}`,
		`{"url":"https://h.test:99999/"}`,
		`{"auth_header":"Bearer \u0001"}`,
		`{"max_retries":10.0}`,
		`{"headers":{"dd-api-key":"k","X-Scope":"a\tb"}}`,
		`{"headers":{"Upgrade":"websocket"}}`,
		`{"headers":null}`,
		`{"filter":"data.severity in [\"critical\"] && labels.env == \"prod\""}`,
		`{"filter":"data.severity =="}`,
		`{"filter":null}`,
		`{"filter":""}`,
		`{"filter":1}`,
		`{}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, err := webhooks.DecodeBody(b)
		if err != nil {
			return
		}
		w := withDefaults()
		w.ID = "id-1"
		if err := applyJSON(w, `{"name":"n","url":"https://hooks.example.test/in","event_types":["deployment.applied"],`+
			`"secret":"whsec_a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=","target_labels":["env:prod"],"filters":{"agent_id":"a"}}`, true); err != nil {
			t.Fatal(err)
		}
		secret := w.Secret
		if err := webhooks.Apply(w, raw, false, defaultCatalog); err != nil {
			return
		}
		checkInvariants(t, w)
		if w.Secret != secret || w.ID != "id-1" {
			t.Fatalf("update changed the secret or id")
		}
	})
}
