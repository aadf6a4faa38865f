package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/connect"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/ops"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// The hostile-input suite: every route refuses a request without valid
// credentials, and every body-taking route refuses every malformed body with
// a 4xx and the JSON error envelope, within a deadline and a bounded
// allocation. docs/api.md ("Hostile input") says what is covered.

const hostileKey = "hostile-admin-key-0123456789"

// hostileRequestTimeout is how long one request may take before the suite
// calls it a hang.
const hostileRequestTimeout = 10 * time.Second

// hostile is the whole REST server, built as hermod-api builds it (Build on
// real connections: a real JetStream and a real redis-server), with one of
// each object the routes' path parameters name.
type hostile struct {
	t       *testing.T
	s       *Server
	webhook string // a webhook's id
	agent   string // an agent's id
	dead    string // a dead delivery's id (retryable)
	replay  string // a replay's id
	cookie  string // a web session's cookie
}

func startHostile(t *testing.T) *hostile {
	t.Helper()
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	env := map[string]string{
		"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(), "HERMOD_ADMIN_KEYS": hostileKey,
		"HERMOD_ENCRYPTION_KEY": strings.Repeat("ab", 32), "HERMOD_API_ADDR": "127.0.0.1:0",
	}
	cfg, err := LoadConfig(envconfig.NewFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conns, err := connect.Open(ctx, "hermod-api", cfg.Common, cfg.Box, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	health := ops.NewHealth(conns.Checks(), zerolog.Nop())
	health.SetReady()
	s, err := Build(cfg, conns, nil, health, metrics.New("test"), zerolog.Nop())
	if err != nil {
		conns.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.notifier.Close()
		conns.Close()
	})
	h := &hostile{t: t, s: s}

	// The objects the routes' path parameters point at.
	code, body := h.call("POST", "/api/v1/webhooks", bearer(hostileKey),
		[]byte(`{"name":"target","url":"https://127.0.0.1:9/hook","event_types":["*"]}`))
	if code != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", code, body)
	}
	var w WebhookView
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatal(err)
	}
	h.webhook = w.ID
	if code, body := h.call("POST", "/api/v1/agents", bearer(hostileKey), []byte(`{"id":"edge-1","labels":["env:prod"]}`)); code != http.StatusCreated {
		t.Fatalf("create agent: %d %s", code, body)
	}
	h.agent = "edge-1"
	h.dead = "6f1d3c2a-0000-4000-8000-00000000dead"
	now := time.Now().UnixMilli()
	enq := streams.Enqueued{V: 1, EventID: "ev-1", EventType: "alert.triggered", CreatedAt: now, Payload: []byte(`{"id":"ev-1"}`),
		Deliveries: []streams.EnqueuedItem{{DeliveryID: h.dead, WebhookID: h.webhook}}}
	dead := streams.Outcome{V: 1, DeliveryID: h.dead, WebhookID: h.webhook, EventID: "ev-1", EventType: "alert.triggered",
		Attempt: 1, Status: streams.StatusDead, AttemptStatus: streams.StatusFailed, StatusCode: 500, By: "broker",
		StartedAt: now, FinishedAt: now, CreatedAt: now, PayloadSize: 13}
	if err := conns.Store.ApplyOutcomes(ctx, []streams.Outcome{dead}, []streams.Enqueued{enq}, s.opts.Limits); err != nil {
		t.Fatal(err)
	}
	if code, body := h.call("GET", "/api/v1/deliveries/"+h.dead, bearer(hostileKey), nil); code != http.StatusOK {
		t.Fatalf("the dead delivery: %d %s", code, body)
	}
	code, body = h.call("POST", "/api/v1/webhooks/"+h.webhook+"/replay", bearer(hostileKey),
		[]byte(`{"statuses":["dead"],"since":"2026-01-01T00:00:00Z","until":"2026-01-02T00:00:00Z"}`))
	if code != http.StatusAccepted {
		t.Fatalf("create replay: %d %s", code, body)
	}
	var rp ReplayView
	if err := json.Unmarshal(body, &rp); err != nil {
		t.Fatal(err)
	}
	h.replay = rp.ID
	if h.cookie = signIn(t, s.Handler(), hostileKey); h.cookie == "" {
		t.Fatal("sign-in refused")
	}
	return h
}

// header sets a request's credentials.
type header func(r *http.Request)

func bearer(key string) header {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
}

func raw(name, value string) header { return func(r *http.Request) { r.Header.Set(name, value) } }

func cookie(value string) header {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: SessionCookie, Value: value}) }
}

func both(a, b header) header { return func(r *http.Request) { a(r); b(r) } }

// call sends one request to the server in this process. A request that has
// no answer within hostileRequestTimeout fails the test as a hang (its
// context is cancelled too, so the handler's Redis and NATS calls end).
func (h *hostile) call(method, path string, cred header, body []byte) (int, []byte) {
	h.t.Helper()
	rec, err := h.serve(method, path, cred, body)
	if err != nil {
		h.t.Errorf("%s %s: %v", method, path, err)
		return 0, nil
	}
	return rec.Code, rec.Body.Bytes()
}

func (h *hostile) serve(method, path string, cred header, body []byte) (*httptest.ResponseRecorder, error) {
	ctx, cancel := context.WithTimeout(context.Background(), hostileRequestTimeout)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if cred != nil {
		cred(req)
	}
	rec := httptest.NewRecorder()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		h.s.Handler().ServeHTTP(rec, req)
	}()
	select {
	case p := <-done:
		if p != nil {
			return nil, fmt.Errorf("panicked: %v", p)
		}
		return rec, nil
	case <-ctx.Done():
		<-done // the handler ends with its context
		return nil, fmt.Errorf("no answer within %s (a hang)", hostileRequestTimeout)
	}
}

// envelope checks that an answer is the JSON error envelope with the
// request's id, and returns its code.
func envelope(t *testing.T, what string, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e APIError
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Errorf("%s: %d with Content-Type %q, want the JSON envelope", what, rec.Code, rec.Header().Get("Content-Type"))
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" || e.Details == nil {
		t.Errorf("%s: %d is not the error envelope: %.300s", what, rec.Code, rec.Body.String())
	}
	if e.RequestID == "" || e.RequestID != rec.Header().Get(RequestIDHeader) {
		t.Errorf("%s: request_id %q, %s %q", what, e.RequestID, RequestIDHeader, rec.Header().Get(RequestIDHeader))
	}
	return e.Code
}

// route is one route the server registers.
type route struct{ method, path string }

func (r route) String() string { return r.method + " " + r.path }

// routes are the server's echo routes, echo's own group catch-alls left out.
func (h *hostile) routes() []route {
	var out []route
	for _, r := range h.s.e.Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		out = append(out, route{r.Method, r.Path})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return slices.Compact(out)
}

// concrete fills a route's parameters with real objects' ids.
func (h *hostile) concrete(r route) string {
	p := r.path
	switch {
	case strings.HasPrefix(p, "/api/v1/webhooks/:id"):
		p = strings.Replace(p, ":id", h.webhook, 1)
	case strings.HasPrefix(p, "/api/v1/deliveries/:id"):
		p = strings.Replace(p, ":id", h.dead, 1)
	case strings.HasPrefix(p, "/api/v1/agents/:id"):
		p = strings.Replace(p, ":id", h.agent, 1)
	case strings.HasPrefix(p, "/api/v1/replays/:id"):
		p = strings.Replace(p, ":id", h.replay, 1)
	case p == "/api/v1/*":
		p = "/api/v1/no-such-route"
	case p == "/static/*":
		p = "/static/app.js"
	}
	if strings.Contains(p, ":") {
		h.t.Fatalf("route %s: no object for its parameter", r)
	}
	return p
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// mangle changes s's last byte.
func mangle(s string) string { return s[:len(s)-1] + string(s[len(s)-1]^1) }

// publicRoutes answer without credentials, by design: health, metrics, the
// OpenAPI document, the sign-in page and the page's assets. The page itself
// (GET /) and the sign-in and sign-out forms are checked on their own below.
var publicRoutes = map[string]bool{
	"GET /healthz": true, "GET /readyz": true, "GET /metrics": true, "GET /openapi.json": true,
	"GET /signin": true, "GET /static/*": true,
}

// pageRoutes are the page's routes that take a session, not a key. The
// OpenAPI document marks them public: they answer everyone, the page with a
// redirect to sign in and the forms with a refusal without a session.
var pageRoutes = map[string]bool{"GET /": true, "POST /signin": true, "POST /signout": true}

// Every route refuses every request without valid credentials: no key, a
// wrong key, the admin key with its last byte changed, the key in the wrong
// header form, a forged or altered session cookie, and (on state-changing
// API routes) a real session without its CSRF token, with a wrong one, or
// from another site. Public routes are exactly the listed ones, and exactly
// the ones the OpenAPI document marks with empty security (plus the assets).
func TestHostileAuthOnEveryRoute(t *testing.T) {
	h := startHostile(t)
	csrf := h.csrf()
	var apiRoutes int
	seenPublic := map[string]bool{}
	for _, r := range h.routes() {
		path := h.concrete(r)
		name := r.String()
		switch {
		case publicRoutes[name]:
			seenPublic[name] = true
			if rec, err := h.serve(r.method, path, nil, nil); err != nil || rec.Code != http.StatusOK {
				t.Errorf("public %s: %v %v, want 200", name, err, rec)
			}
			continue
		case pageRoutes[name]:
			continue // below
		case !strings.HasPrefix(r.path, "/api/v1/"):
			t.Errorf("%s is neither an API route, a page route nor a listed public route", name)
			continue
		}
		apiRoutes++
		cases := []struct {
			what string
			cred header
			want int
		}{
			{"no key", nil, http.StatusUnauthorized},
			{"a wrong key", bearer("wrong-admin-key-0123456789"), http.StatusUnauthorized},
			{"the admin key with its last byte changed", bearer(mangle(hostileKey)), http.StatusUnauthorized},
			{"the admin key with a byte appended", bearer(hostileKey + "x"), http.StatusUnauthorized},
			{"the admin key without Bearer", raw("Authorization", hostileKey), http.StatusUnauthorized},
			{"the admin key as Basic", raw("Authorization", "Basic "+hostileKey), http.StatusUnauthorized},
			{"an empty bearer", raw("Authorization", "Bearer "), http.StatusUnauthorized},
			{"a forged session cookie", cookie("forged-session-token"), http.StatusUnauthorized},
			{"the session cookie with its last byte changed", cookie(mangle(h.cookie)), http.StatusUnauthorized},
			{"a wrong key beside a real session", both(bearer("wrong-admin-key-0123456789"), cookie(h.cookie)), http.StatusUnauthorized},
		}
		if unsafeMethod(r.method) {
			cases = append(cases, []struct {
				what string
				cred header
				want int
			}{
				{"a session without the CSRF token", cookie(h.cookie), http.StatusForbidden},
				{"a session with a wrong CSRF token", both(cookie(h.cookie), raw(CSRFHeader, mangle(csrf))), http.StatusForbidden},
				{"a session with its CSRF token from another site", both(both(cookie(h.cookie), raw(CSRFHeader, csrf)),
					raw("Origin", "https://evil.test")), http.StatusForbidden},
				{"a session with its CSRF token, Sec-Fetch-Site cross-site", both(both(cookie(h.cookie), raw(CSRFHeader, csrf)),
					raw("Sec-Fetch-Site", "cross-site")), http.StatusForbidden},
			}...)
		}
		for _, c := range cases {
			what := name + " with " + c.what
			rec, err := h.serve(r.method, path, c.cred, []byte(`{}`))
			if err != nil {
				t.Errorf("%s: %v", what, err)
				continue
			}
			if rec.Code != c.want {
				t.Errorf("%s: %d, want %d: %.200s", what, rec.Code, c.want, rec.Body.String())
				continue
			}
			envelope(t, what, rec)
			if c.want == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: 401 without WWW-Authenticate: Bearer", what)
			}
		}
	}
	if apiRoutes < 25 {
		t.Errorf("only %d API routes walked", apiRoutes)
	}
	for name := range publicRoutes {
		if !seenPublic[name] {
			t.Errorf("listed public route %s is not registered", name)
		}
	}
	// The listed public routes are the ones the document calls public.
	documented := map[string]bool{}
	for _, o := range loadOpenAPI(t).operations(t) {
		if o.public() {
			documented[o.method+" "+o.path] = true
		}
	}
	want := map[string]bool{}
	for name := range publicRoutes {
		if name != "GET /static/*" { // assets are not API operations
			want[name] = true
		}
	}
	for name := range pageRoutes {
		want[name] = true
	}
	if got, w := sortedKeys(documented), sortedKeys(want); !slices.Equal(got, w) {
		t.Errorf("operations with empty security %v, want exactly %v", got, w)
	}

	// The page: without a valid session, a redirect to sign in, never the app.
	for _, c := range []struct {
		what string
		cred header
	}{{"nothing", nil}, {"the admin key", bearer(hostileKey)}, {"a forged session", cookie("forged-session-token")},
		{"the session with its last byte changed", cookie(mangle(h.cookie))}} {
		rec, err := h.serve("GET", "/", c.cred, nil)
		if err != nil || rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/signin" ||
			strings.Contains(rec.Body.String(), "csrf") {
			t.Errorf("GET / with %s: %v %v, want 303 to /signin", c.what, err, rec)
		}
	}
	// Sign-in: no form token is 403, a wrong or altered key 401.
	if rec := h.signin(hostileKey, false); rec.Code != http.StatusForbidden {
		t.Errorf("POST /signin without the form token: %d, want 403", rec.Code)
	}
	for _, key := range []string{"", "wrong-admin-key-0123456789", mangle(hostileKey), hostileKey + "x"} {
		if rec := h.signin(key, true); rec.Code != http.StatusUnauthorized {
			t.Errorf("POST /signin with key %q: %d, want 401", key, rec.Code)
		}
	}
	// Sign-out of a real session needs its CSRF token and the same site.
	for _, c := range []struct {
		what string
		form url.Values
		cred header
	}{
		{"no CSRF token", url.Values{}, cookie(h.cookie)},
		{"a wrong CSRF token", url.Values{"csrf": {mangle(csrf)}}, cookie(h.cookie)},
		{"its CSRF token from another site", url.Values{"csrf": {csrf}}, both(cookie(h.cookie), raw("Origin", "https://evil.test"))},
	} {
		rec, err := h.serveForm("/signout", c.form, c.cred)
		if err != nil || rec.Code != http.StatusForbidden {
			t.Errorf("POST /signout with %s: %v %v, want 403", c.what, err, rec)
			continue
		}
		envelope(t, "POST /signout with "+c.what, rec)
	}

	// Nothing was changed by all that: the objects are still there and the
	// session still works.
	for _, p := range []string{"/api/v1/webhooks/" + h.webhook, "/api/v1/agents/" + h.agent, "/api/v1/deliveries/" + h.dead} {
		if code, body := h.call("GET", p, bearer(hostileKey), nil); code != http.StatusOK || !strings.Contains(string(body), `"id"`) {
			t.Errorf("GET %s after the refused requests: %d %s", p, code, body)
		}
	}
	if code, body := h.call("GET", "/api/v1/deliveries/"+h.dead, bearer(hostileKey), nil); !strings.Contains(string(body), `"dead"`) {
		t.Errorf("the dead delivery changed: %d %s", code, body)
	}
	if code := pageStatus(h.s.Handler(), h.cookie); code != http.StatusOK {
		t.Errorf("the session after the refused requests: %d", code)
	}
}

var csrfMeta = regexp.MustCompile(`data-csrf="([^"]+)"`)

// csrf is the session's CSRF token, as the page carries it.
func (h *hostile) csrf() string {
	h.t.Helper()
	rec, err := h.serve("GET", "/", cookie(h.cookie), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	m := csrfMeta.FindStringSubmatch(rec.Body.String())
	if m == nil {
		h.t.Fatalf("no CSRF token in the page: %.500s", rec.Body.String())
	}
	return m[1]
}

// signin posts the sign-in form with key, with a valid form token or none.
func (h *hostile) signin(key string, withToken bool) *httptest.ResponseRecorder {
	h.t.Helper()
	rec, err := h.serve("GET", "/signin", nil, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	form := url.Values{"key": {key}}
	var cred header
	if withToken {
		m := formToken.FindStringSubmatch(rec.Body.String())
		form.Set("csrf", m[1])
		cookies := rec.Result().Cookies()
		cred = func(r *http.Request) {
			for _, c := range cookies {
				r.AddCookie(c)
			}
		}
	}
	out, err := h.serveForm("/signin", form, cred)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *hostile) serveForm(path string, form url.Values, cred header) (*httptest.ResponseRecorder, error) {
	return h.serve("POST", path, both(raw("Content-Type", "application/x-www-form-urlencoded"), func(r *http.Request) {
		if cred != nil {
			cred(r)
		}
	}), []byte(form.Encode()))
}

// badBodies are a body-taking route's own hostile bodies: a known field of
// the wrong type, NUL and CR/LF inside strings, and numbers no field holds.
type badBodies struct{ wrongType, nul, crlf, hugeFloat, hugeInt string }

// bodyCases lists, for every POST, PUT and PATCH API route that reads a
// JSON body, its own hostile bodies (the generic ones apply to all).
var bodyCases = map[string]badBodies{
	"POST /api/v1/webhooks/:id/replay": {
		wrongType: `{"statuses":"dead","since":"2026-01-01T00:00:00Z","until":"2026-01-02T00:00:00Z"}`,
		nul:       `{"statuses":["dead\u0000"],"since":"2026-01-01T00:00:00Z","until":"2026-01-02T00:00:00Z"}`,
		crlf:      `{"statuses":["dead"],"since":"2026-01-01T00:00:00Z\r\n","until":"2026-01-02T00:00:00Z"}`,
		hugeFloat: `{"statuses":["dead"],"since":1e400,"until":"2026-01-02T00:00:00Z"}`,
		hugeInt:   `{"statuses":["dead"],"since":"2026-01-01T00:00:00Z","until":99999999999999999999999}`,
	},
	"POST /api/v1/webhooks": {
		wrongType: `{"name":"n","url":"https://example.test/h","event_types":"*"}`,
		nul:       `{"name":"a\u0000b","url":"https://example.test/h","event_types":["*"]}`,
		crlf:      `{"name":"n","url":"https://example.test/h","event_types":["*"],"headers":{"X-A":"a\r\nX-B: b"}}`,
		hugeFloat: `{"name":"n","url":"https://example.test/h","event_types":["*"],"max_retries":1e400}`,
		hugeInt:   `{"name":"n","url":"https://example.test/h","event_types":["*"],"timeout_seconds":99999999999999999999999}`,
	},
	"PUT /api/v1/webhooks/:id": {
		wrongType: `{"enabled":"yes"}`, nul: `{"name":"a\u0000b"}`, crlf: `{"url":"https://example.test/a\r\nHost: evil.test"}`,
		hugeFloat: `{"timeout_seconds":1e400}`, hugeInt: `{"max_retries":99999999999999999999999}`,
	},
	"PATCH /api/v1/webhooks/:id": {
		wrongType: `{"event_types":{"a":1}}`, nul: `{"auth_header":"Bearer a\u0000b"}`, crlf: `{"name":"a\r\nb"}`,
		hugeFloat: `{"max_retries":1e400}`, hugeInt: `{"timeout_seconds":-99999999999999999999999}`,
	},
	"POST /api/v1/webhooks/:id/preview": {
		wrongType: `{"event_type":["alert.triggered"]}`, nul: `{"event_type":"alert.triggered\u0000"}`,
		crlf: `{"event":{"event_type":"alert.triggered\r\n","data":{}}}`, hugeFloat: `{"event_type":1e400}`,
		hugeInt: `{"event":{"event_type":99999999999999999999999}}`,
	},
	"POST /api/v1/webhooks/preview": {
		wrongType: `{"webhook":"format"}`, nul: `{"webhook":{"name":"a\u0000b","format":"slack"}}`,
		crlf: `{"webhook":{"format":"slack\r\n"}}`, hugeFloat: `{"webhook":{"max_retries":1e400}}`,
		hugeInt: `{"webhook":{"timeout_seconds":99999999999999999999999}}`,
	},
	"POST /api/v1/webhooks/:id/secret/rotate": {
		wrongType: `{"overlap_seconds":"1h"}`, nul: `{"secret":"whsec_\u0000AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`,
		crlf: `{"secret":"whsec_AAAA\r\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`, hugeFloat: `{"overlap_seconds":1e400}`,
		hugeInt: `{"overlap_seconds":99999999999999999999999}`,
	},
	"POST /api/v1/events": {
		wrongType: `{"event_type":"alert.triggered","data":{},"labels":["env:prod"]}`,
		nul:       `{"event_type":"alert.triggered","data":{},"labels":{"env":"a\u0000b"}}`,
		crlf:      `{"event_type":"alert.triggered","data":{},"id":"a\r\nb"}`,
		hugeFloat: `{"event_type":"alert.triggered","data":{},"id":1e400}`,
		hugeInt:   `{"event_type":99999999999999999999999,"data":{}}`,
	},
	"POST /api/v1/agents": {
		wrongType: `{"id":"edge-2","labels":"env:prod"}`, nul: `{"id":"edge\u0000","labels":["env:prod"]}`,
		crlf: `{"id":"edge-2","labels":["env:prod\r\nx"]}`, hugeFloat: `{"id":1e400,"labels":["env:prod"]}`,
		hugeInt: `{"id":"edge-2","labels":[99999999999999999999999]}`,
	},
	"PUT /api/v1/agents/:id": {
		wrongType: `{"labels":{"env":"prod"}}`, nul: `{"labels":["env:\u0000"]}`, crlf: `{"labels":["env\r\n:prod"]}`,
		hugeFloat: `{"labels":[1e400]}`, hugeInt: `{"labels":99999999999999999999999}`,
	},
}

// bodyless are the POST routes that take no body (none is documented):
// whatever comes is not read; they must still never fail or hang on one.
// The catch-all of unknown API routes answers 404 whatever the body.
var bodyless = map[string]bool{
	"POST /api/v1/webhooks/:id/pause": true, "POST /api/v1/webhooks/:id/resume": true,
	"POST /api/v1/webhooks/:id/test": true, "POST /api/v1/deliveries/:id/retry": true,
	"POST /api/v1/replays/:id/cancel": true,
	"POST /api/v1/*":                  true, "PUT /api/v1/*": true, "PATCH /api/v1/*": true,
}

// hostileAllocFactor bounds what handling one oversized or deeply nested
// body may allocate: this many times the route's body limit, plus
// hostileAllocSlack for the request's fixed costs. The bodies sent are 10 MB
// and 100,000 levels deep; the limits are 64 KiB (256 KiB for events, both
// together for previews).
const (
	hostileAllocFactor = 8
	hostileAllocSlack  = 2 << 20
)

// Every body-taking route refuses every malformed body with a 4xx and the
// envelope, never a 5xx, never a hang, and allocates a bounded amount for
// the largest and deepest ones; the routes without a body ignore it the same
// way. Bodies go to real objects, so the handlers read them.
func TestHostileBodies(t *testing.T) {
	h := startHostile(t)
	huge := bytes.Repeat([]byte("a"), 10<<20)
	copy(huge, `{"name":"`)
	generic := []struct {
		name string
		body []byte
		big  bool // measured
	}{
		{"invalid JSON", []byte(`{"name":`), false},
		{"not an object", []byte(`["name"]`), false},
		{"a bare string", []byte(`"x"`), false},
		{"null", []byte(`null`), false},
		{"trailing data after the object", []byte(`{} {"name":"x"}`), false},
		{"trailing garbage after the object", []byte(`{}garbage`), false},
		{"an unknown field", []byte(`{"no_such_field":1}`), false},
		{"a duplicate unknown field beside known ones", []byte(`{"zz":1,"zz":2}`), false},
		{"invalid UTF-8", []byte("{\"name\":\"\xff\xfe\"}"), false},
		{"a 10 MB body", huge, true},
		{"100,000 nested arrays", bytes.Repeat([]byte("["), 100_000), true},
		{"100,000 nested objects", []byte(strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000)), true},
		{"100,000 nested arrays, closed", []byte(strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)), true},
	}
	var peak struct {
		bytes uint64
		what  string
	}
	seen := map[string]bool{}
	for _, r := range h.routes() {
		name := r.String()
		if r.method != http.MethodPost && r.method != http.MethodPut && r.method != http.MethodPatch {
			continue
		}
		if pageRoutes[name] {
			continue // TestHostileFormBodies
		}
		path := h.concrete(r)
		own, reads := bodyCases[name]
		switch {
		case reads:
			seen[name] = true
		case bodyless[name]:
			seen[name] = true
		default:
			t.Errorf("%s takes a body the suite does not know of: add it to bodyCases or bodyless", name)
			continue
		}
		type bodyCase struct {
			name string
			body []byte
			big  bool
		}
		var cases []bodyCase
		for _, g := range generic {
			cases = append(cases, bodyCase(g))
		}
		if reads {
			cases = append(cases, bodyCase{"a known field of the wrong type", []byte(own.wrongType), false},
				bodyCase{"NUL inside a string", []byte(own.nul), false}, bodyCase{"CR/LF inside a string", []byte(own.crlf), false},
				bodyCase{"1e400", []byte(own.hugeFloat), false}, bodyCase{"99999999999999999999999", []byte(own.hugeInt), false})
		}
		limit := h.s.opts.MaxBodyBytes
		switch name {
		case "POST /api/v1/events":
			limit = h.s.opts.MaxEventBytes
		case "POST /api/v1/webhooks/:id/preview", "POST /api/v1/webhooks/preview":
			limit = h.s.opts.MaxEventBytes + h.s.opts.MaxBodyBytes // an event beside a webhook body
		}
		for _, c := range cases {
			what := fmt.Sprintf("%s with %s", name, c.name)
			var before, after runtime.MemStats
			if c.big {
				runtime.GC()
				runtime.ReadMemStats(&before)
			}
			rec, err := h.serve(r.method, path, bearer(hostileKey), c.body)
			if c.big {
				runtime.ReadMemStats(&after)
			}
			if err != nil {
				t.Errorf("%s: %v", what, err)
				continue
			}
			if rec.Code >= 500 {
				t.Errorf("%s: %d: %.300s", what, rec.Code, rec.Body.String())
				continue
			}
			if reads && (rec.Code < 400 || rec.Code >= 500) {
				t.Errorf("%s: %d, want a 4xx: %.300s", what, rec.Code, rec.Body.String())
				continue
			}
			if rec.Code >= 400 {
				envelope(t, what, rec)
			}
			if c.big {
				alloc := after.TotalAlloc - before.TotalAlloc
				if bound := uint64(hostileAllocFactor*limit + hostileAllocSlack); alloc > bound {
					t.Errorf("%s: allocated %d bytes, bound %d (%d × the %d-byte limit + %d)", what, alloc, bound,
						hostileAllocFactor, limit, hostileAllocSlack)
				}
				if alloc > peak.bytes {
					peak.bytes, peak.what = alloc, what
				}
				t.Logf("%s: %d %s, %d bytes allocated", what, rec.Code, envelopeCode(rec), alloc)
			}
		}
	}
	for name := range bodyCases {
		if !seen[name] {
			t.Errorf("%s is listed but not registered", name)
		}
	}
	for name := range bodyless {
		if !seen[name] {
			t.Errorf("%s is listed but not registered", name)
		}
	}
	t.Logf("peak allocation: %d bytes (%s)", peak.bytes, peak.what)

	// None of it changed the objects.
	code, body := h.call("GET", "/api/v1/webhooks/"+h.webhook, bearer(hostileKey), nil)
	var w WebhookView
	if err := json.Unmarshal(body, &w); err != nil || code != http.StatusOK || w.Name != "target" || w.MaxRetries != webhooks.DefaultMaxRetries {
		t.Errorf("the webhook after the hostile bodies: %d %s", code, body)
	}
	if code, body := h.call("GET", "/api/v1/agents/"+h.agent, bearer(hostileKey), nil); code != http.StatusOK ||
		!strings.Contains(string(body), `"labels":["env:prod"]`) {
		t.Errorf("the agent after the hostile bodies: %d %s", code, body)
	}
	if code, body := h.call("GET", "/api/v1/agents", bearer(hostileKey), nil); code != http.StatusOK ||
		strings.Count(string(body), `"id"`) != 1 {
		t.Errorf("agents after the hostile bodies: %d %s", code, body)
	}
}

func envelopeCode(rec *httptest.ResponseRecorder) string {
	var e APIError
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	return e.Code
}

// The page's forms (sign-in, and sign-out of a real session) refuse every
// hostile body with a 4xx, within the form limit's allocation.
func TestHostileFormBodies(t *testing.T) {
	h := startHostile(t)
	bodies := map[string][]byte{
		"a 10 MB body":           bytes.Repeat([]byte("a"), 10<<20),
		"100,000 nested arrays":  bytes.Repeat([]byte("["), 100_000),
		"100,000 nested objects": []byte(strings.Repeat(`{"a":`, 100_000)),
		"invalid JSON":           []byte(`{"key":`),
		"NUL and CR/LF":          []byte("key=a%00b&csrf=x%0D%0Ay"),
		"a bad escape":           []byte("key=%zz"),
	}
	for _, path := range []string{"/signin", "/signout"} {
		for what, body := range bodies {
			for _, ct := range []string{"application/x-www-form-urlencoded", "application/json"} {
				name := fmt.Sprintf("POST %s (%s) with %s", path, ct, what)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				rec, err := h.serve("POST", path, both(cookie(h.cookie), raw("Content-Type", ct)), body)
				runtime.ReadMemStats(&after)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if rec.Code < 400 || rec.Code >= 500 {
					t.Errorf("%s: %d, want a 4xx: %.200s", name, rec.Code, rec.Body.String())
				}
				if alloc := after.TotalAlloc - before.TotalAlloc; alloc > hostileAllocFactor*maxFormBytes+hostileAllocSlack {
					t.Errorf("%s: allocated %d bytes", name, alloc)
				}
			}
		}
	}
	if code := pageStatus(h.s.Handler(), h.cookie); code != http.StatusOK {
		t.Errorf("the session after the hostile forms: %d", code)
	}
}

// An event body of HERMOD_MAX_EVENT_BYTES is accepted although its envelope
// is larger (an id and a timestamp added); one whose envelope grows past
// what the event stream and the router take (<, > and & in data are written
// as \u003c and the like) is refused with 413, never accepted to be dropped
// later nor answered with a 5xx.
func TestEventEnvelopeLimit(t *testing.T) {
	h := startHostile(t)
	limit := int(h.s.opts.MaxEventBytes)
	sized := func(fill string, n int) []byte {
		head, tail := `{"event_type":"deployment.applied","data":{"x":"`, `"}}`
		return []byte(head + strings.Repeat(fill, (n-len(head)-len(tail))/len(fill)) + tail)
	}
	plain := sized("a", limit)
	if len(plain) != limit {
		t.Fatalf("body of %d bytes, want %d", len(plain), limit)
	}
	if code, body := h.call("POST", "/api/v1/events", bearer(hostileKey), plain); code != http.StatusAccepted {
		t.Errorf("a body of the limit: %d %s", code, body)
	}
	rec, err := h.serve("POST", "/api/v1/events", bearer(hostileKey), sized("<", limit/2))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusRequestEntityTooLarge || envelope(t, "an envelope over the limit", rec) != "too_large" {
		t.Errorf("an envelope over the limit: %d %s", rec.Code, rec.Body.String())
	}
}
