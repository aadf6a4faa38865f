package allinone_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	allinone "github.com/hermodhq/hermod/services/hermod"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

func errorEnvelope(t *testing.T, body []byte) (string, map[string]any) {
	t.Helper()
	var e struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code == "" || e.Message == "" || e.Details == nil {
		t.Fatalf("not an error envelope: %s", body)
	}
	return e.Code, e.Details
}

// Every /api/v1 route answers 401 with the envelope without the key, and
// with a wrong key; /openapi.json and health are public.
func TestAuthRequiredEverywhere(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		id := "9b0b3c38-5d6a-4a57-9a8e-0f3f5d2f7a11"
		routes := [][2]string{{"POST", "/api/v1/webhooks"}, {"GET", "/api/v1/webhooks"}, {"GET", "/api/v1/webhooks/" + id},
			{"PUT", "/api/v1/webhooks/" + id}, {"PATCH", "/api/v1/webhooks/" + id}, {"DELETE", "/api/v1/webhooks/" + id},
			{"POST", "/api/v1/webhooks/" + id + "/pause"}, {"POST", "/api/v1/webhooks/" + id + "/resume"},
			{"POST", "/api/v1/webhooks/" + id + "/test"}, {"GET", "/api/v1/webhooks/" + id + "/secret"},
			{"POST", "/api/v1/webhooks/" + id + "/secret/rotate"}, {"GET", "/api/v1/webhooks/" + id + "/stats"},
			{"GET", "/api/v1/webhooks/" + id + "/deliveries"}, {"GET", "/api/v1/deliveries/" + id},
			{"POST", "/api/v1/deliveries/" + id + "/retry"}, {"GET", "/api/v1/event-types"}, {"POST", "/api/v1/events"},
			{"POST", "/api/v1/agents"}, {"GET", "/api/v1/agents"}, {"GET", "/api/v1/agents/a-1"}, {"PUT", "/api/v1/agents/a-1"},
			{"DELETE", "/api/v1/agents/a-1"}, {"GET", "/api/v1/no-such-route"}}
		for _, r := range routes {
			for _, key := range []string{"", "wrong-key-wrong-key-wrong"} {
				code, body := p.doKey(r[0], r[1], "{}", key)
				if code != 401 {
					t.Errorf("%s %s with key %q: %d", r[0], r[1], key, code)
					continue
				}
				if c, _ := errorEnvelope(t, body); c != "unauthorized" {
					t.Errorf("%s %s: code %q", r[0], r[1], c)
				}
			}
		}
		for _, path := range []string{"/openapi.json", "/healthz", "/readyz", "/metrics"} {
			if code, _ := p.doKey("GET", path, nil, ""); code != 200 {
				t.Errorf("%s: %d", path, code)
			}
		}
		code, body := p.doKey("GET", "/openapi.json", nil, "")
		if code != 200 || !strings.Contains(string(body), `"openapi"`) {
			t.Errorf("openapi.json: %d %.100s", code, body)
		}
	})
}

// Validation at the edge: status codes and details.field of section 3.
func TestValidationErrors(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, func(c *allinone.Config) { c.MaxEventBytes = 4096 })
		s := hermodtest.NewSink(t)
		good := func() map[string]any {
			return map[string]any{"name": "v", "url": s.URL, "event_types": []string{"deployment.applied"}}
		}
		with := func(k string, v any) map[string]any { m := good(); m[k] = v; return m }
		without := func(k string) map[string]any { m := good(); delete(m, k); return m }
		cases := []struct {
			name   string
			method string
			path   string
			body   any
			status int
			field  string
		}{
			{"malformed json", "POST", "/api/v1/webhooks", `{"name":`, 400, ""},
			{"not an object", "POST", "/api/v1/webhooks", `[1,2]`, 400, ""},
			{"unknown field", "POST", "/api/v1/webhooks", with("colour", "red"), 422, "colour"},
			{"name missing", "POST", "/api/v1/webhooks", without("name"), 422, "name"},
			{"name null", "POST", "/api/v1/webhooks", with("name", nil), 422, "name"},
			{"name too long", "POST", "/api/v1/webhooks", with("name", strings.Repeat("n", 256)), 422, "name"},
			{"url relative", "POST", "/api/v1/webhooks", with("url", "/hook"), 422, "url"},
			{"url ftp", "POST", "/api/v1/webhooks", with("url", "ftp://127.0.0.1/x"), 422, "url"},
			{"url too long", "POST", "/api/v1/webhooks", with("url", s.URL+"/"+strings.Repeat("a", 2048)), 422, "url"},
			{"event types empty", "POST", "/api/v1/webhooks", with("event_types", []string{}), 422, "event_types"},
			{"event type unknown", "POST", "/api/v1/webhooks", with("event_types", []string{"deployment.exploded"}), 422, "event_types"},
			{"family unknown", "POST", "/api/v1/webhooks", with("event_types", []string{"nope.*"}), 422, "event_types"},
			{"auth header CRLF", "POST", "/api/v1/webhooks", with("auth_header", "Bearer x\r\nX-Evil: 1"), 422, "auth_header"},
			{"secret bad", "POST", "/api/v1/webhooks", with("secret", "whsec_short"), 422, "secret"},
			{"labels bad", "POST", "/api/v1/webhooks", with("target_labels", []string{"no-colon"}), 422, "target_labels"},
			{"filters unknown", "POST", "/api/v1/webhooks", with("filters", map[string]any{"team": "x"}), 422, "filters.team"},
			{"max_retries range", "POST", "/api/v1/webhooks", with("max_retries", 11), 422, "max_retries"},
			{"timeout range", "POST", "/api/v1/webhooks", with("timeout_seconds", 0), 422, "timeout_seconds"},
			{"limit range", "GET", "/api/v1/webhooks?limit=501", nil, 422, "limit"},
			{"limit malformed", "GET", "/api/v1/webhooks?limit=ten", nil, 400, ""},
			{"query malformed", "GET", "/api/v1/webhooks?cursor=%%%", nil, 400, ""},
			{"cursor malformed", "GET", "/api/v1/webhooks?cursor=bm90LWEtY3Vyc29y", nil, 400, ""},
			{"unknown webhook", "GET", "/api/v1/webhooks/9b0b3c38-5d6a-4a57-9a8e-0f3f5d2f7a11", nil, 404, ""},
			{"non-uuid webhook", "GET", "/api/v1/webhooks/abc", nil, 404, ""},
			{"unknown delivery", "GET", "/api/v1/deliveries/9b0b3c38-5d6a-4a57-9a8e-0f3f5d2f7a11", nil, 404, ""},
			{"event unknown type", "POST", "/api/v1/events", map[string]any{"event_type": "x.y", "data": 1}, 422, "event_type"},
			{"event no data", "POST", "/api/v1/events", map[string]any{"event_type": "alert.triggered"}, 422, "data"},
			{"event unknown field", "POST", "/api/v1/events", map[string]any{"event_type": "alert.triggered", "data": 1, "x": 1}, 422, "x"},
			{"event bad id", "POST", "/api/v1/events", map[string]any{"event_type": "alert.triggered", "data": 1, "id": "a b"}, 422, "id"},
			{"event too large", "POST", "/api/v1/events", map[string]any{"event_type": "alert.triggered", "data": strings.Repeat("x", 5000)}, 413, ""},
		}
		for _, c := range cases {
			code, body := p.do(c.method, c.path, c.body)
			if code != c.status {
				t.Errorf("%s: status %d, want %d: %s", c.name, code, c.status, body)
				continue
			}
			_, details := errorEnvelope(t, body)
			if c.field != "" && details["field"] != c.field {
				t.Errorf("%s: details.field %v, want %s", c.name, details["field"], c.field)
			}
		}
		id := p.createWebhook(good())
		for _, c := range []struct {
			body  any
			field string
		}{{map[string]any{"secret": testSecret}, "secret"}, {map[string]any{"url": nil}, "url"}, {map[string]any{"zzz": 1}, "zzz"}} {
			code, body := p.do("PUT", "/api/v1/webhooks/"+id, c.body)
			if code != 422 {
				t.Errorf("PUT %v: %d %s", c.body, code, body)
				continue
			}
			if _, d := errorEnvelope(t, body); d["field"] != c.field {
				t.Errorf("PUT %v: field %v", c.body, d["field"])
			}
		}
		code, body := p.do("GET", "/api/v1/webhooks/"+id+"/deliveries?status=lost", nil)
		if _, d := errorEnvelope(t, body); code != 422 || d["field"] != "status" {
			t.Errorf("unknown status: %d %s", code, body)
		}
		// null clears optional fields; omitted fields stay.
		p.must(200, "PATCH", "/api/v1/webhooks/"+id, map[string]any{"description": "d", "auth_header": "Bearer z", "filters": map[string]any{"stack_id": "s"}})
		w := p.must(200, "PATCH", "/api/v1/webhooks/"+id, map[string]any{"auth_header": nil, "filters": nil})
		if w["has_auth_header"] != false || w["filters"] != nil || w["description"] != "d" || w["name"] != "v" {
			t.Errorf("partial update: %v", w)
		}
		// A body over the limit for other routes is 413 too.
		code, _ = p.do("POST", "/api/v1/webhooks", `{"name":"`+strings.Repeat("a", 70<<10)+`"}`)
		if code != 413 {
			t.Errorf("large webhook body: %d", code)
		}
	})
}

// Cursor pagination returns every webhook once, newest first.
func TestPagination(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s := hermodtest.NewSink(t)
		var created []string
		for i := 0; i < 7; i++ {
			created = append(created, p.createWebhook(map[string]any{"name": "w", "url": s.URL, "event_types": []string{"*"}}))
		}
		var seen []string
		cursor := ""
		for pages := 0; pages < 10; pages++ {
			path := "/api/v1/webhooks?limit=3"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			m := p.must(200, "GET", path, nil)
			for _, w := range m["data"].([]any) {
				seen = append(seen, w.(map[string]any)["id"].(string))
			}
			if m["next_cursor"] == nil {
				break
			}
			cursor = m["next_cursor"].(string)
		}
		if len(seen) != 7 {
			t.Fatalf("saw %d webhooks: %v", len(seen), seen)
		}
		for i := range seen {
			if seen[i] != created[len(created)-1-i] {
				t.Fatalf("order %v, want newest first of %v", seen, created)
			}
		}
		et := p.must(200, "GET", "/api/v1/event-types", nil)
		if len(et["data"].([]any)) < 20 {
			t.Errorf("catalogue: %v", et)
		}
	})
}

// The url's path and query, the auth header, custom header values and the
// secret appear in no response (except the secret endpoint), no log line and
// no Redis value.
func TestSecretsNeverExposed(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s := hermodtest.NewSink(t)
		s.SetAnswer(func(n int, _ *http.Request) int {
			if n == 1 {
				return 500
			}
			return 200
		})
		const pathSecret = "/hooks/p4th-s3cret-token"
		const authSecret = "Bearer auth-s3cret-value"
		id := p.createWebhook(map[string]any{"name": "sec", "url": "http://user:pw-s3cret@" + strings.TrimPrefix(s.URL, "http://") + pathSecret + "?key=q-s3cret",
			"event_types": []string{"*"}, "auth_header": authSecret, "secret": testSecret,
			"headers": map[string]any{"X-Vendor-Key": "hdr-s3cret-value"}})
		p.publish("alert.triggered", map[string]any{"x": 1})
		ds := p.waitStatus(id, "success", 1, 15*time.Second)
		p.must(200, "POST", "/api/v1/webhooks/"+id+"/test", nil)
		secrets := []string{"p4th-s3cret-token", "auth-s3cret-value", "q-s3cret", "pw-s3cret", "hdr-s3cret-value", strings.TrimPrefix(testSecret, "whsec_")}
		var bodies []string
		for _, path := range []string{"/api/v1/webhooks", "/api/v1/webhooks/" + id, "/api/v1/webhooks/" + id + "/deliveries",
			"/api/v1/deliveries/" + ds[0]["id"].(string), "/api/v1/webhooks/" + id + "/stats"} {
			_, b := p.do("GET", path, nil)
			bodies = append(bodies, string(b))
		}
		_, b := p.do("POST", "/api/v1/webhooks/"+id+"/pause", nil)
		bodies = append(bodies, string(b))
		for _, body := range bodies {
			for _, sec := range secrets {
				if strings.Contains(body, sec) {
					t.Errorf("response contains %q: %.200s", sec, body)
				}
			}
		}
		w := p.must(200, "GET", "/api/v1/webhooks/"+id, nil)
		if w["url_redacted"] != s.URL || w["has_url"] != true || w["has_auth_header"] != true {
			t.Errorf("webhook view %v", w)
		}
		logs := p.Logs.String()
		if !strings.Contains(logs, "delivery attempt") {
			t.Fatalf("no attempt log lines captured")
		}
		for _, sec := range secrets {
			if strings.Contains(logs, sec) {
				t.Errorf("logs contain %q", sec)
			}
		}
		rdb := p.Redis.Client(t)
		ctx := context.Background()
		keys, err := rdb.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			var val string
			switch rdb.Type(ctx, k).Val() {
			case "string":
				val = rdb.Get(ctx, k).Val()
			case "hash":
				b, _ := json.Marshal(rdb.HGetAll(ctx, k).Val())
				val = string(b)
			case "zset":
				b, _ := json.Marshal(rdb.ZRange(ctx, k, 0, -1).Val())
				val = string(b)
			}
			for _, sec := range secrets {
				if strings.Contains(val, sec) {
					t.Errorf("redis key %s holds %q", k, sec)
				}
			}
		}
		// The secret endpoint is the one place the secret is returned.
		if sec := p.must(200, "GET", "/api/v1/webhooks/"+id+"/secret", nil); sec["secret"] != testSecret {
			t.Errorf("secret endpoint %v", sec)
		}
	})
}

// SSRF: with an empty allow-list a webhook to 127.0.0.1 is never contacted
// and ends dead with a clear error.
func TestSSRFGuardRefusesLoopback(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, func(c *allinone.Config) { c.AllowCIDRs = "none" })
		s := hermodtest.NewSink(t)
		id := p.createWebhook(map[string]any{"name": "ssrf", "url": s.URL, "event_types": []string{"*"}})
		p.publish("deployment.created", map[string]any{})
		ds := p.waitStatus(id, "dead", 1, 10*time.Second)
		if s.Count() != 0 {
			t.Fatalf("guarded deliverer contacted the sink %d times", s.Count())
		}
		msg, _ := ds[0]["last_error"].(string)
		if !strings.Contains(msg, "SSRF") || !strings.Contains(msg, "HERMOD_DELIVERY_ALLOW_CIDRS") {
			t.Errorf("last_error %q does not explain the refusal", msg)
		}
		r := p.must(200, "POST", "/api/v1/webhooks/"+id+"/test", nil)
		if r["success"] != false || !strings.Contains(r["error"].(string), "SSRF") || s.Count() != 0 {
			t.Errorf("test endpoint reached a refused address: %v (sink %d)", r, s.Count())
		}
	})
}

// Redis stopped mid-load: deliveries continue; every record appears once it
// is back.
func TestRedisOutageLosesNoRecord(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s := hermodtest.NewSink(t)
		id := p.createWebhook(map[string]any{"name": "r", "url": s.URL, "event_types": []string{"alert.*"}})
		const n = 40
		for i := 0; i < n/2; i++ {
			p.publish("alert.triggered", map[string]any{"i": i})
		}
		p.Redis.Stop()
		// Publish straight into JetStream while Redis is down (the API needs Redis only for webhooks).
		for i := n / 2; i < n; i++ {
			body, _ := json.Marshal(map[string]any{"id": "outage-" + string(rune('a'+i%26)) + strings.Repeat("x", i),
				"event_type": "alert.resolved", "timestamp": time.Now().UTC().Format(time.RFC3339), "data": map[string]any{"i": i}})
			if _, err := p.JS.Publish(context.Background(), "alert.resolved", body); err != nil {
				t.Fatal(err)
			}
		}
		hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error { return sinkGot(s, n) })
		if err := p.Redis.Start(); err != nil {
			t.Fatal(err)
		}
		p.waitStatus(id, "success", n, 30*time.Second)
		if s.Count() != n {
			t.Errorf("sink got %d requests, want %d", s.Count(), n)
		}
		w := p.must(200, "GET", "/api/v1/webhooks/"+id, nil)
		if w["total_delivered"].(float64) != n {
			t.Errorf("total_delivered %v, want %d", w["total_delivered"], n)
		}
	})
}

// A retry whose publish fails (the deliveries stream refuses every message)
// answers 503 and changes nothing: the delivery stays dead, and once the
// stream takes messages again a retry is accepted and delivered, with the
// same webhook-id.
func TestAPIRetryAfterFailedPublish(t *testing.T) {
	p := startPipeline(t, nil)
	ctx := context.Background()
	s := hermodtest.NewSink(t)
	var gone atomic.Bool
	gone.Store(true)
	s.SetAnswer(func(int, *http.Request) int {
		if gone.Load() {
			return 404 // terminal: dead after one attempt
		}
		return 200
	})
	wid := p.createWebhook(map[string]any{"name": "r", "url": s.URL, "event_types": []string{"stack.created"}})
	p.publish("stack.created", map[string]any{"stack_id": "s-1"})
	did := p.waitStatus(wid, "dead", 1, 10*time.Second)[0]["id"].(string)

	// The failure: a message size limit of one byte on the deliveries stream.
	stream, err := p.JS.Stream(ctx, streams.DeliveriesStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	healthy := info.Config
	broken := healthy
	broken.MaxMsgSize = 1
	if _, err := p.JS.UpdateStream(ctx, broken); err != nil {
		t.Fatal(err)
	}
	code, body := p.do("POST", "/api/v1/deliveries/"+did+"/retry", nil)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("retry with the stream refusing messages: %d %s", code, body)
	}
	if c, d := errorEnvelope(t, body); c != "unavailable" || d["dependency"] != "nats" {
		t.Fatalf("retry with the stream refusing messages: %s", body)
	}
	if d := p.must(200, "GET", "/api/v1/deliveries/"+did, nil); d["status"] != "dead" {
		t.Fatalf("after a failed retry the delivery is %v, want still dead", d["status"])
	}

	// The cause removed: the next retry is accepted and delivered.
	if _, err := p.JS.UpdateStream(ctx, healthy); err != nil {
		t.Fatal(err)
	}
	gone.Store(false)
	p.must(202, "POST", "/api/v1/deliveries/"+did+"/retry", nil)
	ok := p.waitStatus(wid, "success", 1, 10*time.Second)
	if ok[0]["id"] != did {
		t.Errorf("delivered %v, want %s", ok[0]["id"], did)
	}
	got := s.Received()
	if len(got) != 2 || got[1].Header.Get("webhook-id") != did {
		t.Errorf("sink got %d requests (want 2), last webhook-id %q, want %s", len(got), got[len(got)-1].Header.Get("webhook-id"), did)
	}
}
