package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const webhookJSON = `{"id":"11111111-1111-4111-8111-111111111111","name":"billing","description":"","url_redacted":"https://example.com/hooks",
"has_url":true,"has_auth_header":false,"has_headers":false,"header_names":[],"event_types":["deployment.*","alert.triggered"],
"target_labels":[],"filters":null,"enabled":true,"status":"active","max_retries":8,"timeout_seconds":10,"format":"standard",
"format_options":null,"has_routing_key":false,"total_delivered":12,"total_failed":3,"success_rate":80,"last_delivery_at":null,
"created_at":"2026-11-30T10:00:00.123Z","updated_at":"2026-11-30T10:00:00.123Z"}`

func webhookWith(id, name string) string {
	s := strings.Replace(webhookJSON, "11111111-1111-4111-8111-111111111111", id, 1)
	return strings.Replace(s, `"billing"`, `"`+name+`"`, 1)
}

func TestWebhooksListTableAndJSON(t *testing.T) {
	f := newFakeAPI(t)
	page := `{"data":[` + webhookJSON + `,` + webhookWith("22222222-2222-4222-8222-222222222222", `a\tb\nc\u001b[2J`) + `],"next_cursor":"CUR1"}`
	f.answer("GET /api/v1/webhooks", 200, page)
	r := f.run(t, "", nil, "webhooks", "list", "--limit", "2")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got := f.last(); got.Query != "limit=2" || got.Auth != "Bearer k" {
		t.Errorf("request %+v", got)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows:\n%s", r.stdout)
	}
	// Columns are aligned: every row's STATUS starts where the header's does.
	col := strings.Index(lines[0], "STATUS")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[col:], "active") {
			t.Errorf("column STATUS not aligned:\n%s", r.stdout)
		}
	}
	if !strings.Contains(lines[1], "deployment.*,alert.triggered") || !strings.Contains(lines[1], "80%") {
		t.Errorf("row: %q", lines[1])
	}
	// A name with a tab, a newline and an escape sequence stays in its cell.
	if strings.Contains(r.stdout, "\x1b") || !strings.Contains(lines[2], "a b c?[2J") {
		t.Errorf("control characters reached the table: %q", lines[2])
	}
	if !strings.Contains(r.stderr, "--cursor CUR1") {
		t.Errorf("no hint of the next page: %q", r.stderr)
	}
	// -o json is the API's answer as it came.
	r = f.run(t, "", nil, "webhooks", "list", "-o", "json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != page {
		t.Errorf("-o json: %d %q", r.code, r.stdout)
	}
}

func TestListAllFollowsCursors(t *testing.T) {
	f := newFakeAPI(t)
	f.handle("GET /api/v1/webhooks", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("cursor") {
		case "":
			writeJSON(w, 200, `{"data":[`+webhookJSON+`],"next_cursor":"P2"}`)
		case "P2":
			writeJSON(w, 200, `{"data":[`+webhookWith("22222222-2222-4222-8222-222222222222", "second")+`],"next_cursor":null}`)
		default:
			writeJSON(w, 400, `{"code":"bad_request","message":"malformed cursor","details":{},"request_id":"R"}`)
		}
	})
	r := f.run(t, "", nil, "webhooks", "list", "--all", "-o", "json")
	var page struct {
		Data []struct {
			Name string `json:"name"`
		} `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &page) != nil || len(page.Data) != 2 || page.Data[1].Name != "second" || page.NextCursor != nil {
		t.Errorf("--all -o json: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = f.run(t, "", nil, "webhooks", "list", "--all")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || r.stderr != "" {
		t.Errorf("--all: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestErrorsAndExitCodes(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /api/v1/webhooks/nope", 404, `{"code":"not_found","message":"webhook not found","details":{},"request_id":"RID1"}`)
	f.answer("POST /api/v1/webhooks", 422, `{"code":"invalid_field","message":"url must be an absolute http or https URL","details":{"field":"url"},"request_id":"RID2"}`)
	f.answer("GET /api/v1/agents", 502, `<html>bad gateway</html>`)

	r := f.run(t, "", nil, "webhooks", "get", "nope")
	if r.code != ExitError || r.stderr != "Error: webhook not found (not_found, HTTP 404) [request RID1]\n" || r.stdout != "" {
		t.Errorf("404: %d %q", r.code, r.stderr)
	}
	r = f.run(t, "", nil, "webhooks", "create", "--name", "x", "--url", "ftp://x", "--events", "*")
	if r.code != ExitError || !strings.Contains(r.stderr, "url must be an absolute http or https URL (invalid_field, HTTP 422)") {
		t.Errorf("422: %d %q", r.code, r.stderr)
	}
	// What is not the envelope (a proxy's page) still says what happened.
	r = f.run(t, "", nil, "agents", "list")
	if r.code != ExitError || !strings.Contains(r.stderr, "HTTP 502: Bad Gateway: <html>bad gateway</html>") {
		t.Errorf("502: %d %q", r.code, r.stderr)
	}
	// Usage errors: 2, with a pointer to --help; nothing is sent.
	before := len(f.requests())
	for _, args := range [][]string{
		{"webhooks", "get"},
		{"webhooks", "frobnicate"},
		{"webhooks", "list", "--bogus"},
		{"-o", "yaml", "webhooks", "list"},
		{"deliveries", "list", "w", "--status", "lost"},
		{"events", "send", "stack.created", "--data", "{not json"},
		{"events", "send", "stack.created", "--label", "novalue"},
		{"webhooks", "create", "--name", "x"},
		{"webhooks", "update", "w"},
		{"replays", "start", "w", "--since", "yesterday"},
		{"replays", "start", "w", "--since", "1h", "--until", "2h"},
		{"listen", "--secret", "whsec_x", "--create"},
		{"listen", "--events", "*"},
	} {
		r := f.run(t, "", nil, args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("%v: exit %d, want %d: %q", args, r.code, ExitUsage, r.stderr)
		}
	}
	if n := len(f.requests()); n != before {
		t.Errorf("usage errors sent %d requests", n-before)
	}
	// No key anywhere: a usage error naming where a key can come from.
	r = f.run(t, "", map[string]string{EnvAPIKey: ""}, "webhooks", "list")
	if r.code != ExitUsage || !strings.Contains(r.stderr, EnvAPIKey) {
		t.Errorf("no key: %d %q", r.code, r.stderr)
	}
	// Nothing listening: exit 3.
	dead := newFakeAPI(t)
	dead.srv.Close()
	r = dead.run(t, "", nil, "webhooks", "list")
	if r.code != ExitUnreachable || !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("unreachable: %d %q", r.code, r.stderr)
	}
	// --help and --version succeed.
	if r := f.run(t, "", nil, "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "hermodctl version ") {
		t.Errorf("--version: %d %q", r.code, r.stdout)
	}
	if r := f.run(t, "", nil, "webhooks", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Available Commands") {
		t.Errorf("--help: %d %q", r.code, r.stdout)
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	xdg := filepath.Join(dir, "xdg")
	if err := os.MkdirAll(filepath.Join(xdg, "hermod"), 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(xdg, "hermod", "hermodctl.json")
	if err := os.WriteFile(file, []byte(`{"server":"http://file:1","api_key":"file-key"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(kv ...string) func(string) string {
		m := map[string]string{"XDG_CONFIG_HOME": xdg, "HOME": dir}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cases := []struct {
		name                string
		flagServer, flagKey string
		getenv              func(string) string
		server, serverFrom  string
		key, keyFrom        string
	}{
		{"flags first", "http://flag:1", "flag-key", env(EnvServer, "http://env:1", EnvAPIKey, "env-key"), "http://flag:1", "--server", "flag-key", "--api-key"},
		{"then env", "", "", env(EnvServer, "http://env:1", EnvAPIKey, "env-key"), "http://env:1", EnvServer, "env-key", EnvAPIKey},
		{"then file", "", "", env(), "http://file:1", file, "file-key", file},
		{"mixed", "", "flag-key", env(EnvServer, "http://env:1"), "http://env:1", EnvServer, "flag-key", "--api-key"},
		{"default", "", "", func(k string) string { return map[string]string{"HOME": dir}[k] }, DefaultServer, "default", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := resolve(c.flagServer, c.flagKey, "", c.getenv)
			if err != nil {
				t.Fatal(err)
			}
			if s.Server != c.server || s.ServerFrom != c.serverFrom || s.APIKey != c.key || s.APIKeyFrom != c.keyFrom {
				t.Errorf("got %+v", s)
			}
		})
	}
	// HOME/.config is the file when XDG_CONFIG_HOME is unset.
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".config", "hermod"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".config", "hermod", "hermodctl.json"), []byte(`{"api_key":"home-key"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := resolve("", "", "", func(k string) string { return map[string]string{"HOME": home}[k] }); err != nil || s.APIKey != "home-key" {
		t.Errorf("HOME/.config: %+v %v", s, err)
	}
	// --config and HERMODCTL_CONFIG name the file; a named file must exist and be well-formed.
	other := filepath.Join(dir, "other.json")
	if err := os.WriteFile(other, []byte(`{"api_key":"other-key"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := resolve("", "", other, env()); err != nil || s.APIKey != "other-key" {
		t.Errorf("--config: %+v %v", s, err)
	}
	if s, err := resolve("", "", "", env(EnvConfig, other)); err != nil || s.APIKey != "other-key" {
		t.Errorf("%s: %+v %v", EnvConfig, s, err)
	}
	if _, err := resolve("", "", filepath.Join(dir, "missing.json"), env()); err == nil {
		t.Error("a missing --config file was accepted")
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"apikey":"typo"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := resolve("", "", bad, env()); err == nil || !strings.Contains(err.Error(), "apikey") {
		t.Errorf("an unknown field was accepted: %v", err)
	}
	// A key in a file others can read is worth a warning.
	open := filepath.Join(dir, "open.json")
	if err := os.WriteFile(open, []byte(`{"api_key":"k"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := resolve("", "", open, env()); err != nil || len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "chmod 600") {
		t.Errorf("no warning for a readable key file: %+v %v", s, err)
	}
	// Through the command line: the file's server is used, the flag's key wins.
	f := newFakeAPI(t)
	f.answer("GET /api/v1/event-types", 200, `{"data":[{"type":"stack.created","description":"A stack was created"}]}`)
	if err := os.WriteFile(file, []byte(`{"server":"`+f.srv.URL+`","api_key":"file-key"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runWith(t.Context(), Env{Args: []string{"--api-key", "flag-key", "event-types"}, Getenv: env()})
	if r.code != 0 || f.last().Auth != "Bearer flag-key" || !regexp.MustCompile(`(?m)^stack\.created\s+A stack was created$`).MatchString(r.stdout) {
		t.Errorf("event-types: %d %q %q %+v", r.code, r.stdout, r.stderr, f.last())
	}
}

func TestWebhookBodies(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("POST /api/v1/webhooks", 201, webhookJSON)
	f.answer("PATCH /api/v1/webhooks/w1", 200, webhookJSON)
	r := f.run(t, "", nil, "webhooks", "create", "--name", "billing", "--url", "https://example.com/hooks",
		"--events", "deployment.*,alert.triggered", "--header", "X-A=1", "--filter-label", "env=prod", "--max-retries", "3",
		"--format", "slack", "--format-options", `{"channel":"#ops"}`, "--enabled=false")
	if r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	b, _ := json.Marshal(f.lastBody())
	want := `{"enabled":false,"event_types":["deployment.*","alert.triggered"],"filters":{"labels":{"env":"prod"}},"format":"slack",` +
		`"format_options":{"channel":"#ops"},"headers":{"X-A":"1"},"max_retries":3,"name":"billing","url":"https://example.com/hooks"}`
	if string(b) != want {
		t.Errorf("create body\n%s\nwant\n%s", b, want)
	}
	if !regexp.MustCompile(`(?m)^id:\s+11111111-1111-4111-8111-111111111111$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^success rate:\s+80%$`).MatchString(r.stdout) {
		t.Errorf("create output:\n%s", r.stdout)
	}
	// From a file on stdin, a flag overriding a field.
	r = f.run(t, `{"name":"from-file","url":"https://x.example","event_types":["*"]}`, nil, "webhooks", "create", "-f", "-", "--name", "flag")
	if b, _ := json.Marshal(f.lastBody()); r.code != 0 || string(b) != `{"event_types":["*"],"name":"flag","url":"https://x.example"}` {
		t.Errorf("create -f -: %d %s %s", r.code, b, r.stderr)
	}
	// Update sends only the flags given (PATCH); "" clears an optional field.
	r = f.run(t, "", nil, "webhooks", "update", "w1", "--description", "", "--timeout", "5")
	if b, _ := json.Marshal(f.lastBody()); r.code != 0 || f.last().Method != "PATCH" || string(b) != `{"description":null,"timeout_seconds":5}` {
		t.Errorf("update: %d %s %s", r.code, b, r.stderr)
	}
}

func TestWebhookActions(t *testing.T) {
	f := newFakeAPI(t)
	paused := strings.Replace(strings.Replace(webhookJSON, `"enabled":true`, `"enabled":false`, 1), `"status":"active"`, `"status":"paused"`, 1)
	f.answer("POST /api/v1/webhooks/w1/pause", 200, paused)
	f.answer("POST /api/v1/webhooks/w1/resume", 200, webhookJSON)
	f.answer("DELETE /api/v1/webhooks/w1", 204, "")
	f.answer("POST /api/v1/webhooks/w1/test", 200, `{"success":false,"status_code":501,"duration_ms":3,"error":"HTTP 501: Not Implemented","response_excerpt":"nope","delivery_id":"d1","by":"broker"}`)
	f.answer("GET /api/v1/webhooks/w1/secret", 200, `{"secret":"whsec_abc","previous_secret_expires_at":null}`)
	f.answer("POST /api/v1/webhooks/w1/secret/rotate", 200, `{"secret":"whsec_new","previous_secret_expires_at":"2026-12-01T10:00:00Z"}`)
	f.answer("GET /api/v1/webhooks/w1/stats", 200, `{"webhook_id":"w1","window":"30m0s","data":[
		{"minute":"2026-11-30T10:00:00Z","success":0,"failed":0,"dead":0,"p50_ms":null,"p99_ms":null},
		{"minute":"2026-11-30T10:01:00Z","success":5,"failed":1,"dead":0,"p50_ms":12,"p99_ms":40}]}`)
	f.answer("POST /api/v1/webhooks/w1/preview", 200, `{"format":"slack","content_type":"application/json","event":{},"body":{"text":"hi"}}`)
	f.answer("POST /api/v1/webhooks/preview", 200, `{"format":"teams","content_type":"application/json","event":{},"body":{"text":"unsaved"}}`)

	if r := f.run(t, "", nil, "webhooks", "pause", "w1"); r.code != 0 || !regexp.MustCompile(`(?m)^status:\s+paused$`).MatchString(r.stdout) {
		t.Errorf("pause: %d %q", r.code, r.stdout)
	}
	if r := f.run(t, "", nil, "webhooks", "resume", "w1", "-o", "json"); r.code != 0 || !json.Valid([]byte(r.stdout)) {
		t.Errorf("resume: %d %q", r.code, r.stdout)
	}
	if r := f.run(t, "", nil, "webhooks", "delete", "w1"); r.code != 0 || r.stdout != "deleted webhook w1\n" || f.last().Method != "DELETE" {
		t.Errorf("delete: %d %q", r.code, r.stdout)
	}
	// A failed test delivery shows the answer and exits 1.
	if r := f.run(t, "", nil, "webhooks", "test", "w1"); r.code != ExitError || !strings.Contains(r.stdout, "HTTP 501: Not Implemented") {
		t.Errorf("test: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := f.run(t, "", nil, "webhooks", "secret", "get", "w1"); r.code != 0 || !regexp.MustCompile(`(?m)^secret:\s+whsec_abc$`).MatchString(r.stdout) {
		t.Errorf("secret get: %d %q", r.code, r.stdout)
	}
	if r := f.run(t, "", nil, "webhooks", "secret", "rotate", "w1", "--overlap", "1h"); r.code != 0 || string(f.last().Body) != `{"overlap_seconds":3600}` ||
		!strings.Contains(r.stdout, "2026-12-01 10:00:00Z") {
		t.Errorf("secret rotate: %d %q %s", r.code, r.stdout, f.last().Body)
	}
	if r := f.run(t, "", nil, "webhooks", "secret", "rotate", "w1"); r.code != 0 || string(f.last().Body) != `{}` {
		t.Errorf("secret rotate without flags sent %s", f.last().Body)
	}
	r := f.run(t, "", nil, "webhooks", "stats", "w1", "--window", "30m")
	if r.code != 0 || f.last().Query != "window=30m" || strings.Count(r.stdout, "\n") != 3 ||
		!regexp.MustCompile(`(?m)^2026-11-30 10:01:00Z\s+5\s+1\s+0\s+12\s+40$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^total \(30m0s\)\s+5\s+1\s+0`).MatchString(r.stdout) {
		t.Errorf("stats: %d\n%s", r.code, r.stdout)
	}
	r = f.run(t, "", nil, "webhooks", "preview", "w1", "--event-type", "alert.triggered", "--data", `{"name":"disk"}`)
	if b, _ := json.Marshal(f.lastBody()); r.code != 0 || string(b) != `{"event":{"data":{"name":"disk"},"event_type":"alert.triggered"}}` ||
		!strings.Contains(r.stdout, "\"text\": \"hi\"") {
		t.Errorf("preview: %d %s %q", r.code, b, r.stdout)
	}
	file := filepath.Join(t.TempDir(), "w.json")
	if err := os.WriteFile(file, []byte(`{"format":"teams","event_types":["*"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r = f.run(t, "", nil, "webhooks", "preview", "--webhook-file", file, "--event-type", "stack.created")
	if b, _ := json.Marshal(f.lastBody()); r.code != 0 || string(b) != `{"event_type":"stack.created","webhook":{"event_types":["*"],"format":"teams"}}` {
		t.Errorf("preview unsaved: %d %s %q", r.code, b, r.stderr)
	}
}

func TestDeliveries(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /api/v1/webhooks/w1/deliveries", 200, `{"data":[{"id":"d1","webhook_id":"w1","event_id":"e1","event_type":"stack.created",
		"status":"dead","attempts":3,"next_retry_at":null,"last_status_code":500,"last_error":"HTTP 500: boom","dead_reason":"exhausted",
		"target_labels":[],"delivered_by":"broker","created_at":"2026-11-30T10:00:00Z","updated_at":"2026-11-30T10:00:00Z","completed_at":null,"payload_size":10}],"next_cursor":null}`)
	f.answer("GET /api/v1/deliveries/d1", 200, `{"id":"d1","webhook_id":"w1","event_id":"e1","event_type":"stack.created","status":"dead","attempts":1,
		"next_retry_at":null,"last_status_code":500,"last_error":"HTTP 500: boom","target_labels":[],"delivered_by":null,
		"created_at":"2026-11-30T10:00:00Z","updated_at":"2026-11-30T10:00:00Z","completed_at":null,"payload_size":10,
		"payload":{"id":"e1","event_type":"stack.created","data":{"stack_id":"s1"}},
		"attempt_history":[{"attempt":1,"epoch":0,"started_at":"2026-11-30T10:00:01Z","status":"failed","status_code":500,"duration_ms":7,"payload_size":10,"error":"HTTP 500: boom","by":"broker","response":"boom"}]}`)
	f.answer("POST /api/v1/deliveries/d1/retry", 202, `{"id":"d1","status":"pending"}`)
	r := f.run(t, "", nil, "deliveries", "list", "w1", "--status", "dead")
	if r.code != 0 || f.last().Query != "status=dead" || !strings.Contains(r.stdout, "exhausted: HTTP 500: boom") {
		t.Errorf("list: %d %q %+v", r.code, r.stdout, f.last())
	}
	r = f.run(t, "", nil, "deliveries", "get", "d1")
	if r.code != 0 || !strings.Contains(r.stdout, "attempts:\nEPOCH.N") || !strings.Contains(r.stdout, `"stack_id": "s1"`) ||
		!regexp.MustCompile(`(?m)^0\.1\s+2026-11-30 10:00:01Z\s+failed\s+500\s+7\s+broker\s+HTTP 500: boom$`).MatchString(r.stdout) {
		t.Errorf("get:\n%s", r.stdout)
	}
	if r := f.run(t, "", nil, "deliveries", "retry", "d1"); r.code != 0 || !regexp.MustCompile(`(?m)^status:\s+pending$`).MatchString(r.stdout) {
		t.Errorf("retry: %d %q", r.code, r.stdout)
	}
}

func TestEventsSend(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("POST /api/v1/events", 202, `{"id":"ev-9","duplicate":false}`)
	file := filepath.Join(t.TempDir(), "data.json")
	if err := os.WriteFile(file, []byte(`{"from":"file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		stdin string
		args  []string
		body  string
	}{
		{"", []string{"--data", `{"deployment_id":"d-1"}`}, `{"event_type":"deployment.applied","data":{"deployment_id":"d-1"}}`},
		{"", []string{"--data", "@" + file, "--label", "env=prod", "-l", "team=a", "--id", "my-id"},
			`{"event_type":"deployment.applied","data":{"from":"file"},"id":"my-id","labels":{"env":"prod","team":"a"}}`},
		{`{"from":"stdin"}` + "\n", []string{"--data", "-"}, `{"event_type":"deployment.applied","data":{"from":"stdin"}}`},
		{"", nil, `{"event_type":"deployment.applied","data":{}}`},
	} {
		r := f.run(t, c.stdin, nil, append([]string{"events", "send", "deployment.applied"}, c.args...)...)
		if r.code != 0 || string(f.last().Body) != c.body || !regexp.MustCompile(`(?m)^id:\s+ev-9$`).MatchString(r.stdout) {
			t.Errorf("%v: %d %s %q %q", c.args, r.code, f.last().Body, r.stdout, r.stderr)
		}
	}
	r := f.run(t, "", nil, "events", "send", "deployment.applied", "-o", "json")
	if r.code != 0 || r.stdout != `{"id":"ev-9","duplicate":false}`+"\n" {
		t.Errorf("-o json: %q", r.stdout)
	}
}

func TestAgents(t *testing.T) {
	f := newFakeAPI(t)
	agent := `{"id":"edge-1","labels":["eu","gpu"],"status":"INACTIVE","version":null,"last_seen_at":null,"in_flight":0,
		"created_at":"2026-11-30T10:00:00Z","updated_at":"2026-11-30T10:00:00Z"`
	f.answer("POST /api/v1/agents", 201, agent+`,"credentials":{"agent_id":"edge-1","token":"hagt_secret"}}`)
	f.answer("GET /api/v1/agents", 200, `{"data":[`+agent+`}],"next_cursor":null}`)
	f.answer("GET /api/v1/agents/edge-1", 200, agent+`}`)
	f.answer("PUT /api/v1/agents/edge-1", 200, agent+`}`)
	f.answer("DELETE /api/v1/agents/edge-1", 204, "")
	r := f.run(t, "", nil, "agents", "create", "edge-1", "--label", "eu,gpu")
	if r.code != 0 || string(f.last().Body) != `{"id":"edge-1","labels":["eu","gpu"]}` ||
		!regexp.MustCompile(`(?m)^token:\s+hagt_secret$`).MatchString(r.stdout) || !strings.Contains(r.stderr, "shown this once") {
		t.Errorf("create: %d %s %q %q", r.code, f.last().Body, r.stdout, r.stderr)
	}
	if r := f.run(t, "", nil, "agents", "list"); r.code != 0 || !regexp.MustCompile(`(?m)^edge-1\s+INACTIVE\s+eu,gpu\s+-\s+0\s+-$`).MatchString(r.stdout) {
		t.Errorf("list:\n%s", r.stdout)
	}
	if r := f.run(t, "", nil, "agents", "get", "edge-1"); r.code != 0 || strings.Contains(r.stdout, "token") {
		t.Errorf("get: %q", r.stdout)
	}
	if r := f.run(t, "", nil, "agents", "update", "edge-1", "-l", "eu"); r.code != 0 || f.last().Method != "PUT" || string(f.last().Body) != `{"labels":["eu"]}` {
		t.Errorf("update: %d %s", r.code, f.last().Body)
	}
	if r := f.run(t, "", nil, "agents", "delete", "edge-1"); r.code != 0 || r.stdout != "deleted agent edge-1\n" {
		t.Errorf("delete: %d %q", r.code, r.stdout)
	}
	if r := f.run(t, "", nil, "agents", "create", "edge-2"); r.code != ExitUsage {
		t.Errorf("create without labels: %d", r.code)
	}
}

func TestCompletion(t *testing.T) {
	f := newFakeAPI(t)
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		r := f.run(t, "", nil, "completion", sh)
		if r.code != 0 || !strings.Contains(r.stdout, "hermodctl") {
			t.Errorf("completion %s: %d %q", sh, r.code, r.stderr)
		}
	}
}
