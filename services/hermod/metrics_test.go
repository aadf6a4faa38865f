package allinone_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// Each separate binary exposes the metrics of the work it does (and not
// counters of work it never does, which would read zero), its build, and
// the deliverer its breaker state per webhook.
func TestE2EMetricsPerBinary(t *testing.T) {
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	env := map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(), "HERMOD_ENCRYPTION_KEY": testEncKey,
		"HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8", "HERMOD_BREAKER_THRESHOLD": "2", "HERMOD_BREAKER_COOLDOWN": "1m"}
	_, apiAddr := startReady(t, "hermod-api", merge(env, map[string]string{"HERMOD_ADMIN_KEYS": testAdminKey}))
	_, routerOps := startReady(t, "hermod-router", env)
	_, delOps := startReady(t, "hermod-deliverer", env)
	p := &pipeline{t: t, Base: "http://" + apiAddr, hc: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(p.hc.CloseIdleConnections)

	failing := hermodtest.NewSink(t)
	failing.SetAnswer(func(int, *http.Request) int { return 500 })
	id := p.createWebhook(map[string]any{"name": "failing", "url": failing.URL, "event_types": []string{"deployment.*"}, "max_retries": 10})
	p.publish("deployment.applied", map[string]any{"deployment_id": "d-1"})
	p.publish("deployment.applied", map[string]any{"deployment_id": "d-2"})

	open := `hermod_webhook_breaker_open{webhook_id="` + id + `"} 1`
	var del string
	hermodtest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		_, del = httpGet("http://" + delOps + "/metrics")
		if !strings.Contains(del, open) {
			return fmt.Errorf("the deliverer's breaker is not open: %q", grepLines(del, "breaker"))
		}
		// The breaker opens during the second attempt; its retry is counted
		// once that retry is stored, a moment later.
		if !strings.Contains(del, `hermod_delivery_attempts_total{outcome="retry"} 2`) {
			return fmt.Errorf("attempts counted: %q", grepLines(del, "hermod_delivery_attempts_total"))
		}
		return nil
	})
	var router string
	hermodtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		_, router = httpGet("http://" + routerOps + "/metrics")
		// The open breaker made the webhook degraded: the router's recorder
		// told it (an operational event, routed like the two published).
		told := metricValue(router, `hermod_ops_events_published_total{type="hermod.webhook.degraded"}`)
		if told != 1 {
			return fmt.Errorf("operational events told: %q, want one degraded", grepLines(router, "hermod_ops_events"))
		}
		if !regexp.MustCompile(`(?m)^hermod_events_routed_total 3$`).MatchString(router) {
			return fmt.Errorf("routed events: %q, want 3 (2 published, 1 operational)", grepLines(router, "hermod_events_routed_total"))
		}
		return nil
	})
	api := p.metrics()
	for _, c := range []struct {
		binary, text string
		has, hasNot  []string
	}{
		{"hermod-deliverer", del,
			[]string{"hermod_delivery_attempts_total", "hermod_delivery_attempt_seconds", "hermod_deliveries_in_flight", open},
			[]string{"hermod_events_routed_total", "hermod_record_write_errors_total", "hermod_index_notify_unconfirmed_total"}},
		{"hermod-router", router,
			[]string{"hermod_events_routed_total", "hermod_deliveries_enqueued_total 2", "hermod_record_write_errors_total"},
			[]string{"hermod_delivery_attempts_total", "hermod_webhook_breaker_open", "hermod_index_notify_unconfirmed_total"}},
		{"hermod-api", api,
			[]string{"hermod_index_notify_unconfirmed_total", "hermod_webhook_backlog"},
			[]string{"hermod_delivery_attempts_total", "hermod_events_routed_total"}},
	} {
		if !strings.Contains(c.text, `hermod_build_info{binary="`+c.binary+`"`) {
			t.Errorf("%s: no hermod_build_info for it:\n%s", c.binary, grepLines(c.text, "build_info"))
		}
		for _, want := range c.has {
			if !strings.Contains(c.text, want) {
				t.Errorf("%s: no %s", c.binary, want)
			}
		}
		for _, not := range c.hasNot {
			if strings.Contains(c.text, not) {
				t.Errorf("%s: exposes %s, work it does not do", c.binary, not)
			}
		}
	}
}
