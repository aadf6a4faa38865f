package allinone_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	allinone "github.com/hermodhq/hermod/services/hermod"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/signing"
	"github.com/hermodhq/hermod/shared/streams"
)

const testSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes

func verifySig(t *testing.T, secret string, r hermodtest.Received) {
	t.Helper()
	key, err := signing.Key(secret)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp: %v", err)
	}
	if !signing.Verify(key, r.Header.Get("webhook-id"), ts, r.Body, r.Header.Get("webhook-signature")) {
		t.Fatalf("signature %q does not verify", r.Header.Get("webhook-signature"))
	}
}

// Exactly the matching webhooks receive each event, once, with the Standard Webhooks
// headers, body and signature; events come in over HTTP and straight into
// JetStream.
func TestFanOutMatchesAndSigns(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		sinks := map[string]*hermodtest.Sink{}
		ids := map[string]string{}
		for name, spec := range map[string]map[string]any{
			"exact":    {"event_types": []string{"deployment.applied"}, "auth_header": "Bearer token-abc  x"},
			"family":   {"event_types": []string{"deployment.*", "deployment.applied"}},
			"star":     {"event_types": []string{"*"}},
			"other":    {"event_types": []string{"instance.crash"}},
			"filtered": {"event_types": []string{"deployment.*"}, "filters": map[string]any{"agent_id": "a-1", "labels": map[string]string{"env": "prod"}}},
		} {
			s := hermodtest.NewSink(t)
			sinks[name] = s
			spec["name"] = name
			spec["url"] = s.URL + "/hook/" + name + "?q=1"
			spec["secret"] = testSecret
			ids[name] = p.createWebhook(spec)
		}
		// Over HTTP: matches exact, family, star; filtered needs agent_id and labels.
		ev1 := p.publish("deployment.applied", map[string]any{"deployment_id": "d-1"})
		// Straight into JetStream, with labels and agent_id: filtered matches too.
		env := map[string]any{"id": "evt-direct-1", "event_type": "deployment.failed", "timestamp": time.Now().UTC().Format(time.RFC3339),
			"data": map[string]any{"agent_id": "a-1"}, "labels": map[string]string{"env": "prod"}}
		body, _ := json.Marshal(env)
		if _, err := p.JS.PublishMsg(context.Background(), &nats.Msg{Subject: "deployment.failed", Data: body,
			Header: nats.Header{"Nats-Msg-Id": {"evt-direct-1"}}}); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"exact": 1, "family": 2, "star": 2, "other": 0, "filtered": 1}
		for name, n := range want {
			if n == 0 {
				continue
			}
			s, name := sinks[name], name
			hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
				if err := sinkGot(s, n); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				return nil
			})
		}
		// Once nothing is in hand, a duplicate or a delivery to a webhook
		// that does not match would have been sent: the counts are final.
		p.waitStatus(ids["star"], "success", 2, 10*time.Second)
		p.waitIdle(10 * time.Second)
		for name, n := range want {
			if got := sinks[name].Count(); got != n {
				t.Errorf("%s received %d requests, want %d", name, got, n)
			}
		}
		r := sinks["exact"].Received()[0]
		if r.Path != "/hook/exact" {
			t.Errorf("path %q", r.Path)
		}
		for h, v := range map[string]string{"Content-Type": "application/json", "X-Hermod-Event-Type": "deployment.applied",
			"Authorization": "Bearer token-abc  x"} {
			if got := r.Header.Get(h); got != v {
				t.Errorf("header %s = %q, want %q", h, got, v)
			}
		}
		if !strings.HasPrefix(r.Header.Get("User-Agent"), "Hermod/") {
			t.Errorf("User-Agent %q", r.Header.Get("User-Agent"))
		}
		if r.Header.Get("X-Hermod-Delivery-Id") != r.Header.Get("webhook-id") || r.Header.Get("webhook-id") == "" {
			t.Errorf("delivery id headers differ: %q %q", r.Header.Get("X-Hermod-Delivery-Id"), r.Header.Get("webhook-id"))
		}
		verifySig(t, testSecret, r)
		var got map[string]any
		if err := json.Unmarshal(r.Body, &got); err != nil {
			t.Fatal(err)
		}
		if got["id"] != ev1 || got["event_type"] != "deployment.applied" || got["timestamp"] == "" {
			t.Errorf("envelope %s", r.Body)
		}
		if d, _ := got["data"].(map[string]any); d["deployment_id"] != "d-1" {
			t.Errorf("data %v", got["data"])
		}
		if sinks["other"].Count() != 0 {
			t.Errorf("non-matching webhook received")
		}
		// The filtered webhook got the direct event, with its labels in the envelope.
		fr := sinks["filtered"].Received()[0]
		if !strings.Contains(string(fr.Body), `"labels":{"env":"prod"}`) {
			t.Errorf("labels missing from envelope: %s", fr.Body)
		}
		// Delivery records show who delivered and the attempt history.
		ds := p.waitStatus(ids["exact"], "success", 1, 5*time.Second)
		d := p.must(200, "GET", "/api/v1/deliveries/"+ds[0]["id"].(string), nil)
		if d["delivered_by"] != "broker" || d["attempts"].(float64) != 1 {
			t.Errorf("delivery %v", d)
		}
		hist := d["attempt_history"].([]any)
		if len(hist) != 1 || hist[0].(map[string]any)["status_code"].(float64) != 200 {
			t.Errorf("history %v", hist)
		}
		if pl, _ := d["payload"].(map[string]any); pl["id"] != ev1 {
			t.Errorf("payload %v", d["payload"])
		}
	})
}

// 503, 503, 200: success on the third attempt, spaced about 2 s and 4 s.
func TestRetryBackoffThenSuccess(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s := hermodtest.NewSink(t)
		s.SetAnswer(func(n int, _ *http.Request) int {
			if n <= 2 {
				return 503
			}
			return 200
		})
		id := p.createWebhook(map[string]any{"name": "retry", "url": s.URL, "event_types": []string{"alert.triggered"}})
		p.publish("alert.triggered", map[string]any{"alert": "cpu"})
		ds := p.waitStatus(id, "success", 1, 20*time.Second)
		got := s.Received()
		if len(got) != 3 {
			t.Fatalf("%d requests, want 3", len(got))
		}
		for i, want := range []time.Duration{2 * time.Second, 4 * time.Second} {
			gap := got[i+1].At.Sub(got[i].At)
			if gap < want*85/100 || gap > want*125/100+300*time.Millisecond {
				t.Errorf("gap %d = %s, want about %s (±10%% jitter)", i+1, gap, want)
			}
			if got[i+1].Header.Get("webhook-id") != got[0].Header.Get("webhook-id") {
				t.Errorf("webhook-id changed across retries")
			}
		}
		d := p.must(200, "GET", "/api/v1/deliveries/"+ds[0]["id"].(string), nil)
		if d["attempts"].(float64) != 3 {
			t.Errorf("attempts %v", d["attempts"])
		}
		hist := d["attempt_history"].([]any)
		if len(hist) != 3 {
			t.Fatalf("history %v", hist)
		}
		for i, code := range []float64{503, 503, 200} {
			if hist[i].(map[string]any)["status_code"].(float64) != code {
				t.Errorf("attempt %d status %v", i+1, hist[i])
			}
		}
	})
}

// A 404 is terminal: dead after one attempt, in the dead-letter stream.
// Exhausted retries die too, and retry brings a dead delivery back with the
// same webhook-id.
func TestDeadLettersAndRetry(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s404 := hermodtest.NewSink(t)
		s404.SetAnswer(func(int, *http.Request) int { return 404 })
		w404 := p.createWebhook(map[string]any{"name": "gone", "url": s404.URL, "event_types": []string{"stack.created"}})
		s500 := hermodtest.NewSink(t)
		var fail atomic.Bool
		fail.Store(true)
		s500.SetAnswer(func(int, *http.Request) int {
			if fail.Load() {
				return 500
			}
			return 200
		})
		w500 := p.createWebhook(map[string]any{"name": "flaky", "url": s500.URL, "event_types": []string{"stack.deleted"}, "max_retries": 2})
		p.publish("stack.created", map[string]any{"stack_id": "s-1"})
		p.publish("stack.deleted", map[string]any{"stack_id": "s-1"})

		dead := p.waitStatus(w404, "dead", 1, 10*time.Second)
		if s404.Count() != 1 || dead[0]["attempts"].(float64) != 1 || dead[0]["dead_reason"] != "terminal" {
			t.Errorf("404: %d requests, record %v", s404.Count(), dead[0])
		}
		dead5 := p.waitStatus(w500, "dead", 1, 15*time.Second)
		if s500.Count() != 2 || dead5[0]["dead_reason"] != "exhausted" || dead5[0]["last_status_code"].(float64) != 500 {
			t.Errorf("500: %d requests, record %v", s500.Count(), dead5[0])
		}
		hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
			n404, n500 := p.streamMsgs(streams.DeadStream, streams.DeadSubject(w404)), p.streamMsgs(streams.DeadStream, streams.DeadSubject(w500))
			if n404 != 1 || n500 != 1 {
				return fmt.Errorf("dead letters: %d of the 404 webhook, %d of the 500 webhook; want 1 each", n404, n500)
			}
			return nil
		})
		if m := p.metrics(); !strings.Contains(m, "hermod_dead_letters 2") {
			t.Errorf("dead-letter depth missing:\n%s", grepLines(m, "dead"))
		}
		// Retry: only a dead delivery (409 otherwise), same id, fresh budget.
		did := dead5[0]["id"].(string)
		code, body := p.do("POST", "/api/v1/deliveries/"+did+"/retry", nil)
		if code != 202 {
			t.Fatalf("retry: %d %s", code, body)
		}
		fail.Store(false)
		ok := p.waitStatus(w500, "success", 1, 10*time.Second)
		if ok[0]["id"] != did {
			t.Errorf("retried delivery has id %v, want %s", ok[0]["id"], did)
		}
		got := s500.Received()
		if got[len(got)-1].Header.Get("webhook-id") != did {
			t.Errorf("retried webhook-id %q, want %s", got[len(got)-1].Header.Get("webhook-id"), did)
		}
		if code, _ := p.do("POST", "/api/v1/deliveries/"+did+"/retry", nil); code != 409 {
			t.Errorf("retry of a successful delivery: %d, want 409", code)
		}
		if len(p.deliveries(w500, "dead")) != 0 {
			t.Errorf("retried delivery still listed as dead")
		}
	})
}

// Pause holds (nothing sent, nothing lost); resume delivers what was held
// without spending attempts. Pause and resume are idempotent.
func TestPauseHoldsResumeDelivers(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s := hermodtest.NewSink(t)
		id := p.createWebhook(map[string]any{"name": "p", "url": s.URL, "event_types": []string{"cluster.*"}})
		for i := 0; i < 2; i++ {
			if w := p.must(200, "POST", "/api/v1/webhooks/"+id+"/pause", nil); w["status"] != "paused" || w["enabled"] != false {
				t.Fatalf("pause: %v", w)
			}
		}
		for i := 0; i < 3; i++ {
			p.publish("cluster.degraded", map[string]any{"i": i})
		}
		hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
			if n := p.streamMsgs(streams.HeldStream, streams.HeldSubject(id)); n != 3 {
				return fmt.Errorf("%d of 3 deliveries held", n)
			}
			return nil
		})
		// Nothing in hand: a copy routed or released to the deliverers
		// would have been sent by now.
		p.waitIdle(5 * time.Second)
		if s.Count() != 0 {
			t.Fatalf("paused webhook received %d requests", s.Count())
		}
		pending := p.deliveries(id, "pending")
		if len(pending) != 3 {
			t.Fatalf("%d pending while paused, want 3", len(pending))
		}
		one := p.must(200, "GET", "/api/v1/deliveries/"+pending[0]["id"].(string), nil)
		if h, ok := one["attempt_history"].([]any); !ok || len(h) != 0 || one["payload"] == nil {
			t.Errorf("single view of a delivery without attempts: %v", one)
		}
		if m := p.metrics(); !strings.Contains(m, `hermod_webhook_backlog{state="held",webhook_id="`+id+`"} 3`) ||
			!strings.Contains(m, `hermod_webhook_backlog_oldest_seconds{webhook_id="`+id+`"}`) {
			t.Errorf("metrics do not show the held backlog:\n%s", grepLines(m, "backlog"))
		}
		p.must(200, "PUT", "/api/v1/webhooks/"+id, map[string]any{"enabled": true})
		p.must(200, "POST", "/api/v1/webhooks/"+id+"/resume", nil)
		hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(s, 3) })
		ds := p.waitStatus(id, "success", 3, 5*time.Second)
		for _, d := range ds {
			if d["attempts"].(float64) != 1 {
				t.Errorf("held delivery used %v attempts", d["attempts"])
			}
		}
		if n := p.streamMsgs(streams.HeldStream, streams.HeldSubject(id)); n != 0 {
			t.Errorf("%d messages still held", n)
		}
	})
}

// Delete drops queued, delayed and held deliveries: none is sent.
func TestDeleteDropsQueued(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s := hermodtest.NewSink(t)
		s.SetAnswer(func(int, *http.Request) int { return 503 })
		id := p.createWebhook(map[string]any{"name": "d", "url": s.URL, "event_types": []string{"instance.*"}})
		p.publish("instance.started", map[string]any{})
		hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(s, 1) })
		// The failed attempt's record: its retry is due at next_retry_at.
		retry := p.waitStatus(id, "failed", 1, 5*time.Second)[0]
		due, err := time.Parse(time.RFC3339Nano, fmt.Sprint(retry["next_retry_at"]))
		if err != nil {
			t.Fatalf("next_retry_at of a failed delivery: %v (%v)", err, retry)
		}
		held := p.createWebhook(map[string]any{"name": "h", "url": s.URL, "event_types": []string{"workorder.*"}, "enabled": false})
		p.publish("workorder.created", map[string]any{})
		hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
			if n := p.streamMsgs(streams.HeldStream, streams.HeldSubject(held)); n != 1 {
				return fmt.Errorf("%d of 1 delivery held", n)
			}
			return nil
		})
		p.must(204, "DELETE", "/api/v1/webhooks/"+id, nil)
		p.must(204, "DELETE", "/api/v1/webhooks/"+held, nil)
		p.must(404, "GET", "/api/v1/webhooks/"+id, nil)
		if n := p.streamMsgs(streams.HeldStream, streams.HeldSubject(held)); n != 0 {
			t.Errorf("%d held messages survive delete", n)
		}
		if n := p.streamMsgs(streams.DeliveriesStream, streams.DelaySubject(id)); n != 0 {
			t.Errorf("%d delayed messages survive delete", n)
		}
		// The retry was due at next_retry_at; past it, and with nothing in
		// hand, a retry that survived the delete would have been sent.
		hermodtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			if left := time.Until(due); left > 0 {
				return fmt.Errorf("the dropped retry is due in %s", left)
			}
			return p.inHand()
		})
		if s.Count() != 1 {
			t.Errorf("deleted webhook got %d requests, want the 1 made before delete", s.Count())
		}
	})
}

// The same event id twice is fanned out once; an update applies to the very
// next event.
func TestDuplicateEventAndUpdate(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s := hermodtest.NewSink(t)
		id := p.createWebhook(map[string]any{"name": "dup", "url": s.URL, "event_types": []string{"alert.triggered"}})
		body := map[string]any{"event_type": "alert.triggered", "data": map[string]any{}, "id": "evt-dup-1"}
		if r := p.must(202, "POST", "/api/v1/events", body); r["duplicate"] != false || r["id"] != "evt-dup-1" {
			t.Fatalf("first: %v", r)
		}
		if r := p.must(202, "POST", "/api/v1/events", body); r["duplicate"] != true {
			t.Fatalf("second: %v", r)
		}
		p.waitStatus(id, "success", 1, 10*time.Second)
		// Update, then publish at once: the new event type applies.
		p.must(200, "PATCH", "/api/v1/webhooks/"+id, map[string]any{"event_types": []string{"alert.resolved"}})
		p.publish("alert.triggered", map[string]any{})
		p.publish("alert.resolved", map[string]any{})
		p.waitStatus(id, "success", 2, 10*time.Second)
		// Nothing in hand: the event published after the update and a
		// second fan-out of the duplicate would have been sent by now.
		p.waitIdle(10 * time.Second)
		got := s.Received()
		if len(got) != 2 {
			t.Fatalf("%d requests, want 2", len(got))
		}
		if got[1].Header.Get("X-Hermod-Event-Type") != "alert.resolved" {
			t.Errorf("second delivery is %q", got[1].Header.Get("X-Hermod-Event-Type"))
		}
	})
}

// The test endpoint sends a signed webhook.test now and is not counted.
func TestTestEndpoint(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s := hermodtest.NewSink(t)
		id := p.createWebhook(map[string]any{"name": "t", "url": s.URL, "event_types": []string{"*"}, "secret": testSecret})
		r := p.must(200, "POST", "/api/v1/webhooks/"+id+"/test", nil)
		if r["success"] != true || r["status_code"].(float64) != 200 || r["error"] != nil {
			t.Fatalf("test result %v", r)
		}
		if s.Count() != 1 {
			t.Fatalf("sink got %d", s.Count())
		}
		got := s.Received()[0]
		if got.Header.Get("X-Hermod-Event-Type") != "webhook.test" {
			t.Errorf("event type %q", got.Header.Get("X-Hermod-Event-Type"))
		}
		verifySig(t, testSecret, got)
		w := p.must(200, "GET", "/api/v1/webhooks/"+id, nil)
		if w["total_delivered"].(float64) != 0 || w["success_rate"] != nil {
			t.Errorf("test counted in statistics: %v", w)
		}
		s.SetAnswer(func(int, *http.Request) int { return 500 })
		r = p.must(200, "POST", "/api/v1/webhooks/"+id+"/test", nil)
		if r["success"] != false || r["status_code"].(float64) != 500 || r["error"] == nil {
			t.Errorf("failing test result %v", r)
		}
	})
}

// Statistics and degraded: three dead deliveries in a row make a webhook
// degraded; one success makes it active again.
func TestStatisticsAndDegraded(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s := hermodtest.NewSink(t)
		var code atomic.Int32
		code.Store(410)
		s.SetAnswer(func(int, *http.Request) int { return int(code.Load()) })
		id := p.createWebhook(map[string]any{"name": "s", "url": s.URL, "event_types": []string{"instance.crash"}})
		for i := 0; i < 3; i++ {
			p.publish("instance.crash", map[string]any{"i": i})
		}
		p.waitStatus(id, "dead", 3, 10*time.Second)
		w := p.waitWebhookStatus(id, "degraded", 5*time.Second)
		if w["total_failed"].(float64) != 3 || w["total_delivered"].(float64) != 0 || w["success_rate"].(float64) != 0 {
			t.Errorf("stats %v", w)
		}
		code.Store(200)
		p.publish("instance.crash", map[string]any{"i": 4})
		p.waitStatus(id, "success", 1, 10*time.Second)
		w = p.waitWebhookStatus(id, "active", 5*time.Second)
		if w["success_rate"].(float64) != 25 || w["last_delivery_at"] == nil {
			t.Errorf("stats after success %v", w)
		}
		st := p.must(200, "GET", "/api/v1/webhooks/"+id+"/stats?window=1h", nil)
		buckets := st["data"].([]any)
		if len(buckets) != 60 {
			t.Fatalf("%d buckets", len(buckets))
		}
		var succ, dead float64
		for _, b := range buckets {
			m := b.(map[string]any)
			succ += m["success"].(float64)
			dead += m["dead"].(float64)
		}
		if succ != 1 || dead != 3 {
			t.Errorf("per-minute totals success=%v dead=%v", succ, dead)
		}
		last := buckets[len(buckets)-1].(map[string]any)
		if last["p50_ms"] == nil && buckets[len(buckets)-2].(map[string]any)["p50_ms"] == nil {
			t.Errorf("no latency in the last minutes: %v", last)
		}
		for _, st := range []string{"pending", "acquired", "failed"} {
			p.must(200, "GET", "/api/v1/webhooks/"+id+"/deliveries?status="+st, nil)
		}
	})
}

// Rotation: during the overlap deliveries carry a signature by each secret.
func TestSecretRotation(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s := hermodtest.NewSink(t)
		id := p.createWebhook(map[string]any{"name": "rot", "url": s.URL, "event_types": []string{"agent.*"}, "secret": testSecret})
		if sec := p.must(200, "GET", "/api/v1/webhooks/"+id+"/secret", nil); sec["secret"] != testSecret || sec["previous_secret_expires_at"] != nil {
			t.Fatalf("secret %v", sec)
		}
		rot := p.must(200, "POST", "/api/v1/webhooks/"+id+"/secret/rotate", map[string]any{"overlap_seconds": 3600})
		next := rot["secret"].(string)
		if next == testSecret || rot["previous_secret_expires_at"] == nil {
			t.Fatalf("rotate %v", rot)
		}
		p.publish("agent.registered", map[string]any{})
		hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(s, 1) })
		r := s.Received()[0]
		if n := len(strings.Fields(r.Header.Get("webhook-signature"))); n != 2 {
			t.Errorf("%d signatures during overlap, want 2", n)
		}
		verifySig(t, testSecret, r)
		verifySig(t, next, r)
		p.must(422, "POST", "/api/v1/webhooks/"+id+"/secret/rotate", map[string]any{"overlap_seconds": 8 * 86400})
		// Values whose nanoseconds overflow int64 are refused, not wrapped
		// into a short (or no) overlap that would drop the old secret.
		for _, huge := range []string{"9223372036854775807", "18446744074", "9223372037"} {
			code, body := p.do("POST", "/api/v1/webhooks/"+id+"/secret/rotate", `{"overlap_seconds": `+huge+`}`)
			if code != 422 {
				t.Errorf("overlap_seconds %s: %d %s, want 422", huge, code, body)
			}
		}
		p.must(422, "POST", "/api/v1/webhooks/"+id+"/secret/rotate", map[string]any{"secret": "nope"})
		own := "whsec_" + base64.StdEncoding.EncodeToString([]byte("abcdefghijklmnopqrstuvwxyz012345"))
		if r := p.must(200, "POST", "/api/v1/webhooks/"+id+"/secret/rotate", map[string]any{"secret": own, "overlap_seconds": 0}); r["secret"] != own || r["previous_secret_expires_at"] != nil {
			t.Errorf("rotate to own secret without overlap: %v", r)
		}
	})
}

// A delivery held longer than HERMOD_MAX_HOLD is dead ("expired") and can be
// retried.
func TestMaxHoldExpires(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, func(c *allinone.Config) { c.MaxHold = time.Second })
		s := hermodtest.NewSink(t)
		id := p.createWebhook(map[string]any{"name": "hold", "url": s.URL, "event_types": []string{"alert.*"}, "enabled": false})
		p.publish("alert.triggered", map[string]any{})
		ds := p.waitStatus(id, "dead", 1, 10*time.Second)
		if ds[0]["dead_reason"] != "expired" || s.Count() != 0 || ds[0]["attempts"].(float64) != 0 {
			t.Errorf("expired delivery %v (sink %d)", ds[0], s.Count())
		}
		if n := p.streamMsgs(streams.HeldStream, streams.HeldSubject(id)); n != 0 {
			t.Errorf("%d still held", n)
		}
		p.must(200, "POST", "/api/v1/webhooks/"+id+"/resume", nil)
		p.must(202, "POST", "/api/v1/deliveries/"+ds[0]["id"].(string)+"/retry", nil)
		p.waitStatus(id, "success", 1, 10*time.Second)
		if s.Count() != 1 {
			t.Errorf("sink got %d after retry", s.Count())
		}
	})
}

// Isolation: a slow webhook at its in-flight cap does not hold up another
// webhook's deliveries, and a failing one opens its breaker (degraded) and
// waits outside the window without spending attempts.
func TestIsolationInflightCapAndBreaker(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, func(c *allinone.Config) {
			c.Concurrency = 8
			c.Isolation.Inflight = 2
			c.Isolation.Threshold = 3
			c.Isolation.Cooldown = 6 * time.Second
		})
		release := make(chan struct{})
		defer close(release)
		slow := hermodtest.NewSink(t)
		slow.SetAnswer(func(int, *http.Request) int {
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
			return 200
		})
		fast := hermodtest.NewSink(t)
		failing := hermodtest.NewSink(t)
		failing.SetAnswer(func(int, *http.Request) int { return 500 })
		slowID := p.createWebhook(map[string]any{"name": "slow", "url": slow.URL, "event_types": []string{"deployment.created"}})
		fastID := p.createWebhook(map[string]any{"name": "fast", "url": fast.URL, "event_types": []string{"deployment.deleted"}})
		failID := p.createWebhook(map[string]any{"name": "failing", "url": failing.URL, "event_types": []string{"deployment.failed"}, "max_retries": 10})
		for i := 0; i < 12; i++ {
			p.publish("deployment.created", map[string]any{"i": i})
		}
		hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(slow, 2) })
		start := time.Now()
		for i := 0; i < 10; i++ {
			p.publish("deployment.deleted", map[string]any{"i": i})
		}
		hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(fast, 10) })
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("fast webhook waited %s behind the slow one", took)
		}
		if slow.Count() > 2 {
			t.Errorf("slow webhook has %d requests in flight, cap is 2", slow.Count())
		}
		for i := 0; i < 5; i++ {
			p.publish("deployment.failed", map[string]any{"i": i})
		}
		p.waitWebhookStatus(failID, "degraded", 10*time.Second)
		// Retries that come due while the breaker is open are parked, not
		// attempted. Each of the five deliveries comes due inside the 6 s
		// cooldown (its first attempt, or its retry about 2 s after it), so
		// each is parked once by the breaker before the cooldown ends.
		hermodtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			m := p.metrics()
			breaker := metricValue(m, `hermod_deliveries_parked_total{reason="breaker"}`)
			saturated := metricValue(m, `hermod_deliveries_parked_total{reason="saturated"}`)
			if breaker < 5 || saturated == 0 {
				return fmt.Errorf("parked by the breaker %v (want 5, one per failing delivery), for saturation %v; the failing sink got %d requests",
					breaker, saturated, failing.Count())
			}
			return nil
		})
		// The breaker opened after the third failed request, so it stays open
		// until at least 6 s after that request arrived: no delivery may be
		// attempted twice before then.
		got := failing.Received()
		at := make([]time.Time, len(got))
		for i, r := range got {
			at[i] = r.At
		}
		sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
		if len(at) < 3 {
			t.Fatalf("the failing sink got %d requests; the breaker opens at the third", len(at))
		}
		openUntil := at[2].Add(6 * time.Second)
		seen := map[string]bool{}
		for _, r := range got {
			id := r.Header.Get("webhook-id")
			if r.At.Before(openUntil) && seen[id] {
				t.Errorf("open breaker let a retry of %s through, %s after the third failure", id, r.At.Sub(at[2]))
			}
			seen[id] = seen[id] || r.At.Before(openUntil)
		}
		for _, d := range p.deliveries(failID, "") {
			if d["status"] == "dead" {
				t.Errorf("a delivery died while the breaker was open: %v", d)
			}
		}
		p.waitStatus(fastID, "success", 10, 5*time.Second)
		// Acquired is asked of the deliverers, who answer within 25 ms; on a
		// busy machine one answer can come late, so ask until it is there.
		hermodtest.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
			if n := len(p.deliveries(slowID, "acquired")); n != 2 {
				return fmt.Errorf("%d slow deliveries acquired, want 2 (the cap)", n)
			}
			return nil
		})
	})
}

// A request longer than the acquire TTL keeps its lease with in-progress
// signals: it is not redelivered while it runs.
func TestLongRequestKeepsLease(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, func(c *allinone.Config) { c.AcquireTTL = time.Second })
		s := hermodtest.NewSink(t)
		s.SetAnswer(func(n int, r *http.Request) int {
			if n == 1 {
				select {
				case <-r.Context().Done():
				case <-time.After(3500 * time.Millisecond): // 3.5 leases
				}
			}
			return 200
		})
		id := p.createWebhook(map[string]any{"name": "long", "url": s.URL, "event_types": []string{"cluster.created"}, "timeout_seconds": 10})
		p.publish("cluster.created", map[string]any{})
		ds := p.waitStatus(id, "success", 1, 15*time.Second)
		// A lost lease would have had the delivery redelivered (and sent
		// again) while the first request ran; it would be in hand until
		// that copy was settled.
		p.waitIdle(10 * time.Second)
		if s.Count() != 1 {
			t.Errorf("long request was redelivered: %d requests", s.Count())
		}
		if ds[0]["attempts"].(float64) != 1 {
			t.Errorf("attempts %v", ds[0]["attempts"])
		}
	})
}

// Retry-After on a 429 replaces the backoff (here 3 s instead of 2 s).
func TestRetryAfterHonoured(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		s := hermodtest.NewSink(t)
		s.SetAnswer(func(n int, r *http.Request) int {
			if n == 1 {
				return 429
			}
			return 200
		})
		s.SetHeaders(func(n int) map[string]string {
			if n == 1 {
				return map[string]string{"Retry-After": "3"}
			}
			return nil
		})
		id := p.createWebhook(map[string]any{"name": "ra", "url": s.URL, "event_types": []string{"alert.*"}})
		p.publish("alert.triggered", map[string]any{})
		p.waitStatus(id, "success", 1, 15*time.Second)
		got := s.Received()
		if len(got) != 2 {
			t.Fatalf("%d requests", len(got))
		}
		if gap := got[1].At.Sub(got[0].At); gap < 2900*time.Millisecond || gap > 4*time.Second {
			t.Errorf("second attempt after %s, want about 3 s (Retry-After)", gap)
		}
	})
}

// A delivery that waited out its lease for a free worker is not attempted
// beside its redelivery: it is sent once.
func TestStaleLeaseNotAttemptedTwice(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, func(c *allinone.Config) {
			c.Concurrency = 1
			c.AcquireTTL = time.Second
		})
		release := make(chan struct{})
		defer close(release)
		slow := hermodtest.NewSink(t)
		slow.SetAnswer(func(int, *http.Request) int {
			select {
			case <-release:
			case <-time.After(1500 * time.Millisecond):
			}
			return 200
		})
		other := hermodtest.NewSink(t)
		slowID := p.createWebhook(map[string]any{"name": "slow", "url": slow.URL, "event_types": []string{"stack.created"}, "timeout_seconds": 10})
		otherID := p.createWebhook(map[string]any{"name": "other", "url": other.URL, "event_types": []string{"stack.deleted"}})
		p.publish("stack.created", map[string]any{})
		hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(slow, 1) })
		p.publish("stack.deleted", map[string]any{})
		p.waitStatus(otherID, "success", 1, 15*time.Second)
		p.waitStatus(slowID, "success", 1, 15*time.Second)
		// The stale copy and its redelivery are one message of the stream:
		// it is in hand until settled, and a second attempt goes out as soon
		// as the worker is free, before the first one's outcome is recorded.
		p.waitIdle(10 * time.Second)
		if other.Count() != 1 || slow.Count() != 1 {
			t.Errorf("requests: other %d, slow %d; want 1 each", other.Count(), slow.Count())
		}
	})
}
