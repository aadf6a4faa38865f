package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/store"
)

// failureLine is a logged 5xx answer.
type failureLine struct {
	Level      string `json:"level"`
	Message    string `json:"message"`
	RequestID  string `json:"request_id"`
	Route      string `json:"route"`
	Status     int    `json:"status"`
	Code       string `json:"code"`
	Dependency string `json:"dependency"`
	Error      string `json:"error"`
}

func failureLines(t *testing.T, logs string) []failureLine {
	t.Helper()
	var out []failureLine
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if l == "" {
			continue
		}
		var f failureLine
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if f.Message == "request failed" {
			out = append(out, f)
		}
	}
	return out
}

// A 5xx answer (Redis stopped) is logged with its cause and the request id
// the answer carries in X-Request-Id and request_id; the caller's id is kept
// when it is short and safe, replaced otherwise; no secret reaches the log;
// a 4xx answer is not logged.
func TestServerErrorLoggedWithRequestID(t *testing.T) {
	const key = "admin-key-a-0123456789"
	rd := hermodtest.StartRedis(t)
	// One dial, no retries: each answer with Redis stopped comes at once.
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr, MaxRetries: -1, DialerRetries: 1})
	defer func() { _ = rc.Close() }()
	logs := &hermodtest.LogBuffer{}
	s := newTestServer(store.New(rc, nil), nil, zerolog.New(logs), key)
	call := func(method, path, reqID string) (*httptest.ResponseRecorder, APIError) {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		if reqID != "" {
			req.Header.Set(RequestIDHeader, reqID)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		var e APIError
		if rec.Code >= 400 {
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("%s %s: not the envelope: %s", method, path, rec.Body)
			}
		}
		return rec, e
	}

	// Up: a success carries an id too, and nothing is logged.
	if rec, _ := call("GET", "/api/v1/webhooks", ""); rec.Code != 200 || !safeRequestID.MatchString(rec.Header().Get(RequestIDHeader)) {
		t.Fatalf("with redis up: %d, X-Request-Id %q", rec.Code, rec.Header().Get(RequestIDHeader))
	}
	// A 4xx is the caller's problem: answered with an id, not logged.
	if rec, e := call("GET", "/api/v1/webhooks/00000000-0000-4000-8000-000000000001", ""); rec.Code != 404 || e.RequestID == "" {
		t.Fatalf("unknown webhook: %d %+v", rec.Code, e)
	}
	if got := failureLines(t, logs.String()); len(got) != 0 {
		t.Fatalf("logged without a 5xx: %+v", got)
	}

	rd.Stop()
	rec, e := call("GET", "/api/v1/webhooks", "client-req-42")
	if rec.Code != http.StatusServiceUnavailable || e.Code != "unavailable" || e.Details["dependency"] != "redis" {
		t.Fatalf("with redis stopped: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get(RequestIDHeader) != "client-req-42" || e.RequestID != "client-req-42" {
		t.Fatalf("a safe caller id is kept: header %q, body %q", rec.Header().Get(RequestIDHeader), e.RequestID)
	}
	if strings.Contains(rec.Body.String(), rd.Addr) || strings.Contains(rec.Body.String(), "refused") {
		t.Fatalf("the answer echoes the driver error: %s", rec.Body)
	}
	got := failureLines(t, logs.String())
	if len(got) != 1 {
		t.Fatalf("want one logged failure, got %+v\n%s", got, logs)
	}
	f := got[0]
	if f.Level != "error" || f.RequestID != "client-req-42" || f.Status != 503 || f.Code != "unavailable" ||
		f.Dependency != "redis" || f.Route != "/api/v1/webhooks" || f.Error == "" {
		t.Fatalf("logged failure %+v", f)
	}

	// Unsafe or too long caller ids are replaced by a generated one.
	for _, bad := range []string{"has space", strings.Repeat("a", 65), `quote"d`, "new\u2028line"} {
		rec, e := call("GET", "/api/v1/webhooks", bad)
		id := rec.Header().Get(RequestIDHeader)
		if rec.Code != 503 || id == bad || !safeRequestID.MatchString(id) || e.RequestID != id {
			t.Fatalf("caller id %q: answered %d with header %q, body %q", bad, rec.Code, id, e.RequestID)
		}
		got := failureLines(t, logs.String())
		if last := got[len(got)-1]; last.RequestID != id {
			t.Fatalf("caller id %q: logged %q, answered %q", bad, last.RequestID, id)
		}
	}
	if strings.Contains(logs.String(), key) {
		t.Fatalf("the admin key reached the log:\n%s", logs)
	}

	// A panic is a 500, logged the same way.
	s.e.GET("/panics", func(echo.Context) error { panic("boom") })
	rec, e = call("GET", "/panics", "")
	got = failureLines(t, logs.String())
	if last := got[len(got)-1]; rec.Code != 500 || e.Code != "internal" || last.RequestID != e.RequestID || last.Status != 500 ||
		!strings.Contains(last.Error, "boom") {
		t.Fatalf("panic: %d %+v, logged %+v", rec.Code, e, last)
	}
}

// URLs in a logged cause keep their scheme and host only.
func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"dial tcp 127.0.0.1:6379: connect: connection refused":      "dial tcp 127.0.0.1:6379: connect: connection refused",
		`Post "https://hooks.example.test/p/s3cr3t?token=abc": EOF`: `Post "https://hooks.example.test/[redacted]": EOF`,
		"redis://:hunter2@10.0.0.5:6379/0 unreachable":              "redis://10.0.0.5:6379/[redacted] unreachable",
		"nats://user:pw@nats:4222, nats://n2:4222":                  "[redacted URL] nats://n2:4222/[redacted]",
		"see file:///etc/secret":                                    "see [redacted URL]",
	} {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}
