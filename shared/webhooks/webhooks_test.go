package webhooks_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/webhooks"
)

var defaultCatalog = catalog.New(catalog.Default)

// withDefaults is a webhook as the API prepares it before a create.
func withDefaults() *webhooks.Webhook {
	return &webhooks.Webhook{MaxRetries: webhooks.DefaultMaxRetries, TimeoutSeconds: webhooks.DefaultTimeoutSeconds, Enabled: true}
}

// applyJSON decodes body and applies it to w.
func applyJSON(w *webhooks.Webhook, body string, create bool) error {
	raw, err := webhooks.DecodeBody([]byte(body))
	if err != nil {
		return err
	}
	return webhooks.Apply(w, raw, create, defaultCatalog)
}

// fieldName returns the Field of a *FieldError, "" for nil, and "<not a
// FieldError>" for any other error.
func fieldName(err error) string {
	if err == nil {
		return ""
	}
	var fe *webhooks.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return "<not a FieldError>"
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func secretBytes(n int) string {
	return "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n)))
}

// createBody builds a create body: the three required fields with valid
// values, overridden or removed by extra ("-" removes a field), plus extra.
func createBody(extra map[string]string) string {
	fields := map[string]string{
		"name":        `"orders"`,
		"url":         `"https://hooks.example.test/in"`,
		"event_types": `["deployment.applied"]`,
	}
	for k, v := range extra {
		fields[k] = v
	}
	var parts []string
	for _, k := range []string{"name", "description", "url", "event_types", "auth_header", "headers", "secret", "target_labels",
		"filters", "max_retries", "timeout_seconds", "enabled"} {
		if v, ok := fields[k]; ok && v != "-" {
			parts = append(parts, quote(k)+":"+v)
		}
		delete(fields, k)
	}
	for k, v := range fields { // unknown fields, if any
		parts = append(parts, quote(k)+":"+v)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func labelList(n int, f func(i int) string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = quote(f(i))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestDecodeBodyTable(t *testing.T) {
	for _, c := range []struct {
		name  string
		body  string
		field string // "" = accepted; "<not a FieldError>" = malformed (400)
		keys  int
	}{
		{"empty object", `{}`, "", 0},
		{"known fields", `{"name":"n","url":"u","enabled":true}`, "", 3},
		{"every known field", createBody(map[string]string{"description": `""`, "auth_header": `""`, "secret": `null`,
			"target_labels": `[]`, "filters": `{}`, "max_retries": `1`, "timeout_seconds": `1`, "enabled": `true`}), "", 11},
		{"trailing whitespace", "{\"name\":\"n\"} \n\t", "", 1},
		{"leading whitespace", " \n{\"name\":\"n\"}", "", 1},
		{"unknown field", `{"name":"n","colour":"red"}`, "colour", 0},
		{"unknown field, null value", `{"colour":null}`, "colour", 0},
		{"field names are case-sensitive", `{"Name":"n"}`, "Name", 0},
		{"snake-case variant", `{"eventTypes":["*"]}`, "eventTypes", 0},
		{"two unknown fields: first in sorted order", `{"zeta":1,"alpha":2}`, "alpha", 0},
		{"nested unknown is not checked here", `{"filters":{"x":1}}`, "", 1},
		{"empty body", ``, "<not a FieldError>", 0},
		{"whitespace body", "  ", "<not a FieldError>", 0},
		{"truncated object", `{"name":"n"`, "<not a FieldError>", 0},
		{"missing value", `{"name":}`, "<not a FieldError>", 0},
		{"single quotes", `{'name':'n'}`, "<not a FieldError>", 0},
		{"trailing comma", `{"name":"n",}`, "<not a FieldError>", 0},
		{"not JSON", `name=n`, "<not a FieldError>", 0},
		{"array", `[{"name":"n"}]`, "<not a FieldError>", 0},
		{"null", `null`, "<not a FieldError>", 0},
		{"string", `"name"`, "<not a FieldError>", 0},
		{"number", `42`, "<not a FieldError>", 0},
		{"trailing object", `{} {}`, "<not a FieldError>", 0},
		{"trailing garbage", `{"name":"n"}x`, "<not a FieldError>", 0},
		{"trailing number", `{"name":"n"} 1`, "<not a FieldError>", 0},
		{"trailing string", `{}"x"`, "<not a FieldError>", 0},
		{"trailing array", `{}[]`, "<not a FieldError>", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw, err := webhooks.DecodeBody([]byte(c.body))
			if got := fieldName(err); got != c.field {
				t.Fatalf("DecodeBody(%q) error %v (field %q), want field %q", c.body, err, got, c.field)
			}
			if err != nil {
				if raw != nil {
					t.Errorf("fields returned with an error")
				}
				if c.field == "<not a FieldError>" && !strings.Contains(err.Error(), "malformed JSON") {
					t.Errorf("error %q does not say malformed JSON", err)
				}
				return
			}
			if len(raw) != c.keys {
				t.Errorf("%d fields, want %d", len(raw), c.keys)
			}
		})
	}
}

// DecodeBody checks for trailing data with json.Decoder.More, which reports
// false when the next byte is '}' or ']', so such trailing data is accepted.
func TestDecodeBodyTrailingCloser(t *testing.T) {
	var accepted []string
	for _, body := range []string{`{}}`, `{}]`, `{"name":"n"}}`, `{"name":"n"} ]`} {
		if _, err := webhooks.DecodeBody([]byte(body)); err == nil {
			accepted = append(accepted, body)
		} else if fieldName(err) != "<not a FieldError>" {
			t.Errorf("%q: %v is a FieldError", body, err)
		}
	}
	if len(accepted) > 0 {
		t.Errorf("regression: DecodeBody accepts bodies with trailing '}' or ']': %q", accepted)
	}
}

func TestApplyCreateTable(t *testing.T) {
	long := func(n int) string {
		return `"https://hooks.example.test/` + strings.Repeat("p", n-len("https://hooks.example.test/")) + `"`
	}
	for _, c := range []struct {
		name  string
		extra map[string]string
		field string // "" = accepted
	}{
		// required fields
		{"minimal", nil, ""},
		{"name missing", map[string]string{"name": "-"}, "name"},
		{"url missing", map[string]string{"url": "-"}, "url"},
		{"event_types missing", map[string]string{"event_types": "-"}, "event_types"},
		{"all missing: name reported first", map[string]string{"name": "-", "url": "-", "event_types": "-"}, "name"},
		{"url and types missing: url first", map[string]string{"url": "-", "event_types": "-"}, "url"},
		{"name null", map[string]string{"name": `null`}, "name"},
		{"url null", map[string]string{"url": `null`}, "url"},
		{"event_types null", map[string]string{"event_types": `null`}, "event_types"},
		// name
		{"name empty", map[string]string{"name": `""`}, "name"},
		{"name blank", map[string]string{"name": `" \t "`}, "name"},
		{"name 255 runes", map[string]string{"name": quote(strings.Repeat("é", 255))}, ""},
		{"name 256 runes", map[string]string{"name": quote(strings.Repeat("é", 256))}, "name"},
		{"name 256 with padding trimmed to 254", map[string]string{"name": quote(" " + strings.Repeat("n", 254) + " ")}, ""},
		{"name number", map[string]string{"name": `1`}, "name"},
		{"name object", map[string]string{"name": `{}`}, "name"},
		// url
		{"url http", map[string]string{"url": `"http://hooks.example.test"`}, ""},
		{"url with port, path, query, user info", map[string]string{"url": `"https://u:p@hooks.example.test:8443/a/b?c=d"`}, ""},
		{"url ip literal", map[string]string{"url": `"http://[2001:db8::1]:8080/x"`}, ""},
		{"url upper-case scheme", map[string]string{"url": `"HTTPS://hooks.example.test/"`}, ""},
		{"url ftp", map[string]string{"url": `"ftp://hooks.example.test/in"`}, "url"},
		{"url ws", map[string]string{"url": `"ws://hooks.example.test/in"`}, "url"},
		{"url relative path", map[string]string{"url": `"/hooks/in"`}, "url"},
		{"url without scheme", map[string]string{"url": `"hooks.example.test/in"`}, "url"},
		{"url scheme-relative", map[string]string{"url": `"//hooks.example.test/in"`}, "url"},
		{"url without host", map[string]string{"url": `"https://"`}, "url"},
		{"url with empty host and path", map[string]string{"url": `"https:///in"`}, "url"},
		{"url only a port", map[string]string{"url": `"http://:8080/"`}, "url"},
		{"url javascript", map[string]string{"url": `"javascript:alert(1)"`}, "url"},
		{"url mailto", map[string]string{"url": `"mailto:ops@example.test"`}, "url"},
		{"url empty", map[string]string{"url": `""`}, "url"},
		{"url 2048 bytes", map[string]string{"url": long(2048)}, ""},
		{"url 2049 bytes", map[string]string{"url": long(2049)}, "url"},
		{"url 10000 bytes", map[string]string{"url": long(10000)}, "url"},
		{"url with a space", map[string]string{"url": `"https://hooks.example.test/a b"`}, "url"},
		{"url with a tab", map[string]string{"url": `"https://hooks.example.test/a\tb"`}, "url"},
		{"url with a newline", map[string]string{"url": `"https://hooks.example.test/a\nb"`}, "url"},
		{"url with CR", map[string]string{"url": `"https://hooks.example.test/\r"`}, "url"},
		{"url leading space", map[string]string{"url": `" https://hooks.example.test/"`}, "url"},
		{"url trailing space", map[string]string{"url": `"https://hooks.example.test/ "`}, "url"},
		{"url space in host", map[string]string{"url": `"https://hooks example.test/"`}, "url"},
		{"url bad port", map[string]string{"url": `"https://hooks.example.test:port/"`}, "url"},
		{"url number", map[string]string{"url": `5`}, "url"},
		// event_types
		{"every kind of pattern", map[string]string{"event_types": `["*","deployment.*","instance.crash","webhook.test"]`}, ""},
		{"event_types empty", map[string]string{"event_types": `[]`}, "event_types"},
		{"unknown type", map[string]string{"event_types": `["deployment.exploded"]`}, "event_types"},
		{"unknown among known", map[string]string{"event_types": `["deployment.applied","nope.nope"]`}, "event_types"},
		{"family.* of unknown family", map[string]string{"event_types": `["nope.*"]`}, "event_types"},
		{"prefix of a family", map[string]string{"event_types": `["deploy.*"]`}, "event_types"},
		{"family without .*", map[string]string{"event_types": `["deployment"]`}, "event_types"},
		{"*.*", map[string]string{"event_types": `["*.*"]`}, "event_types"},
		{"**", map[string]string{"event_types": `["**"]`}, "event_types"},
		{"family.> (NATS syntax)", map[string]string{"event_types": `["deployment.>"]`}, "event_types"},
		{"empty pattern", map[string]string{"event_types": `[""]`}, "event_types"},
		{"upper-case type", map[string]string{"event_types": `["Deployment.Applied"]`}, "event_types"},
		{"event_types a string", map[string]string{"event_types": `"deployment.applied"`}, "event_types"},
		{"event_types with a number", map[string]string{"event_types": `["deployment.applied",1]`}, "event_types"},
		{"64 event types", map[string]string{"event_types": labelList(64, func(int) string { return "*" })}, ""},
		{"65 event types", map[string]string{"event_types": labelList(65, func(int) string { return "*" })}, "event_types"},
		// auth_header
		{"auth header", map[string]string{"auth_header": `"Bearer abc"`}, ""},
		{"auth header with a tab", map[string]string{"auth_header": `"Bearer\tabc"`}, ""},
		{"auth header empty", map[string]string{"auth_header": `""`}, ""},
		{"auth header null", map[string]string{"auth_header": `null`}, ""},
		{"auth header CR", map[string]string{"auth_header": `"Bearer a\rb"`}, "auth_header"},
		{"auth header LF", map[string]string{"auth_header": `"Bearer a\nX-Injected: 1"`}, "auth_header"},
		{"auth header CRLF", map[string]string{"auth_header": `"Bearer a\r\nX-Injected: 1"`}, "auth_header"},
		{"auth header trailing LF", map[string]string{"auth_header": `"Bearer a\n"`}, "auth_header"},
		{"auth header NUL", map[string]string{"auth_header": `"Bearer \u0000"`}, "auth_header"},
		{"auth header 8192 bytes", map[string]string{"auth_header": quote(strings.Repeat("a", 8192))}, ""},
		{"auth header 8193 bytes", map[string]string{"auth_header": quote(strings.Repeat("a", 8193))}, "auth_header"},
		{"auth header number", map[string]string{"auth_header": `12`}, "auth_header"},
		// secret
		{"secret 24 bytes", map[string]string{"secret": quote(secretBytes(24))}, ""},
		{"secret 64 bytes", map[string]string{"secret": quote(secretBytes(64))}, ""},
		{"secret null (generated later)", map[string]string{"secret": `null`}, ""},
		{"secret 23 bytes", map[string]string{"secret": quote(secretBytes(23))}, "secret"},
		{"secret 65 bytes", map[string]string{"secret": quote(secretBytes(65))}, "secret"},
		{"secret without prefix", map[string]string{"secret": quote(strings.TrimPrefix(secretBytes(32), "whsec_"))}, "secret"},
		{"secret not base64", map[string]string{"secret": `"whsec_not base64!"`}, "secret"},
		{"secret empty", map[string]string{"secret": `""`}, "secret"},
		{"secret number", map[string]string{"secret": `32`}, "secret"},
		// target_labels
		{"labels", map[string]string{"target_labels": `["env:prod","k8s.io/zone:eu-1a","tier:"]`}, ""},
		{"labels empty list", map[string]string{"target_labels": `[]`}, ""},
		{"16 labels", map[string]string{"target_labels": labelList(16, func(i int) string { return fmt.Sprintf("k%d:v", i) })}, ""},
		{"17 labels", map[string]string{"target_labels": labelList(17, func(i int) string { return fmt.Sprintf("k%d:v", i) })}, "target_labels"},
		{"label without colon", map[string]string{"target_labels": `["env"]`}, "target_labels"},
		{"label empty key", map[string]string{"target_labels": `[":prod"]`}, "target_labels"},
		{"label key with space", map[string]string{"target_labels": `["e nv:prod"]`}, "target_labels"},
		{"label key with star", map[string]string{"target_labels": `["env*:prod"]`}, "target_labels"},
		{"label key with >", map[string]string{"target_labels": `["env>:prod"]`}, "target_labels"},
		{"label key 63 chars", map[string]string{"target_labels": quoteList(strings.Repeat("k", 63) + ":v")}, ""},
		{"label key 64 chars", map[string]string{"target_labels": quoteList(strings.Repeat("k", 64) + ":v")}, "target_labels"},
		{"label value 63 chars", map[string]string{"target_labels": quoteList("k:" + strings.Repeat("v", 63))}, ""},
		{"label value 64 chars", map[string]string{"target_labels": quoteList("k:" + strings.Repeat("v", 64))}, "target_labels"},
		{"label value with slash", map[string]string{"target_labels": `["env:pr/od"]`}, "target_labels"},
		{"label value with colon", map[string]string{"target_labels": `["env:a:b"]`}, "target_labels"},
		{"label unicode", map[string]string{"target_labels": `["énv:prod"]`}, "target_labels"},
		{"labels not an array", map[string]string{"target_labels": `{"env":"prod"}`}, "target_labels"},
		{"labels with a number", map[string]string{"target_labels": `[1]`}, "target_labels"},
		// filters
		{"filters all keys", map[string]string{"filters": `{"agent_id":"a-1","stack_id":"s","labels":{"env":"prod"}}`}, ""},
		{"filters empty", map[string]string{"filters": `{}`}, ""},
		{"filters null", map[string]string{"filters": `null`}, ""},
		{"filters unknown key", map[string]string{"filters": `{"x":"y"}`}, "filters.x"},
		{"filters unknown key next to known", map[string]string{"filters": `{"agent_id":"a","team":"core"}`}, "filters.team"},
		{"filters case-sensitive key", map[string]string{"filters": `{"Agent_ID":"a"}`}, "filters.Agent_ID"},
		{"filters array", map[string]string{"filters": `[]`}, "filters"},
		{"filters string", map[string]string{"filters": `"agent_id=a"`}, "filters"},
		{"filters agent_id number", map[string]string{"filters": `{"agent_id":7}`}, "filters.agent_id"},
		{"filters stack_id object", map[string]string{"filters": `{"stack_id":{}}`}, "filters.stack_id"},
		{"filters agent_id 255 chars", map[string]string{"filters": `{"agent_id":` + quote(strings.Repeat("a", 255)) + `}`}, ""},
		{"filters agent_id 256 chars", map[string]string{"filters": `{"agent_id":` + quote(strings.Repeat("a", 256)) + `}`}, "filters.agent_id"},
		{"filters labels not strings", map[string]string{"filters": `{"labels":{"env":1}}`}, "filters.labels"},
		{"filters labels array", map[string]string{"filters": `{"labels":["env:prod"]}`}, "filters.labels"},
		{"filters labels bad key", map[string]string{"filters": `{"labels":{"e nv":"prod"}}`}, "filters.labels"},
		{"filters labels bad value", map[string]string{"filters": `{"labels":{"env":"a/b"}}`}, "filters.labels"},
		{"filters 17 labels", map[string]string{"filters": `{"labels":{` + func() string {
			var p []string
			for i := 0; i < 17; i++ {
				p = append(p, fmt.Sprintf(`"k%d":"v"`, i))
			}
			return strings.Join(p, ",")
		}() + `}}`}, "filters.labels"},
		// max_retries
		{"max_retries 0", map[string]string{"max_retries": `0`}, ""},
		{"max_retries 10", map[string]string{"max_retries": `10`}, ""},
		{"max_retries null", map[string]string{"max_retries": `null`}, ""},
		{"max_retries -1", map[string]string{"max_retries": `-1`}, "max_retries"},
		{"max_retries 11", map[string]string{"max_retries": `11`}, "max_retries"},
		{"max_retries 2.5", map[string]string{"max_retries": `2.5`}, "max_retries"},
		{"max_retries string", map[string]string{"max_retries": `"3"`}, "max_retries"},
		{"max_retries huge", map[string]string{"max_retries": `99999999999999999999`}, "max_retries"},
		// timeout_seconds
		{"timeout 1", map[string]string{"timeout_seconds": `1`}, ""},
		{"timeout 300", map[string]string{"timeout_seconds": `300`}, ""},
		{"timeout null", map[string]string{"timeout_seconds": `null`}, ""},
		{"timeout 0", map[string]string{"timeout_seconds": `0`}, "timeout_seconds"},
		{"timeout 301", map[string]string{"timeout_seconds": `301`}, "timeout_seconds"},
		{"timeout -30", map[string]string{"timeout_seconds": `-30`}, "timeout_seconds"},
		{"timeout string", map[string]string{"timeout_seconds": `"30s"`}, "timeout_seconds"},
		// description, enabled
		{"description 2048 runes", map[string]string{"description": quote(strings.Repeat("ü", 2048))}, ""},
		{"description 2049 runes", map[string]string{"description": quote(strings.Repeat("ü", 2049))}, "description"},
		{"description number", map[string]string{"description": `1`}, "description"},
		{"enabled false", map[string]string{"enabled": `false`}, ""},
		{"enabled null", map[string]string{"enabled": `null`}, "enabled"},
		{"enabled string", map[string]string{"enabled": `"true"`}, "enabled"},
		// the first bad field in the fixed order is the one reported
		{"name and url bad: name first", map[string]string{"name": `""`, "url": `"ftp://x"`}, "name"},
		{"url and timeout bad: url first", map[string]string{"url": `"ftp://x"`, "timeout_seconds": `0`}, "url"},
		{"labels and retries bad: target_labels first", map[string]string{"target_labels": `["x"]`, "max_retries": `99`}, "target_labels"},
		// unknown top-level fields are caught by DecodeBody
		{"unknown field", map[string]string{"colour": `"red"`}, "colour"},
		{"id is not settable", map[string]string{"id": `"5"`}, "id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := createBody(c.extra)
			w := withDefaults()
			err := applyJSON(w, body, true)
			if got := fieldName(err); got != c.field {
				t.Fatalf("body %.200s\nerror %v (field %q), want field %q", body, err, got, c.field)
			}
			if err != nil {
				var fe *webhooks.FieldError
				errors.As(err, &fe)
				if fe.Message == "" || fe.Error() != fe.Field+": "+fe.Message {
					t.Errorf("FieldError %#v renders as %q", fe, fe.Error())
				}
			}
		})
	}
}

func quoteList(ss ...string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = quote(s)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// What a successful create leaves in the webhook.
func TestApplyCreateValues(t *testing.T) {
	secret := secretBytes(32)
	w := withDefaults()
	body := createBody(map[string]string{
		"name":          `"  Orders hook  "`,
		"description":   `"deploys to prod"`,
		"url":           `"https://u:p@hooks.example.test:8443/in?k=v"`,
		"event_types":   `["deployment.*","alert.triggered","deployment.*","*"]`,
		"auth_header":   `"Bearer xyz"`,
		"secret":        quote(secret),
		"target_labels": `["region:eu","env:prod","region:eu","a/b:"]`,
		"filters":       `{"agent_id":"a-1","stack_id":null,"labels":{"env":"prod"}}`,
		"max_retries":   `0`,
		"enabled":       `false`,
	})
	if err := applyJSON(w, body, true); err != nil {
		t.Fatal(err)
	}
	agent := "a-1"
	want := &webhooks.Webhook{
		Name:           "Orders hook",
		Description:    "deploys to prod",
		URL:            "https://u:p@hooks.example.test:8443/in?k=v",
		EventTypes:     []string{"deployment.*", "alert.triggered", "*"},
		AuthHeader:     "Bearer xyz",
		Secret:         secret,
		TargetLabels:   []string{"a/b:", "env:prod", "region:eu"},
		Filters:        &webhooks.Filters{AgentID: &agent, Labels: map[string]string{"env": "prod"}},
		MaxRetries:     0,
		TimeoutSeconds: webhooks.DefaultTimeoutSeconds,
		Enabled:        false,
	}
	if !reflect.DeepEqual(w, want) {
		t.Errorf("got  %+v\nwant %+v", w, want)
	}
	if w.MaxAttempts() != 1 {
		t.Errorf("max_retries 0: MaxAttempts %d", w.MaxAttempts())
	}
	// Defaults stay when the fields are omitted; an empty label list and
	// empty filters become nil.
	w = withDefaults()
	if err := applyJSON(w, createBody(map[string]string{"target_labels": `[]`, "filters": `{"agent_id":null,"labels":{}}`}), true); err != nil {
		t.Fatal(err)
	}
	if w.MaxRetries != 5 || w.TimeoutSeconds != 30 || !w.Enabled || w.TargetLabels != nil || w.Filters != nil || w.Secret != "" {
		t.Errorf("defaults: %+v", w)
	}
}

func TestCanonicalLabelsTable(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []string
		want []string
		bad  bool
	}{
		{"nil", nil, []string{}, false},
		{"sorted", []string{"b:1", "a:2"}, []string{"a:2", "b:1"}, false},
		{"deduplicated", []string{"env:prod", "env:prod", "env:prod"}, []string{"env:prod"}, false},
		{"sort by whole label", []string{"env:prod", "env:dev", "e:x"}, []string{"e:x", "env:dev", "env:prod"}, false},
		{"same key, two values kept", []string{"env:prod", "env:dev"}, []string{"env:dev", "env:prod"}, false},
		{"empty value", []string{"flag:"}, []string{"flag:"}, false},
		{"16 labels", seq(16), sortedSeq(16), false},
		{"17 labels", seq(17), nil, true},
		{"bad key", []string{"ok:1", "b@d:1"}, nil, true},
		{"no colon", []string{"env"}, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := webhooks.CanonicalLabels("target_labels", c.in)
			if c.bad {
				if fieldName(err) != "target_labels" {
					t.Errorf("error %v", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("CanonicalLabels(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
		})
	}
}

func seq(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%02d:v", n-i)
	}
	return out
}

func sortedSeq(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%02d:v", i+1)
	}
	return out
}

// Control characters other than CR, LF and NUL are accepted in auth_header,
// but net/http refuses to send such a header value (see delivery's
// TestSendUnsendableAuthHeader), so the webhook can never deliver.
func TestApplyAuthHeaderControlCharacters(t *testing.T) {
	var accepted []string
	for _, v := range []string{"Bearer \u0001", "Bearer \u001f", "Bearer \u007f", "Bearer \u000b"} {
		if err := applyJSON(withDefaults(), createBody(map[string]string{"auth_header": quote(v)}), true); err == nil {
			accepted = append(accepted, fmt.Sprintf("%q", v))
		} else if fieldName(err) != "auth_header" {
			t.Errorf("%q: %v", v, err)
		}
	}
	if len(accepted) > 0 {
		t.Errorf("regression: auth_header values net/http cannot send are accepted: %s",
			strings.Join(accepted, ", "))
	}
}

func headerObject(n int, name func(i int) string, value string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = quote(name(i)) + ":" + quote(value)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Custom headers: HTTP token names, canonicalized; values HTTP can send;
// no hop-by-hop, client-written or Hermod-owned names; bounded in count and
// size; null and {} mean none.
func TestApplyHeadersTable(t *testing.T) {
	for _, c := range []struct {
		name    string
		headers string
		field   string
		want    map[string]string
		n       int // headers kept when want is nil and they are many
	}{
		{"vendor key canonicalized", `{"dd-api-key":"abc"}`, "", map[string]string{"Dd-Api-Key": "abc"}, 0},
		{"several", `{"X-Tenant":"t1","x-scope-orgid":"42"}`, "", map[string]string{"X-Tenant": "t1", "X-Scope-Orgid": "42"}, 0},
		{"token punctuation", `{"X!#$%&'*+.^_|~-A":"v"}`, "", map[string]string{"X!#$%&'*+.^_|~-A": "v"}, 0},
		{"empty value", `{"X-Empty":""}`, "", map[string]string{"X-Empty": ""}, 0},
		{"tab and non-ASCII in value", `{"X-V":"a\tb é"}`, "", map[string]string{"X-V": "a\tb é"}, 0},
		{"null is none", `null`, "", nil, 0},
		{"empty object is none", `{}`, "", nil, 0},
		{"exactly 32", headerObject(32, func(i int) string { return fmt.Sprintf("X-H%d", i) }, "v"), "", nil, 32},
		{"33 headers", headerObject(33, func(i int) string { return fmt.Sprintf("X-H%d", i) }, "v"), "headers", nil, 0},
		{"exactly 8 KiB", headerObject(2, func(i int) string { return fmt.Sprintf("X-H%d", i) }, strings.Repeat("v", 4092)), "", nil, 2},
		{"over 8 KiB", headerObject(2, func(i int) string { return fmt.Sprintf("X-H%d", i) }, strings.Repeat("v", 4093)), "headers", nil, 0},
		{"not an object", `["X-A: 1"]`, "headers", nil, 0},
		{"non-string value", `{"X-A":1}`, "headers", nil, 0},
		{"CRLF injection in value", `{"X-A":"1\r\nWebhook-Signature: v1,forged"}`, "headers.X-A", nil, 0},
		{"LF in value", `{"X-A":"1\nB"}`, "headers.X-A", nil, 0},
		{"NUL in value", `{"X-A":"1\u0000"}`, "headers.X-A", nil, 0},
		{"DEL in value", `{"X-A":"1\u007f"}`, "headers.X-A", nil, 0},
		{"empty name", `{"":"v"}`, "headers.", nil, 0},
		{"space in name", `{"X A":"v"}`, "headers.X A", nil, 0},
		{"colon in name", `{"X-A:":"v"}`, "headers.X-A:", nil, 0},
		{"CRLF in name", `{"X-A\r\nX-B":"v"}`, "headers.X-A\r\nX-B", nil, 0},
		{"non-ASCII name", `{"X-é":"v"}`, "headers.X-é", nil, 0},
		{"same name twice by case", `{"X-Key":"1","x-key":"2"}`, "headers.x-key", nil, 0},
		{"Connection", `{"connection":"close"}`, "headers.connection", nil, 0},
		{"Keep-Alive", `{"Keep-Alive":"timeout=5"}`, "headers.Keep-Alive", nil, 0},
		{"Proxy-Authorization", `{"proxy-authorization":"Basic x"}`, "headers.proxy-authorization", nil, 0},
		{"Proxy-Connection", `{"Proxy-Connection":"keep-alive"}`, "headers.Proxy-Connection", nil, 0},
		{"TE", `{"TE":"trailers"}`, "headers.TE", nil, 0},
		{"Trailer", `{"Trailer":"X"}`, "headers.Trailer", nil, 0},
		{"Transfer-Encoding", `{"transfer-encoding":"chunked"}`, "headers.transfer-encoding", nil, 0},
		{"Upgrade", `{"Upgrade":"h2c"}`, "headers.Upgrade", nil, 0},
		{"Host", `{"HOST":"evil.test"}`, "headers.HOST", nil, 0},
		{"Content-Length", `{"Content-Length":"0"}`, "headers.Content-Length", nil, 0},
		{"Content-Type", `{"content-type":"text/plain"}`, "headers.content-type", nil, 0},
		{"webhook-id", `{"webhook-id":"x"}`, "headers.webhook-id", nil, 0},
		{"webhook-timestamp", `{"Webhook-Timestamp":"1"}`, "headers.Webhook-Timestamp", nil, 0},
		{"webhook-signature", `{"WEBHOOK-SIGNATURE":"v1,forged"}`, "headers.WEBHOOK-SIGNATURE", nil, 0},
		{"User-Agent", `{"user-agent":"x"}`, "headers.user-agent", nil, 0},
		{"Authorization", `{"Authorization":"Bearer x"}`, "headers.Authorization", nil, 0},
		{"Hermod's X-Hermod-", `{"x-hermod-event-type":"x"}`, "headers.x-hermod-event-type", nil, 0},
		{"first bad name in sorted order", `{"b-host":"1","Upgrade":"x","Host":"y"}`, "headers.Host", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := withDefaults()
			err := applyJSON(w, createBody(map[string]string{"headers": c.headers}), true)
			if got := fieldName(err); got != c.field {
				t.Fatalf("error %v (field %q), want field %q", err, got, c.field)
			}
			if err != nil {
				if w.Headers != nil {
					t.Errorf("headers set despite the error: %q", webhooks.HeaderNames(w.Headers))
				}
				return
			}
			if c.want != nil && !reflect.DeepEqual(w.Headers, c.want) {
				t.Errorf("headers %q, want %q", w.Headers, c.want)
			}
			if n := max(c.n, len(c.want)); len(w.Headers) != n {
				t.Errorf("%d headers kept, want %d", len(w.Headers), n)
			}
			if n := 0; len(w.Headers) == n && w.Headers != nil {
				t.Errorf("no headers kept as an empty map, want nil")
			}
		})
	}
}

// A refused header's value is never quoted back: it may be a credential.
func TestApplyHeadersErrorOmitsValue(t *testing.T) {
	for _, body := range []string{
		`{"Authorization":"Bearer sekrit-value"}`,
		`{"X-A":"sekrit-value\r\n"}`,
		`{"X-A":"sekrit-value","x-a":"sekrit-value"}`,
	} {
		err := applyJSON(withDefaults(), createBody(map[string]string{"headers": body}), true)
		if err == nil {
			t.Fatalf("%s accepted", body)
		}
		if strings.Contains(err.Error(), "sekrit") {
			t.Errorf("%s: error quotes the value: %v", body, err)
		}
	}
}

func TestHeaderNamesSorted(t *testing.T) {
	got := webhooks.HeaderNames(map[string]string{"X-B": "1", "Dd-Api-Key": "2", "X-A": "3"})
	if want := []string{"Dd-Api-Key", "X-A", "X-B"}; !reflect.DeepEqual(got, want) {
		t.Errorf("HeaderNames = %q, want %q", got, want)
	}
	if got := webhooks.HeaderNames(nil); len(got) != 0 {
		t.Errorf("HeaderNames(nil) = %q", got)
	}
}

// The partial update: omitted = unchanged, null clears an optional field,
// a secret is refused (rotate instead), same rules as create.
func TestApplyUpdateTable(t *testing.T) {
	secret := secretBytes(32)
	base := func(t *testing.T) *webhooks.Webhook {
		w := withDefaults()
		w.ID = "0d1f3b0c-0000-4000-8000-000000000001"
		w.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := applyJSON(w, createBody(map[string]string{
			"description":     `"desc"`,
			"auth_header":     `"Bearer old"`,
			"headers":         `{"DD-API-KEY":"k1"}`,
			"secret":          quote(secret),
			"target_labels":   `["env:prod"]`,
			"filters":         `{"agent_id":"a-1"}`,
			"max_retries":     `2`,
			"timeout_seconds": `10`,
		}), true); err != nil {
			t.Fatal(err)
		}
		return w
	}
	for _, c := range []struct {
		name   string
		body   string
		field  string
		change func(w *webhooks.Webhook) // expected change from base; nil = none
	}{
		{"empty body changes nothing", `{}`, "", nil},
		{"name only", `{"name":"renamed"}`, "", func(w *webhooks.Webhook) { w.Name = "renamed" }},
		{"url only", `{"url":"http://other.example.test/x"}`, "", func(w *webhooks.Webhook) { w.URL = "http://other.example.test/x" }},
		{"event types replaced", `{"event_types":["instance.*"]}`, "", func(w *webhooks.Webhook) { w.EventTypes = []string{"instance.*"} }},
		{"description null clears", `{"description":null}`, "", func(w *webhooks.Webhook) { w.Description = "" }},
		{"auth_header null clears", `{"auth_header":null}`, "", func(w *webhooks.Webhook) { w.AuthHeader = "" }},
		{"target_labels null clears", `{"target_labels":null}`, "", func(w *webhooks.Webhook) { w.TargetLabels = nil }},
		{"target_labels [] clears", `{"target_labels":[]}`, "", func(w *webhooks.Webhook) { w.TargetLabels = nil }},
		{"filters null clears", `{"filters":null}`, "", func(w *webhooks.Webhook) { w.Filters = nil }},
		{"filters {} clears", `{"filters":{}}`, "", func(w *webhooks.Webhook) { w.Filters = nil }},
		{"filters replaced, not merged", `{"filters":{"stack_id":"s"}}`, "", func(w *webhooks.Webhook) {
			s := "s"
			w.Filters = &webhooks.Filters{StackID: &s}
		}},
		{"max_retries null resets to default", `{"max_retries":null}`, "", func(w *webhooks.Webhook) { w.MaxRetries = webhooks.DefaultMaxRetries }},
		{"timeout null resets to default", `{"timeout_seconds":null}`, "", func(w *webhooks.Webhook) { w.TimeoutSeconds = webhooks.DefaultTimeoutSeconds }},
		{"enabled false", `{"enabled":false}`, "", func(w *webhooks.Webhook) { w.Enabled = false }},
		{"headers replaced, not merged", `{"headers":{"x-new":"1"}}`, "", func(w *webhooks.Webhook) {
			w.Headers = map[string]string{"X-New": "1"}
		}},
		{"headers null clears", `{"headers":null}`, "", func(w *webhooks.Webhook) { w.Headers = nil }},
		{"headers {} clears", `{"headers":{}}`, "", func(w *webhooks.Webhook) { w.Headers = nil }},
		{"same rules: CRLF header value", `{"headers":{"X-A":"v\r\nX-Injected: 1"}}`, "headers.X-A", nil},
		{"same rules: hop-by-hop header", `{"headers":{"connection":"close"}}`, "headers.connection", nil},
		{"several clears at once", `{"description":null,"auth_header":null,"target_labels":null,"filters":null}`, "", func(w *webhooks.Webhook) {
			w.Description, w.AuthHeader, w.TargetLabels, w.Filters = "", "", nil, nil
		}},
		{"secret refused", `{"secret":` + quote(secretBytes(32)) + `}`, "secret", nil},
		{"secret null refused too", `{"secret":null}`, "secret", nil},
		{"secret refused before other fields", `{"name":"","secret":"x"}`, "secret", nil},
		{"name null", `{"name":null}`, "name", nil},
		{"url null", `{"url":null}`, "url", nil},
		{"event_types null", `{"event_types":null}`, "event_types", nil},
		{"enabled null", `{"enabled":null}`, "enabled", nil},
		{"same rules: bad url", `{"url":"ftp://x"}`, "url", nil},
		{"same rules: empty event types", `{"event_types":[]}`, "event_types", nil},
		{"same rules: CRLF auth header", `{"auth_header":"a\r\nb"}`, "auth_header", nil},
		{"same rules: labels", `{"target_labels":["bad label:x"]}`, "target_labels", nil},
		{"same rules: filters key", `{"filters":{"zone":"a"}}`, "filters.zone", nil},
		{"same rules: max_retries", `{"max_retries":11}`, "max_retries", nil},
		{"same rules: timeout", `{"timeout_seconds":0}`, "timeout_seconds", nil},
		{"unknown field", `{"status":"paused"}`, "status", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := base(t)
			want := base(t)
			err := applyJSON(w, c.body, false)
			if got := fieldName(err); got != c.field {
				t.Fatalf("error %v (field %q), want field %q", err, got, c.field)
			}
			if err != nil {
				return
			}
			if c.change != nil {
				c.change(want)
			}
			if !reflect.DeepEqual(w, want) {
				t.Errorf("got  %+v\nwant %+v", w, want)
			}
			if w.Secret != secret || w.ID != want.ID || !w.CreatedAt.Equal(want.CreatedAt) {
				t.Errorf("secret, id or created_at changed by an update")
			}
		})
	}
}

func TestRedactURLTable(t *testing.T) {
	for _, c := range []struct {
		in, want string
	}{
		{"https://hooks.example.test/in", "https://hooks.example.test"},
		{"https://user:pass@hooks.example.test/in", "https://hooks.example.test"},
		{"https://user@hooks.example.test", "https://hooks.example.test"},
		{"https://hooks.example.test:8443/a/b?token=s3cret#frag", "https://hooks.example.test:8443"},
		{"http://127.0.0.1:9000/hook?x=1", "http://127.0.0.1:9000"},
		{"http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080"},
		{"HTTPS://Hooks.Example.Test/P", "https://Hooks.Example.Test"},
		{"https://hooks.example.test?only=query", "https://hooks.example.test"},
		{"https://hooks.example.test#only-fragment", "https://hooks.example.test"},
		{"https://hooks.example.test/path;params", "https://hooks.example.test"},
		{"/relative/path", ""},
		{"not a url", ""},
		{"", ""},
		{"https://", ""},
		{"http://bad host/", ""},
	} {
		got := webhooks.RedactURL(c.in)
		if got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
		for _, secret := range []string{"pass", "s3cret", "token", "frag", "/in", "user"} {
			if strings.Contains(c.in, secret) && strings.Contains(got, secret) {
				t.Errorf("RedactURL(%q) = %q keeps %q", c.in, got, secret)
			}
		}
	}
}

func TestValidateURLNamesTheField(t *testing.T) {
	for _, raw := range []string{"", "ftp://x", "https://", strings.Repeat("h", 3000), "https://x/ y"} {
		if err := webhooks.ValidateURL("rotate.url", raw); fieldName(err) != "rotate.url" {
			t.Errorf("ValidateURL(%.30q) = %v", raw, err)
		}
	}
	if err := webhooks.ValidateURL("url", "https://hooks.example.test/in"); err != nil {
		t.Errorf("valid url: %v", err)
	}
}

func TestSecretsDuringOverlap(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name    string
		prev    string
		expires time.Time
		want    int
	}{
		{"no previous secret", "", now.Add(time.Hour), 1},
		{"overlap running", "whsec_prev", now.Add(time.Second), 2},
		{"overlap ends now", "whsec_prev", now, 1},
		{"overlap over", "whsec_prev", now.Add(-time.Second), 1},
	} {
		w := &webhooks.Webhook{Secret: "whsec_cur", PrevSecret: c.prev, PrevSecretExpiresAt: c.expires}
		got := w.Secrets(now)
		if len(got) != c.want || got[0] != "whsec_cur" || (c.want == 2 && got[1] != "whsec_prev") {
			t.Errorf("%s: Secrets = %q", c.name, got)
		}
	}
}

// A port outside 1..65535 can never be dialled, so every delivery would fail
// with a (retryable) connection error.
func TestValidateURLPortRange(t *testing.T) {
	var accepted []string
	for _, raw := range []string{"https://hooks.example.test:0/", "https://hooks.example.test:65536/", "https://hooks.example.test:99999/"} {
		if webhooks.ValidateURL("url", raw) == nil {
			accepted = append(accepted, raw)
		}
	}
	for _, raw := range []string{"https://hooks.example.test:1/", "https://hooks.example.test:65535/"} {
		if err := webhooks.ValidateURL("url", raw); err != nil {
			t.Errorf("ValidateURL(%q): %v", raw, err)
		}
	}
	if len(accepted) > 0 {
		t.Errorf("regression: ValidateURL accepts ports outside 1..65535: %q", accepted)
	}
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
		if got := webhooks.Covers(granted, c.set); got != c.want {
			t.Errorf("Covers(%v, %v) = %v", granted, c.set, got)
		}
	}
	if webhooks.Covers(nil, []string{"env:production"}) {
		t.Errorf("an empty grant covers a set")
	}
}

// FuzzDecodeBody: no body panics; an accepted webhook obeys every rule.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		createBody(nil),
		`{"name":"n","url":"http://[::1]:80/x","event_types":["*","deployment.*"],"target_labels":["a:b","a:b"]}`,
		`{"name":"n","url":"https://e.test","event_types":["alert.triggered"],"filters":{"labels":{"k":"v"},"agent_id":null}}`,
		`{"name":"\u0000","url":"https://e.test","event_types":["*"]}`,
		`{"name":"n","url":"https://e.test","event_types":["*"],"auth_header":"\u2028"}`,
		`{"name":"n","url":"https://e.test","event_types":["*"],"max_retries":1e3}`,
		`{"name":"n","url":"https://e.test","event_types":["*"],"secret":"whsec_====="}`,
		`{"name":"n","name":"m","url":"https://e.test","event_types":["*"]}`,
		`{"name":"n","url":"https://e.test","event_types":["*"],"headers":{"DD-API-KEY":"k","x-a":"1\r\nHost: evil"}}`,
		`{"name":"n","url":"https://e.test","event_types":["*"],"headers":{"transfer-encoding":"chunked"}}`,
		`{`, `[]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, err := webhooks.DecodeBody(b)
		if err != nil {
			return
		}
		w := withDefaults()
		if err := webhooks.Apply(w, raw, true, defaultCatalog); err != nil {
			return
		}
		checkInvariants(t, w)
	})
}

// Severity keys are event type patterns of the catalogue: a key matching no
// event type (a typo such as "alrt.*", a bare family, an unknown type) is
// refused naming the key, on create and on update, whatever the format
// that takes severities.
func TestApplySeverityPatterns(t *testing.T) {
	pd := func(severity string) string {
		return `{"routing_key":"R0123456789abcdef0123456789ABCDE","severity":` + severity + `}`
	}
	for _, c := range []struct {
		name, format, options string
		field                 string // "" = accepted
	}{
		{"every pattern kind", `"pagerduty"`, pd(`{"alert.triggered":"critical","deployment.*":"error","*":"info"}`), ""},
		{"the internal test type", `"datadog"`, `{"severity":{"webhook.test":"info","webhook.*":"info"}}`, ""},
		{"a family typo", `"pagerduty"`, pd(`{"alrt.*":"critical"}`), "format_options.severity.alrt.*"},
		{"a type typo", `"alertmanager"`, `{"severity":{"alert.trigered":"critical"}}`, "format_options.severity.alert.trigered"},
		{"a bare family", `"datadog"`, `{"severity":{"alert":"error"}}`, "format_options.severity.alert"},
		{"a type with a wildcard inside", `"datadog"`, `{"severity":{"alert.trig*":"error"}}`, "format_options.severity.alert.trig*"},
		{"the empty key", `"datadog"`, `{"severity":{"":"error"}}`, "format_options.severity."},
		{"the first bad key in order", `"datadog"`, `{"severity":{"zz.*":"error","aa.*":"error","alert.*":"info"}}`, "format_options.severity.aa.*"},
		{"a bad value on a good key first", `"datadog"`, `{"severity":{"alert.*":"fatal"}}`, "format_options.severity.alert.*"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := withDefaults()
			err := applyJSON(w, createBody(map[string]string{"format": c.format, "format_options": c.options}), true)
			if got := fieldName(err); got != c.field {
				t.Errorf("create: error %v (field %q), want field %q", err, got, c.field)
			}
			w = withDefaults()
			if err := applyJSON(w, createBody(nil), true); err != nil {
				t.Fatal(err)
			}
			err = applyJSON(w, `{"format":`+c.format+`,"format_options":`+c.options+`}`, false)
			if got := fieldName(err); got != c.field {
				t.Errorf("update: error %v (field %q), want field %q", err, got, c.field)
			}
		})
	}
}

// filter: compiled when applied; a refusal names the field and the
// position of the first problem; null, "" and spaces clear it; omitted it
// stays.
func TestApplyFilter(t *testing.T) {
	create := `{"name":"n","url":"https://hooks.example.test/in","event_types":["*"],"filter":%s}`
	w := withDefaults()
	if err := applyJSON(w, fmt.Sprintf(create, `"data.severity in [\"critical\",\"high\"] && labels.env == \"prod\""`), true); err != nil {
		t.Fatalf("valid filter refused: %v", err)
	}
	if w.Filter != `data.severity in ["critical","high"] && labels.env == "prod"` {
		t.Errorf("filter = %q", w.Filter)
	}
	for _, c := range []struct {
		body         string
		line, column int
		contains     string
	}{
		{`{"filter":"data.severity =="}`, 1, 17, "1:17: Syntax error"},
		{`{"filter":"event_type == \"a\" &&\n  nope"}`, 2, 3, "2:3: undeclared reference to 'nope'"},
		{`{"filter":"event_type"}`, 0, 0, "must evaluate to a bool"},
		{`{"filter":1}`, 0, 0, "must be a string"},
		{`{"filter":"` + strings.Repeat("a", 4097) + `"}`, 0, 0, "at most 4096 bytes"},
	} {
		before := w.Filter
		err := applyJSON(w, c.body, false)
		var fe *webhooks.FieldError
		if !errors.As(err, &fe) || fe.Field != "filter" {
			t.Errorf("%.60s: error %v, want a refusal of filter", c.body, err)
			continue
		}
		if fe.Line != c.line || fe.Column != c.column || !strings.Contains(fe.Message, c.contains) {
			t.Errorf("%.60s: %d:%d %q, want %d:%d and %q", c.body, fe.Line, fe.Column, fe.Message, c.line, c.column, c.contains)
		}
		if w.Filter != before {
			t.Errorf("%.60s: a refused filter changed the webhook's", c.body)
		}
	}
	if err := applyJSON(w, `{"name":"renamed"}`, false); err != nil || w.Filter == "" {
		t.Errorf("an update without filter cleared it: %v", err)
	}
	for _, clear := range []string{`null`, `""`, `"  "`} {
		w.Filter = "true"
		if err := applyJSON(w, `{"filter":`+clear+`}`, false); err != nil || w.Filter != "" {
			t.Errorf("filter %s: %v, filter %q; want cleared", clear, err, w.Filter)
		}
	}
}
