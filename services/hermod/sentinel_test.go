package allinone_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// The binaries as separate processes on a Redis run by Sentinels (a
// primary, a replica, three Sentinels; HERMOD_REDIS_URL a
// redis-sentinel:// URL): the primary is killed while deliveries flow. The
// Sentinels promote the replica, the processes follow it, every delivery
// reaches the endpoint once, signed, and every record reaches success.
func TestE2ESentinelFailoverLosesNothing(t *testing.T) {
	ns := hermodtest.NATS(t)
	rs := hermodtest.StartRedisSentinel(t, time.Second, 5*time.Second)
	p, _, _ := startFleet(t, map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rs.URL(),
		"HERMOD_ENCRYPTION_KEY": testEncKey, "HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8", "HERMOD_SHUTDOWN_TIMEOUT": "5s"}, nil, 2)
	s := hermodtest.NewSink(t)
	id := p.createWebhook(map[string]any{"name": "ha", "url": s.URL, "event_types": []string{"alert.*"}, "secret": testSecret})

	const n = 60
	for i := 0; i < n/3; i++ {
		p.publish("alert.triggered", map[string]any{"i": i})
	}
	hermodtest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error { return sinkGot(s, 5) })
	killed := time.Now()
	rs.Primary.Stop()
	// The rest straight into JetStream while the Sentinels fail over (the
	// API needs Redis for webhooks, not to take an event).
	js := p.jetStream()
	for i := n / 3; i < n; i++ {
		eid := "failover-" + strconv.Itoa(i)
		body, _ := json.Marshal(map[string]any{"id": eid, "event_type": "alert.resolved",
			"timestamp": time.Now().UTC().Format(time.RFC3339), "data": map[string]any{"i": i}})
		if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: "alert.resolved", Data: body,
			Header: nats.Header{"Nats-Msg-Id": {eid}}}); err != nil {
			t.Fatal(err)
		}
	}
	hermodtest.CheckFor(t, 90*time.Second, 20*time.Millisecond, func() error { return sinkGot(s, n) })
	// The API answers 503 until it reaches the new primary.
	hermodtest.CheckFor(t, 90*time.Second, 50*time.Millisecond, func() error {
		code, body := p.do("GET", "/api/v1/webhooks/"+id+"/deliveries?status=success&limit=500", nil)
		if code != 200 {
			return fmt.Errorf("listing deliveries: %d %s", code, body)
		}
		var list struct {
			Data []any `json:"data"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return err
		}
		if len(list.Data) != n {
			return fmt.Errorf("%d of %d deliveries recorded as successful", len(list.Data), n)
		}
		return nil
	})
	t.Logf("every record reached success %v after the primary was killed", time.Since(killed).Round(time.Millisecond))
	addr, err := rs.PrimaryAddr(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if addr != rs.Replica.Addr {
		t.Errorf("the Sentinels name %s as the primary, want the old replica %s", addr, rs.Replica.Addr)
	}

	p.waitIdle(30 * time.Second)
	seen := map[int]int{}
	ids := map[string]bool{}
	for _, r := range s.Received() {
		verifySig(t, testSecret, r)
		var ev struct {
			Data struct {
				I int `json:"i"`
			} `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &ev); err != nil {
			t.Fatalf("body %s: %v", r.Body, err)
		}
		seen[ev.Data.I]++
		ids[r.Header.Get("webhook-id")] = true
	}
	for i := 0; i < n; i++ {
		if seen[i] != 1 {
			t.Errorf("event %d reached the endpoint %d times", i, seen[i])
		}
	}
	if s.Count() != n || len(ids) != n {
		t.Errorf("the sink got %d requests with %d webhook-ids, want %d and %d", s.Count(), len(ids), n, n)
	}
	w := p.must(200, "GET", "/api/v1/webhooks/"+id, nil)
	if w["total_delivered"].(float64) != n {
		t.Errorf("total_delivered %v, want %d", w["total_delivered"], n)
	}
	if msg := fmt.Sprint(p.deliveries(id, "failed"), p.deliveries(id, "dead")); msg != "[] []" {
		t.Errorf("deliveries not successful: %s", msg)
	}
}
