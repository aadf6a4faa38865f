package receiver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/signing"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func signed(t *testing.T, secret, id string, ts time.Time, body string) *http.Request {
	t.Helper()
	k, err := signing.Key(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
	r.Header.Set("webhook-id", id)
	r.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	r.Header.Set("webhook-signature", signing.NewSigner(k).Sign(id, ts.Unix(), []byte(body)))
	r.Header.Set("X-Hermod-Event-Type", "deployment.applied")
	return r
}

func serve(t *testing.T, opts Options, r *http.Request) (Delivery, *httptest.ResponseRecorder) {
	t.Helper()
	var got []Delivery
	h, err := New(opts, func(d Delivery) { got = append(got, d) })
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if len(got) != 1 {
		t.Fatalf("%d deliveries reported, want 1", len(got))
	}
	return got[0], w
}

func TestVerify(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	body := `{"id":"ev-1","event_type":"deployment.applied","timestamp":"2026-11-30T12:00:00Z","data":{"d":1}}`
	other, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		opts     Options
		req      func() *http.Request
		verified bool
		reason   string
	}{
		{"signed", Options{Secrets: []string{testSecret}}, func() *http.Request { return signed(t, testSecret, "d-1", now, body) }, true, ""},
		{"second of two secrets", Options{Secrets: []string{other, testSecret}}, func() *http.Request { return signed(t, testSecret, "d-1", now, body) }, true, ""},
		{"other secret", Options{Secrets: []string{other}}, func() *http.Request { return signed(t, testSecret, "d-1", now, body) }, false, "bad signature"},
		{"tampered body", Options{Secrets: []string{testSecret}}, func() *http.Request {
			r := signed(t, testSecret, "d-1", now, body)
			tampered := strings.Replace(body, `"d":1`, `"d":2`, 1)
			r.Body = http.NoBody
			r2 := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(tampered))
			r2.Header = r.Header
			return r2
		}, false, "bad signature"},
		{"stale", Options{Secrets: []string{testSecret}}, func() *http.Request { return signed(t, testSecret, "d-1", now.Add(-10*time.Minute), body) }, false, "stale timestamp: 10m0s old"},
		{"future", Options{Secrets: []string{testSecret}}, func() *http.Request { return signed(t, testSecret, "d-1", now.Add(6*time.Minute), body) }, false, "in the future"},
		{"unsigned", Options{Secrets: []string{testSecret}}, func() *http.Request {
			return httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		}, false, "missing headers: webhook-id, webhook-timestamp, webhook-signature"},
		{"malformed timestamp", Options{Secrets: []string{testSecret}}, func() *http.Request {
			r := signed(t, testSecret, "d-1", now, body)
			r.Header.Set("webhook-timestamp", "soon")
			return r
		}, false, `malformed webhook-timestamp "soon"`},
		{"no secret", Options{}, func() *http.Request { return signed(t, testSecret, "d-1", now, body) }, false, "no secret"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Now = clock
			d, w := serve(t, c.opts, c.req())
			if d.Verified != c.verified || !strings.Contains(d.Reason, c.reason) {
				t.Errorf("verified %v (%q), want %v (%q)", d.Verified, d.Reason, c.verified, c.reason)
			}
			if w.Code != 200 || d.Status != 200 {
				t.Errorf("answered %d (reported %d), want 200", w.Code, d.Status)
			}
			if d.EventType != "deployment.applied" || d.EventID != "ev-1" {
				t.Errorf("event %q %q", d.EventType, d.EventID)
			}
		})
	}
}

func TestAnswers(t *testing.T) {
	// Another status, for watching retries.
	d, w := serve(t, Options{Status: 503}, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}")))
	if w.Code != 503 || d.Status != 503 {
		t.Errorf("answered %d, want 503", w.Code)
	}
	// A body over the limit is 413.
	d, w = serve(t, Options{MaxBody: 10}, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", 11))))
	if w.Code != 413 || d.Verified || !strings.Contains(d.Reason, "larger than 10 bytes") {
		t.Errorf("answered %d %+v, want 413", w.Code, d)
	}
	// Only POST.
	d, w = serve(t, Options{}, httptest.NewRequest(http.MethodGet, "/x?y=1", nil))
	if w.Code != 405 || d.Method != "GET" || d.Path != "/x?y=1" {
		t.Errorf("GET answered %d %+v", w.Code, d)
	}
	// A bad secret is refused up front.
	if _, err := New(Options{Secrets: []string{"nope"}}, func(Delivery) {}); err == nil {
		t.Error("a malformed secret was accepted")
	}
	// A body that is not JSON is kept as text; the event type comes from the body when no header names it.
	d, _ = serve(t, Options{}, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("plain text")))
	if d.Text != "plain text" || d.Body != nil {
		t.Errorf("text body: %+v", d)
	}
	d, _ = serve(t, Options{}, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"event_type":"stack.created"}`)))
	if d.EventType != "stack.created" {
		t.Errorf("event type from the body: %q", d.EventType)
	}
}

func TestPrinter(t *testing.T) {
	d := Delivery{Time: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), Method: "POST", Path: "/", DeliveryID: "d-1",
		WebhookID: "w-1", EventType: "deployment.applied", EventID: "ev-1", Verified: true, Status: 200,
		Body: json.RawMessage(`{"a":{"b":1}}`)}
	var b bytes.Buffer
	Printer{W: &b, Mode: Full}.Print(d)
	want := "2026-11-30T12:00:00Z  deployment.applied  delivery=d-1 webhook=w-1 event=ev-1  verified  -> 200\n" +
		"  {\n    \"a\": {\n      \"b\": 1\n    }\n  }\n"
	if b.String() != want {
		t.Errorf("full:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	d.Verified, d.Reason = false, "bad signature"
	Printer{W: &b, Mode: Quiet}.Print(d)
	if !strings.HasSuffix(b.String(), "NOT verified (bad signature)  -> 200\n") || strings.Count(b.String(), "\n") != 1 {
		t.Errorf("quiet: %q", b.String())
	}
	b.Reset()
	Printer{W: &b, Mode: Full}.Print(Delivery{Method: "POST", Text: "a\x1b[2Jb\nc", Status: 200})
	if strings.Contains(b.String(), "\x1b") || !strings.HasSuffix(b.String(), "  a?[2Jb\n  c\n") {
		t.Errorf("a text body reached the terminal as it came: %q", b.String())
	}
	b.Reset()
	Printer{W: &b, Mode: JSON}.Print(d)
	var back Delivery
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.DeliveryID != "d-1" || back.Verified || back.Reason != "bad signature" ||
		string(back.Body) != `{"a":{"b":1}}` {
		t.Errorf("json line %q: %v", b.String(), err)
	}
}
