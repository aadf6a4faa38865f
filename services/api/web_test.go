package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/store"
)

// webServer is the API with only what the page's own routes need: a real
// Redis for sessions.
func webServer(st *store.Store, keys ...string) *Server {
	return newTestServer(st, nil, zerolog.Nop(), keys...)
}

var formToken = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in to h with key and returns the session cookie ("" when refused).
func signIn(t *testing.T, h http.Handler, key string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/signin", nil))
	m := formToken.FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatalf("no form token: %s", rec.Body)
	}
	form := url.Values{"key": {key}, "csrf": {m[1]}}
	req := httptest.NewRequest("POST", "/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.Name == SessionCookie && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

func pageStatus(h http.Handler, cookie string) int {
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// Removing an admin key from the configuration ends the sessions it signed
// in, on every replica that shares the Redis.
func TestSessionsEndWithTheirKey(t *testing.T) {
	rd := hermodtest.StartRedis(t)
	st := store.New(rd.Client(t), nil)
	const keyA, keyB = "admin-key-a-0123456789", "admin-key-b-0123456789"
	before := webServer(st, keyA, keyB).Handler()
	after := webServer(st, keyA).Handler() // keyB removed, e.g. leaked
	ca, cb := signIn(t, before, keyA), signIn(t, before, keyB)
	if ca == "" || cb == "" {
		t.Fatal("sign-in refused")
	}
	if signIn(t, before, "not-a-key-0123456789") != "" || signIn(t, after, keyB) != "" {
		t.Fatal("a wrong or removed key signed in")
	}
	if c := pageStatus(before, cb); c != 200 {
		t.Fatalf("session of key B before removal: %d", c)
	}
	if c := pageStatus(after, cb); c != http.StatusSeeOther {
		t.Fatalf("session of the removed key B: %d, want a redirect to sign in", c)
	}
	if c := pageStatus(after, ca); c != 200 {
		t.Fatalf("session of key A, still configured: %d", c)
	}
}

// Signing in again replaces the browser's session: the old cookie stops working.
func TestSignInReplacesTheOldSession(t *testing.T) {
	rd := hermodtest.StartRedis(t)
	st := store.New(rd.Client(t), nil)
	const key = "admin-key-a-0123456789"
	h := webServer(st, key).Handler()
	old := signIn(t, h, key)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/signin", nil))
	m := formToken.FindStringSubmatch(rec.Body.String())
	req := httptest.NewRequest("POST", "/signin", strings.NewReader(url.Values{"key": {key}, "csrf": {m[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	req.AddCookie(&http.Cookie{Name: SessionCookie, Value: old})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("second sign-in: %d", rec.Code)
	}
	if c := pageStatus(h, old); c != http.StatusSeeOther {
		t.Fatalf("the replaced session still works: %d", c)
	}
}

// The client address logged is the connection's, whatever X-Forwarded-For says.
func TestSigninLogsTheConnectionAddress(t *testing.T) {
	rd := hermodtest.StartRedis(t)
	var logs strings.Builder
	s := newTestServer(store.New(rd.Client(t), nil), nil, zerolog.New(&logs), "admin-key-a-0123456789")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/signin", nil))
	m := formToken.FindStringSubmatch(rec.Body.String())
	req := httptest.NewRequest("POST", "/signin", strings.NewReader(url.Values{"key": {"wrong-key-0123456789"}, "csrf": {m[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "203.0.113.66")
	req.RemoteAddr = "127.0.0.1:5555"
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	s.Handler().ServeHTTP(httptest.NewRecorder(), req)
	if !strings.Contains(logs.String(), `"remote":"127.0.0.1"`) || strings.Contains(logs.String(), "203.0.113.66") ||
		strings.Contains(logs.String(), "wrong-key") {
		t.Fatalf("log: %s", logs.String())
	}
}

// /static serves files, not directory listings.
func TestStaticServesFilesOnly(t *testing.T) {
	h := testServer().Handler()
	for path, want := range map[string]int{"/static/app.js": 200, "/static/app.css": 200, "/static/": 404, "/static/nope.js": 404,
		"/static/../web.go": 404} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
	}
}

// Admin keys rotate through HERMOD_ADMIN_KEYS: every configured key is
// accepted as a Bearer key, a key removed from the list is refused at once
// (by a server started with the new list), and a key that differs only in
// its last character, or is a prefix of a configured key, is refused.
func TestAdminKeyRotation(t *testing.T) {
	rd := hermodtest.StartRedis(t)
	st := store.New(rd.Client(t), nil)
	const oldKey, newKey = "admin-key-old-0123456789", "admin-key-new-0123456789"
	status := func(h http.Handler, key string) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/v1/event-types", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	during := webServer(st, oldKey, newKey).Handler()
	after := webServer(st, newKey).Handler()
	for _, c := range []struct {
		name string
		h    http.Handler
		key  string
		want int
	}{
		{"old key during the overlap", during, oldKey, http.StatusOK},
		{"new key during the overlap", during, newKey, http.StatusOK},
		{"new key after", after, newKey, http.StatusOK},
		{"old key after its removal", after, oldKey, http.StatusUnauthorized},
		{"last character changed", during, newKey[:len(newKey)-1] + "X", http.StatusUnauthorized},
		{"a prefix of a key", during, newKey[:16], http.StatusUnauthorized},
	} {
		if got := status(c.h, c.key); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
