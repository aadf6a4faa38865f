package apiclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNewRefusesBadServers(t *testing.T) {
	for _, s := range []string{"", "127.0.0.1:8080", "ftp://h", "http://", "://x"} {
		if _, err := New(s, "k", "", nil); err == nil {
			t.Errorf("server %q accepted", s)
		}
	}
}

func TestRequestsAndErrors(t *testing.T) {
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		switch r.URL.EscapedPath() {
		case "/base/api/v1/webhooks/a%2Fb":
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"code":"not_found","message":"webhook not found","details":{},"request_id":"R1"}`)
		case "/base/api/v1/webhooks/w/secret/rotate":
			_, _ = io.WriteString(w, `{"secret":"whsec_x","previous_secret_expires_at":null}`)
		case "/base/api/v1/webhooks/w/stats":
			w.WriteHeader(422)
			_, _ = io.WriteString(w, `{"code":"invalid_field","message":"window must be between 1m and 24h","details":{"field":"window"},"request_id":"R2"}`)
		default:
			w.WriteHeader(503)
			_, _ = io.WriteString(w, strings.Repeat("x", 300))
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL+"/base/", "key-1", "hermodctl/test", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// An id is one path segment, escaped.
	_, _, err = c.GetWebhook(ctx, "a/b")
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Code != "not_found" || ae.RequestID != "R1" || !IsStatus(err, 404) ||
		err.Error() != "webhook not found (not_found, HTTP 404)" {
		t.Errorf("404: %#v %v", ae, err)
	}
	if got.Header.Get("Authorization") != "Bearer key-1" || got.Header.Get("User-Agent") != "hermodctl/test" {
		t.Errorf("headers %v", got.Header)
	}
	// The field of a 422 is named when the message does not name it.
	_, _, err = c.WebhookStats(ctx, "w", "0s")
	if err == nil || err.Error() != "window must be between 1m and 24h (invalid_field, HTTP 422)" || got.URL.RawQuery != "window=0s" {
		t.Errorf("422: %v %q", err, got.URL.RawQuery)
	}
	// A body is sent as JSON, empty fields left out.
	overlap := 0
	s, raw, err := c.RotateSecret(ctx, "w", RotateRequest{OverlapSeconds: &overlap})
	if err != nil || s.Secret != "whsec_x" || body != `{"overlap_seconds":0}` || got.Header.Get("Content-Type") != "application/json" ||
		string(raw) != `{"secret":"whsec_x","previous_secret_expires_at":null}` {
		t.Errorf("rotate: %v %+v %q", err, s, body)
	}
	// What is not the envelope is kept short.
	_, _, err = c.ListAgents(ctx, PageOptions{Limit: 5, Cursor: "c"})
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != "" || len(ae.Message) > 250 || !strings.HasPrefix(err.Error(), "HTTP 503: Service Unavailable: xxx") ||
		got.URL.RawQuery != "cursor=c&limit=5" {
		t.Errorf("503: %v %q", err, got.URL.RawQuery)
	}
}
