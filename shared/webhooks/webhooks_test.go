package webhooks

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hermodhq/hermod/shared/catalog"
)

var cat = catalog.New(catalog.Default)

func fresh() *Webhook {
	return &Webhook{MaxRetries: DefaultMaxRetries, TimeoutSeconds: DefaultTimeoutSeconds, Enabled: true}
}

func apply(w *Webhook, body string, create bool) error {
	raw, err := DecodeBody([]byte(body))
	if err != nil {
		return err
	}
	return Apply(w, raw, create, cat)
}

func fieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

const base = `"name":"n","url":"https://example.test/h","event_types":["deployment.applied"]`

func TestCreateRules(t *testing.T) {
	long := strings.Repeat("a", 2049)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, c := range []struct {
		name  string
		body  string
		field string // "" = valid
	}{
		{"minimal", `{` + base + `}`, ""},
		{"everything", `{` + base + `,"description":"d","auth_header":"Bearer x","secret":"` + secret + `","target_labels":["env:prod","region:eu"],"filters":{"agent_id":"a","stack_id":"s","labels":{"env":"prod"}},"max_retries":0,"timeout_seconds":300,"enabled":false}`, ""},
		{"name missing", `{"url":"https://e.test","event_types":["*"]}`, "name"},
		{"url missing", `{"name":"n","event_types":["*"]}`, "url"},
		{"types missing", `{"name":"n","url":"https://e.test"}`, "event_types"},
		{"name null", `{"name":null,"url":"https://e.test","event_types":["*"]}`, "name"},
		{"name blank", `{"name":"   ","url":"https://e.test","event_types":["*"]}`, "name"},
		{"name 256", `{"name":"` + strings.Repeat("n", 256) + `","url":"https://e.test","event_types":["*"]}`, "name"},
		{"name wrong type", `{"name":5,"url":"https://e.test","event_types":["*"]}`, "name"},
		{"url ftp", `{"name":"n","url":"ftp://e.test","event_types":["*"]}`, "url"},
		{"url relative", `{"name":"n","url":"/h","event_types":["*"]}`, "url"},
		{"url no host", `{"name":"n","url":"http://","event_types":["*"]}`, "url"},
		{"url too long", `{"name":"n","url":"https://e.test/` + long + `","event_types":["*"]}`, "url"},
		{"url with space", `{"name":"n","url":"https://e.test/a b","event_types":["*"]}`, "url"},
		{"types empty", `{"name":"n","url":"https://e.test","event_types":[]}`, "event_types"},
		{"type unknown", `{"name":"n","url":"https://e.test","event_types":["deployment.exploded"]}`, "event_types"},
		{"family unknown", `{"name":"n","url":"https://e.test","event_types":["nope.*"]}`, "event_types"},
		{"type not a string", `{"name":"n","url":"https://e.test","event_types":[1]}`, "event_types"},
		{"auth CR", `{` + base + `,"auth_header":"a\rb"}`, "auth_header"},
		{"auth LF", `{` + base + `,"auth_header":"a\nX-Evil: 1"}`, "auth_header"},
		{"secret bad prefix", `{` + base + `,"secret":"sec_abc"}`, "secret"},
		{"secret too short", `{` + base + `,"secret":"whsec_` + base64.StdEncoding.EncodeToString(make([]byte, 8)) + `"}`, "secret"},
		{"label no colon", `{` + base + `,"target_labels":["env"]}`, "target_labels"},
		{"label bad key", `{` + base + `,"target_labels":["e nv:prod"]}`, "target_labels"},
		{"label bad value", `{` + base + `,"target_labels":["env:pr/od"]}`, "target_labels"},
		{"labels 17", `{` + base + `,"target_labels":[` + labels(17) + `]}`, "target_labels"},
		{"filters unknown key", `{` + base + `,"filters":{"team":"x"}}`, "filters.team"},
		{"filters not object", `{` + base + `,"filters":[1]}`, "filters"},
		{"filters label rule", `{` + base + `,"filters":{"labels":{"e nv":"x"}}}`, "filters.labels"},
		{"max_retries 11", `{` + base + `,"max_retries":11}`, "max_retries"},
		{"max_retries -1", `{` + base + `,"max_retries":-1}`, "max_retries"},
		{"timeout 0", `{` + base + `,"timeout_seconds":0}`, "timeout_seconds"},
		{"timeout 301", `{` + base + `,"timeout_seconds":301}`, "timeout_seconds"},
		{"enabled null", `{` + base + `,"enabled":null}`, "enabled"},
		{"unknown field", `{` + base + `,"colour":"red"}`, "colour"},
	} {
		err := apply(fresh(), c.body, true)
		if got := fieldOf(err); got != c.field || (c.field == "" && err != nil) {
			t.Errorf("%s: error %v (field %q), want field %q", c.name, err, got, c.field)
		}
	}
}

func labels(n int) string {
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, `"k`+strings.Repeat("x", i)+`:v"`)
	}
	return strings.Join(parts, ",")
}

func TestCanonicalLabels(t *testing.T) {
	got, err := CanonicalLabels("target_labels", []string{"region:eu", "env:prod", "region:eu", "k8s.io/zone:a-1"})
	if err != nil || strings.Join(got, ",") != "env:prod,k8s.io/zone:a-1,region:eu" {
		t.Errorf("%v %v", got, err)
	}
	if got, err := CanonicalLabels("l", []string{"env:"}); err != nil || got[0] != "env:" {
		t.Errorf("empty value: %v %v", got, err)
	}
}

func TestUpdateRules(t *testing.T) {
	w := fresh()
	if err := apply(w, `{`+base+`,"description":"d","auth_header":"a","target_labels":["env:prod"],"filters":{"agent_id":"x"},"max_retries":2}`, true); err != nil {
		t.Fatal(err)
	}
	secret := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	if err := apply(w, `{"secret":"`+secret+`"}`, false); fieldOf(err) != "secret" {
		t.Errorf("secret in update: %v", err)
	}
	if err := apply(w, `{"url":null}`, false); fieldOf(err) != "url" {
		t.Errorf("url null: %v", err)
	}
	if err := apply(w, `{"description":null,"auth_header":null,"target_labels":null,"filters":null,"max_retries":null}`, false); err != nil {
		t.Fatal(err)
	}
	if w.Description != "" || w.AuthHeader != "" || w.TargetLabels != nil || w.Filters != nil || w.MaxRetries != DefaultMaxRetries {
		t.Errorf("null did not clear: %+v", w)
	}
	if w.Name != "n" || w.URL != "https://example.test/h" {
		t.Errorf("omitted fields changed: %+v", w)
	}
	if err := apply(w, `{"enabled":false}`, false); err != nil || w.Enabled {
		t.Errorf("enabled false: %v %v", err, w.Enabled)
	}
}

func TestDecodeBody(t *testing.T) {
	for _, c := range []struct {
		body       string
		fieldError bool
	}{
		{`{"name":`, false}, {`[]`, false}, {`null`, false}, {`{} {}`, false}, {`{"x":1}`, true},
	} {
		_, err := DecodeBody([]byte(c.body))
		if err == nil {
			t.Errorf("%q accepted", c.body)
			continue
		}
		if (fieldOf(err) != "") != c.fieldError {
			t.Errorf("%q: %v", c.body, err)
		}
	}
}

func TestRedactURLAndSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@example.test:8443/p/a?t=secret#f": "https://example.test:8443",
		"http://127.0.0.1:9000/hook":                       "http://127.0.0.1:9000",
		"not a url":                                        "",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	w := &Webhook{Secret: "a", PrevSecret: "b"}
	if got := w.Secrets(w.PrevSecretExpiresAt); len(got) != 1 {
		t.Errorf("expired previous secret still signs: %v", got)
	}
	if (&Webhook{MaxRetries: 0}).MaxAttempts() != 1 || (&Webhook{MaxRetries: 5}).MaxAttempts() != 5 {
		t.Errorf("MaxAttempts")
	}
}

// FuzzDecodeBody: no body panics; an accepted webhook obeys every rule.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		`{` + base + `}`,
		`{"name":"n","url":"http://[::1]:80/x","event_types":["*","deployment.*"],"target_labels":["a:b","a:b"]}`,
		`{"name":"n","url":"https://e.test","event_types":["alert.triggered"],"filters":{"labels":{"k":"v"},"agent_id":null}}`,
		`{"name":"\u0000","url":"https://e.test","event_types":["*"]}`,
		`{"name":"n","url":"https://e.test","event_types":["*"],"auth_header":"\u2028"}`,
		`{"name":"n","url":"https://e.test","event_types":["*"],"max_retries":1e3}`,
		`{"name":"n","url":"https://e.test","event_types":["*"],"secret":"whsec_====="}`,
		`{"name":"n","name":"m","url":"https://e.test","event_types":["*"]}`,
		`{`, `[]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, err := DecodeBody(b)
		if err != nil {
			return
		}
		w := fresh()
		if err := Apply(w, raw, true, cat); err != nil {
			return
		}
		if n := utf8.RuneCountInString(w.Name); n < 1 || n > 255 {
			t.Fatalf("name of %d runes accepted", n)
		}
		if ValidateURL("url", w.URL) != nil {
			t.Fatalf("invalid url accepted: %q", w.URL)
		}
		if len(w.EventTypes) == 0 {
			t.Fatalf("no event types accepted")
		}
		if strings.ContainsAny(w.AuthHeader, "\r\n") {
			t.Fatalf("CR/LF in auth header accepted")
		}
		if canon, err := CanonicalLabels("l", w.TargetLabels); err != nil || strings.Join(canon, ",") != strings.Join(w.TargetLabels, ",") {
			t.Fatalf("labels not canonical: %v", w.TargetLabels)
		}
		if w.MaxRetries < 0 || w.MaxRetries > 10 || w.TimeoutSeconds < 1 || w.TimeoutSeconds > 300 {
			t.Fatalf("out of range: %+v", w)
		}
	})
}

// The label sets an agent may take: subsets of its grant, never more.
func TestCovers(t *testing.T) {
	granted := []string{"env:production", "region:eu"}
	for _, c := range []struct {
		set  []string
		want bool
	}{
		{[]string{"env:production"}, true},
		{[]string{"env:production", "region:eu"}, true},
		{[]string{"region:eu"}, true},
		{[]string{"env:staging"}, false},
		{[]string{"env:production", "role:monitoring"}, false},
		{[]string{"env:production", "region:eu", "zone:a"}, false},
		{[]string{"env:production:x"}, false},
		{nil, false},
	} {
		if got := Covers(granted, c.set); got != c.want {
			t.Errorf("Covers(%v, %v) = %v", granted, c.set, got)
		}
	}
	if Covers(nil, []string{"env:production"}) {
		t.Errorf("an empty grant covers a set")
	}
}
