package allinone_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// A webhook's custom headers arrive with every delivery and with the test
// event, next to a valid signature; the API shows their names, never their
// values; a header Hermod owns is refused (422 naming it) and never replaces
// the signature; null clears them.
func TestWebhookCustomHeaders(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s := hermodtest.NewSink(t)
		const ddKey = "dd-s3cret-api-key"
		id := p.createWebhook(map[string]any{"name": "datadog", "url": s.URL, "event_types": []string{"alert.*"},
			"secret": testSecret, "headers": map[string]any{"DD-API-KEY": ddKey, "x-scope-orgid": "tenant-7"}})

		w := p.must(200, "GET", "/api/v1/webhooks/"+id, nil)
		names, _ := w["header_names"].([]any)
		if w["has_headers"] != true || fmt.Sprint(names) != "[Dd-Api-Key X-Scope-Orgid]" {
			t.Errorf("view: has_headers %v, header_names %v", w["has_headers"], w["header_names"])
		}
		if _, ok := w["headers"]; ok {
			t.Errorf("the view has a headers member: %v", w)
		}
		for _, path := range []string{"/api/v1/webhooks", "/api/v1/webhooks/" + id} {
			if _, b := p.do("GET", path, nil); strings.Contains(string(b), ddKey) || strings.Contains(string(b), "tenant-7") {
				t.Errorf("GET %s returns a header value: %s", path, b)
			}
		}

		p.publish("alert.triggered", map[string]any{"severity": "critical"})
		p.waitStatus(id, "success", 1, 15*time.Second)
		r := p.must(200, "POST", "/api/v1/webhooks/"+id+"/test", nil)
		if r["success"] != true {
			t.Fatalf("test delivery: %v", r)
		}
		got := s.Received()
		if len(got) != 2 {
			t.Fatalf("sink got %d requests, want the delivery and the test", len(got))
		}
		for i, rc := range got {
			if v := rc.Header.Values("Dd-Api-Key"); len(v) != 1 || v[0] != ddKey {
				t.Errorf("request %d: DD-API-KEY %q", i, v)
			}
			if v := rc.Header.Values("X-Scope-OrgID"); len(v) != 1 || v[0] != "tenant-7" {
				t.Errorf("request %d: X-Scope-OrgID %q", i, v)
			}
			if v := rc.Header.Values("Webhook-Signature"); len(v) != 1 {
				t.Errorf("request %d: %d webhook-signature headers", i, len(v))
			}
			verifySig(t, testSecret, rc)
		}
		if logs := p.Logs.String(); strings.Contains(logs, ddKey) {
			t.Errorf("logs contain the header value")
		}

		// Hermod's own headers, hop-by-hop ones and CRLF are refused at the
		// edge, on create and on update, naming the header.
		for _, c := range []struct {
			headers map[string]any
			field   string
		}{
			{map[string]any{"webhook-signature": "v1,Zm9yZ2Vk"}, "headers.webhook-signature"},
			{map[string]any{"Webhook-Timestamp": "1"}, "headers.Webhook-Timestamp"},
			{map[string]any{"user-agent": "x"}, "headers.user-agent"},
			{map[string]any{"Authorization": "Bearer x"}, "headers.Authorization"},
			{map[string]any{"Transfer-Encoding": "chunked"}, "headers.Transfer-Encoding"},
			{map[string]any{"X-A": "1\r\nWebhook-Signature: v1,Zm9yZ2Vk"}, "headers.X-A"},
			{map[string]any{"bad name": "1"}, "headers.bad name"},
		} {
			code, body := p.do("POST", "/api/v1/webhooks", map[string]any{"name": "n", "url": s.URL, "event_types": []string{"*"}, "headers": c.headers})
			if code != 422 {
				t.Errorf("create with %v: %d %s", c.headers, code, body)
				continue
			}
			if _, d := errorEnvelope(t, body); d["field"] != c.field {
				t.Errorf("create with %v: field %v, want %s", c.headers, d["field"], c.field)
			}
			code, body = p.do("PATCH", "/api/v1/webhooks/"+id, map[string]any{"headers": c.headers})
			if _, d := errorEnvelope(t, body); code != 422 || d["field"] != c.field {
				t.Errorf("update with %v: %d %s", c.headers, code, body)
			}
		}
		code, body := p.do("POST", "/api/v1/webhooks", map[string]any{"name": "n", "url": s.URL, "event_types": []string{"*"}, "headers": "X-A: 1"})
		if _, d := errorEnvelope(t, body); code != 422 || d["field"] != "headers" {
			t.Errorf("headers as a string: %d %s", code, body)
		}

		// An update replaces them; null clears them.
		w = p.must(200, "PUT", "/api/v1/webhooks/"+id, map[string]any{"headers": map[string]any{"X-Other": "o"}})
		if fmt.Sprint(w["header_names"]) != "[X-Other]" {
			t.Errorf("after the update: header_names %v", w["header_names"])
		}
		w = p.must(200, "PATCH", "/api/v1/webhooks/"+id, map[string]any{"headers": nil})
		if w["has_headers"] != false || fmt.Sprint(w["header_names"]) != "[]" {
			t.Errorf("after null: has_headers %v, header_names %v", w["has_headers"], w["header_names"])
		}
		p.publish("alert.resolved", map[string]any{})
		p.waitStatus(id, "success", 2, 15*time.Second)
		hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(s, 3) })
		last := s.Received()[2]
		for _, h := range []string{"Dd-Api-Key", "X-Other", "X-Scope-Orgid"} {
			if v := last.Header.Values(h); len(v) != 0 {
				t.Errorf("after the headers were cleared: %s %q", h, v)
			}
		}
		verifySig(t, testSecret, last)
	})
}
