package allinone_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	allinone "github.com/hermodhq/hermod/services/hermod"
)

// webClient talks to the page the way a browser does, cookies and all, but
// never follows redirects (so the test sees them).
type webClient struct {
	t       *testing.T
	base    string
	cookies map[string]*http.Cookie
	hc      *http.Client
}

func newWebClient(t *testing.T, base string) *webClient {
	return &webClient{t: t, base: base, cookies: map[string]*http.Cookie{},
		hc: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type webResp struct {
	code int
	body string
	hdr  http.Header
	set  map[string]*http.Cookie
}

func (w *webClient) do(method, path string, body io.Reader, hdr map[string]string) webResp {
	w.t.Helper()
	req, err := http.NewRequest(method, w.base+path, body)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, c := range w.cookies {
		req.AddCookie(c)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := webResp{code: resp.StatusCode, body: string(b), hdr: resp.Header, set: map[string]*http.Cookie{}}
	for _, c := range resp.Cookies() {
		out.set[c.Name] = c
		if c.MaxAge < 0 || c.Value == "" {
			delete(w.cookies, c.Name)
		} else {
			w.cookies[c.Name] = &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	return out
}

func (w *webClient) form(path string, v url.Values, hdr map[string]string) webResp {
	w.t.Helper()
	if hdr == nil {
		hdr = map[string]string{}
	}
	hdr["Content-Type"] = "application/x-www-form-urlencoded"
	return w.do("POST", path, strings.NewReader(v.Encode()), hdr)
}

var (
	hiddenCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	mainCSRF   = regexp.MustCompile(`data-csrf="([^"]+)"`)
)

func (w *webClient) signinToken() string {
	w.t.Helper()
	r := w.do("GET", "/signin", nil, nil)
	m := hiddenCSRF.FindStringSubmatch(r.body)
	if r.code != 200 || m == nil {
		w.t.Fatalf("sign-in form: %d %s", r.code, r.body)
	}
	return m[1]
}

// signIn signs in and returns the session's CSRF token from the page.
func (w *webClient) signIn(key string) string {
	w.t.Helper()
	r := w.form("/signin", url.Values{"key": {key}, "csrf": {w.signinToken()}}, nil)
	if r.code != 303 || r.hdr.Get("Location") != "/" {
		w.t.Fatalf("sign in: %d %s", r.code, r.body)
	}
	page := w.do("GET", "/", nil, nil)
	m := mainCSRF.FindStringSubmatch(page.body)
	if page.code != 200 || m == nil {
		w.t.Fatalf("the page after sign-in: %d", page.code)
	}
	return m[1]
}

// The sign-in exchange, the cookie's flags, the page's headers and the
// static files.
func TestWebSignIn(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, func(c *allinone.Config) { c.SessionTTL = 20 * time.Minute })
		w := newWebClient(t, p.Base)

		r := w.do("GET", "/", nil, nil)
		if r.code != 303 || r.hdr.Get("Location") != "/signin" {
			t.Fatalf("signed out, / should send to /signin: %d %v", r.code, r.hdr)
		}
		r = w.do("GET", "/signin", nil, nil)
		if r.code != 200 || !strings.Contains(r.body, `type="password"`) {
			t.Fatalf("/signin: %d", r.code)
		}
		for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"} {
			if r.hdr.Get(h) == "" {
				t.Errorf("the sign-in page lacks %s", h)
			}
		}
		if csp := r.hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP %q", csp)
		}
		sc := r.set["hermod_signin"]
		if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode {
			t.Fatalf("sign-in cookie: %+v", sc)
		}
		token := hiddenCSRF.FindStringSubmatch(r.body)[1]

		// Refused: a cross-site post, a missing or wrong form token, a wrong key.
		if r := w.form("/signin", url.Values{"key": {testAdminKey}, "csrf": {token}}, map[string]string{"Origin": "http://evil.example"}); r.code != 403 {
			t.Fatalf("cross-site sign-in: %d", r.code)
		}
		if r := w.form("/signin", url.Values{"key": {testAdminKey}, "csrf": {token}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); r.code != 403 {
			t.Fatalf("cross-site (Sec-Fetch-Site) sign-in: %d", r.code)
		}
		if r := w.form("/signin", url.Values{"key": {testAdminKey}, "csrf": {"forged"}}, nil); r.code != 403 || r.set["hermod_session"] != nil {
			t.Fatalf("wrong form token: %d", r.code)
		}
		token = w.signinToken()
		r = w.form("/signin", url.Values{"key": {"wrong-key-0123456789"}, "csrf": {token}}, nil)
		if r.code != 401 || r.set["hermod_session"] != nil || !strings.Contains(r.body, "not valid") || strings.Contains(r.body, "wrong-key-0123456789") {
			t.Fatalf("wrong key: %d %s", r.code, r.body)
		}
		if r := w.form("/signin", url.Values{"key": {strings.Repeat("k", 8000)}, "csrf": {token}}, nil); r.code != 400 {
			t.Fatalf("an oversized sign-in form: %d", r.code)
		}
		if strings.Contains(p.Logs.String(), "wrong-key-0123456789") {
			t.Fatal("a presented key reached the logs")
		}

		// Accepted: the session cookie is HttpOnly, SameSite=Strict, the whole site, and never the key.
		r = w.form("/signin", url.Values{"key": {testAdminKey}, "csrf": {w.signinToken()}}, nil)
		sess := r.set["hermod_session"]
		if r.code != 303 || sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/" ||
			sess.Secure || sess.MaxAge != 1200 || strings.Contains(sess.Value, testAdminKey) {
			t.Fatalf("session cookie: %d %+v", r.code, sess)
		}
		page := w.do("GET", "/", nil, nil)
		if page.code != 200 || !strings.Contains(page.body, `id="webhook-rows"`) || strings.Contains(page.body, testAdminKey) {
			t.Fatalf("the page: %d", page.code)
		}
		js := regexp.MustCompile(`src="(/static/app\.js\?v=[0-9a-f]+)"`).FindStringSubmatch(page.body)
		if js == nil {
			t.Fatal("the page does not load app.js")
		}
		static := w.do("GET", js[1], nil, nil)
		if static.code != 200 || !strings.Contains(static.hdr.Get("Content-Type"), "javascript") ||
			!strings.Contains(static.hdr.Get("Cache-Control"), "immutable") || !strings.Contains(static.body, "X-CSRF-Token") {
			t.Fatalf("app.js: %d %v", static.code, static.hdr)
		}
		if r := w.do("GET", "/static/app.css", nil, nil); r.code != 200 || !strings.Contains(r.hdr.Get("Content-Type"), "text/css") {
			t.Fatalf("app.css: %d", r.code)
		}

		// Behind a TLS proxy the cookie is Secure (and always with HERMOD_COOKIE_SECURE=true: TestWebCookieSecure).
		w2 := newWebClient(t, p.Base)
		tok := w2.signinToken()
		r = w2.form("/signin", url.Values{"key": {testAdminKey}, "csrf": {tok}}, map[string]string{"X-Forwarded-Proto": "https"})
		if c := r.set["hermod_session"]; r.code != 303 || c == nil || !c.Secure {
			t.Fatalf("behind TLS the session cookie must be Secure: %+v", c)
		}
	})
}

// The REST API accepts the session cookie; state changes need the CSRF
// token and a same-origin request; sign-out ends the session for the API.
func TestWebSessionAuthorisesTheAPI(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		w := newWebClient(t, p.Base)
		csrf := w.signIn(testAdminKey)
		body := `{"name":"via cookie","url":"http://127.0.0.1:9/x","event_types":["*"]}`
		js := map[string]string{"Content-Type": "application/json"}
		with := func(extra map[string]string) map[string]string {
			h := map[string]string{"Content-Type": "application/json"}
			for k, v := range extra {
				h[k] = v
			}
			return h
		}

		if r := w.do("GET", "/api/v1/webhooks", nil, nil); r.code != 200 {
			t.Fatalf("GET with the session cookie: %d", r.code)
		}
		for name, hdr := range map[string]map[string]string{
			"no CSRF token":    js,
			"wrong CSRF token": with(map[string]string{"X-CSRF-Token": "x" + csrf}),
			"cross-site":       with(map[string]string{"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}),
			"same-site, other origin": with(map[string]string{"X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-site",
				"Origin": "http://127.0.0.1:1"}),
			"foreign Origin": with(map[string]string{"X-CSRF-Token": csrf, "Origin": "http://evil.example"}),
			"null Origin":    with(map[string]string{"X-CSRF-Token": csrf, "Origin": "null"}),
		} {
			r := w.do("POST", "/api/v1/webhooks", strings.NewReader(body), hdr)
			if r.code != 403 || !strings.Contains(r.body, `"code":"csrf"`) {
				t.Fatalf("%s: %d %s", name, r.code, r.body)
			}
		}
		if n := len(p.must(200, "GET", "/api/v1/webhooks", nil)["data"].([]any)); n != 0 {
			t.Fatalf("refused requests created %d webhooks", n)
		}
		r := w.do("POST", "/api/v1/webhooks", strings.NewReader(body),
			with(map[string]string{"X-CSRF-Token": csrf, "Origin": p.Base, "Sec-Fetch-Site": "same-origin"}))
		if r.code != 201 {
			t.Fatalf("same-origin create with the CSRF token: %d %s", r.code, r.body)
		}
		// Behind a proxy that rewrites Host, the page's origin is the forwarded host.
		r = w.do("POST", "/api/v1/webhooks", strings.NewReader(body), with(map[string]string{"X-CSRF-Token": csrf,
			"Origin": "https://hermod.example.com", "X-Forwarded-Host": "hermod.example.com", "Sec-Fetch-Site": "same-origin"}))
		if r.code != 201 {
			t.Fatalf("same-origin create through a proxy: %d %s", r.code, r.body)
		}
		// A Bearer header is judged on its own: a wrong key is 401 even with a good cookie.
		if r := w.do("GET", "/api/v1/webhooks", nil, map[string]string{"Authorization": "Bearer wrong-key-0123456789"}); r.code != 401 {
			t.Fatalf("wrong Bearer key with a session cookie: %d", r.code)
		}
		if r := w.do("GET", "/api/v1/webhooks", nil, map[string]string{"Authorization": "Basic eDp5"}); r.code != 401 {
			t.Fatalf("a non-Bearer Authorization header with a session cookie: %d", r.code)
		}

		// Sign-out needs the CSRF token too, then the old cookie is refused everywhere.
		old := *w.cookies["hermod_session"]
		if r := w.form("/signout", url.Values{}, nil); r.code != 403 {
			t.Fatalf("sign-out without the token: %d", r.code)
		}
		if r := w.form("/signout", url.Values{"csrf": {csrf}}, nil); r.code != 303 || r.hdr.Get("Location") != "/signin" {
			t.Fatalf("sign-out: %d", r.code)
		}
		w.cookies["hermod_session"] = &old
		if r := w.do("GET", "/api/v1/webhooks", nil, nil); r.code != 401 {
			t.Fatalf("the API after sign-out: %d", r.code)
		}
		if r := w.do("GET", "/", nil, nil); r.code != 303 {
			t.Fatalf("the page after sign-out: %d", r.code)
		}
	})
}

// HERMOD_COOKIE_SECURE=true marks the cookies Secure even on plain HTTP (a
// TLS terminator that does not send X-Forwarded-Proto).
func TestWebCookieSecure(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, func(c *allinone.Config) { c.SecureCookies = true })
		w := newWebClient(t, p.Base)
		r := w.do("GET", "/signin", nil, nil)
		if c := r.set["hermod_signin"]; c == nil || !c.Secure {
			t.Fatalf("sign-in cookie: %+v", c)
		}
		tok := hiddenCSRF.FindStringSubmatch(r.body)[1]
		r = w.form("/signin", url.Values{"key": {testAdminKey}, "csrf": {tok}}, nil)
		if c := r.set["hermod_session"]; r.code != 303 || c == nil || !c.Secure {
			t.Fatalf("session cookie: %d %+v", r.code, c)
		}
	})
}

// Every route that changes state refuses the session cookie without the
// CSRF token, whatever the method or content type; HEAD and OPTIONS change
// nothing.
func TestWebCSRFOnEveryStateChange(t *testing.T) {
	p := startPipeline(t, nil)
	w := newWebClient(t, p.Base)
	csrf := w.signIn(testAdminKey)
	id := p.createWebhook(map[string]any{"name": "guarded", "url": "http://127.0.0.1:9/x", "event_types": []string{"*"}})
	p.must(201, "POST", "/api/v1/agents", map[string]any{"id": "guard-agent", "labels": []string{"env:x"}})
	wh := "/api/v1/webhooks/" + id
	for _, rt := range []struct{ method, path, body string }{
		{"POST", "/api/v1/webhooks", `{"name":"x","url":"http://127.0.0.1:9/","event_types":["*"]}`},
		{"PUT", wh, `{"name":"renamed"}`},
		{"PATCH", wh, `{"name":"renamed"}`},
		{"DELETE", wh, ""},
		{"POST", wh + "/pause", ""},
		{"POST", wh + "/resume", ""},
		{"POST", wh + "/test", ""},
		{"POST", wh + "/secret/rotate", "{}"},
		{"POST", "/api/v1/deliveries/00000000-0000-0000-0000-000000000000/retry", ""},
		{"POST", "/api/v1/events", `{"event_type":"deployment.applied","data":{}}`},
		{"POST", "/api/v1/agents", `{"id":"new-agent","labels":["env:x"]}`},
		{"PUT", "/api/v1/agents/guard-agent", `{"labels":["env:y"]}`},
		{"DELETE", "/api/v1/agents/guard-agent", ""},
	} {
		for _, ct := range []string{"application/json", "text/plain", "application/x-www-form-urlencoded"} {
			r := w.do(rt.method, rt.path, strings.NewReader(rt.body), map[string]string{"Content-Type": ct,
				"X-HTTP-Method-Override": "GET"})
			if r.code != 403 || !strings.Contains(r.body, `"code":"csrf"`) {
				t.Errorf("%s %s (%s) without the CSRF token: %d %s", rt.method, rt.path, ct, r.code, r.body)
			}
		}
	}
	for _, m := range []string{"HEAD", "OPTIONS"} {
		if r := w.do(m, wh+"/pause", nil, nil); r.code < 400 {
			t.Errorf("%s on a state-changing route: %d", m, r.code)
		}
	}
	hook := p.must(200, "GET", wh, nil)
	if hook["name"] != "guarded" || hook["enabled"] != true {
		t.Fatalf("refused requests changed the webhook: %v", hook)
	}
	if a := p.must(200, "GET", "/api/v1/agents/guard-agent", nil); a["labels"].([]any)[0] != "env:x" {
		t.Fatalf("refused requests changed the agent: %v", a)
	}
	if n := len(p.must(200, "GET", "/api/v1/webhooks", nil)["data"].([]any)); n != 1 {
		t.Fatalf("refused requests created webhooks: %d", n)
	}
	// With the token the same cookie may act.
	if r := w.do("POST", wh+"/pause", nil, map[string]string{"X-CSRF-Token": csrf}); r.code != 200 {
		t.Fatalf("pause with the token: %d %s", r.code, r.body)
	}
}
