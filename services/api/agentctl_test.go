package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// BenchmarkAgentHeartbeat measures the control plane's answer to one agent
// heartbeat with 5,000 webhooks stored (1 in 10 for the agent's labels),
// against a real redis-server. `make bench` runs it.
func BenchmarkAgentHeartbeat(b *testing.B) {
	rd := hermodtest.StartRedis(b)
	key, _ := encryption.ParseKey(strings.Repeat("ab", 32))
	box, err := encryption.New(key)
	if err != nil {
		b.Fatal(err)
	}
	st := store.New(rd.Client(b), box)
	ctx := context.Background()
	const n = 5000
	now := time.Now().UTC()
	for i := range n {
		w := &webhooks.Webhook{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Name: "w", URL: "http://10.0.0.1/hook",
			Secret: "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", EventTypes: []string{"*"}, MaxRetries: 5,
			TimeoutSeconds: 30, Enabled: true, CreatedAt: now, UpdatedAt: now}
		if i%10 == 0 {
			w.TargetLabels = []string{"env:production"}
		}
		if err := st.PutWebhook(ctx, w); err != nil {
			b.Fatal(err)
		}
	}
	const token = "bench-agent-token-0123456789"
	if err := st.CreateAgent(ctx, &store.Agent{ID: "bench", Labels: []string{"env:production"}, TokenHash: store.HashToken(token),
		CreatedAt: now, UpdatedAt: now}); err != nil {
		b.Fatal(err)
	}
	s := webServer(st, "admin-key-a-0123456789")
	req, _ := json.Marshal(streams.AgentRequest{Token: token, Version: "bench"})
	msg := &nats.Msg{Subject: streams.AgentControlPrefix + "bench.heartbeat", Data: req}
	b.ResetTimer()
	for b.Loop() {
		out := s.agentControl(ctx, msg)
		if out.Error != "" || len(out.Webhooks) != n/10 {
			b.Fatalf("heartbeat answer: %q, %d webhooks", out.Error, len(out.Webhooks))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/heartbeat")
}

// The cached snapshot follows every change: the next heartbeat after a put
// or a delete sees it.
func TestAgentHeartbeatFollowsWebhookChanges(t *testing.T) {
	rd := hermodtest.StartRedis(t)
	key, _ := encryption.ParseKey(strings.Repeat("ab", 32))
	box, err := encryption.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(rd.Client(t), box)
	ctx := context.Background()
	now := time.Now().UTC()
	w := &webhooks.Webhook{ID: "00000000-0000-4000-8000-000000000001", Name: "w", URL: "http://10.0.0.1/a",
		Secret: "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", EventTypes: []string{"*"}, TargetLabels: []string{"env:production"},
		MaxRetries: 5, TimeoutSeconds: 30, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := st.PutWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	const token = "test-agent-token-0123456789"
	if err := st.CreateAgent(ctx, &store.Agent{ID: "a1", Labels: []string{"env:production"}, TokenHash: store.HashToken(token),
		CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	s := webServer(st, "admin-key-a-0123456789")
	req, _ := json.Marshal(streams.AgentRequest{Token: token})
	beat := func() streams.AgentConfig {
		return s.agentControl(ctx, &nats.Msg{Subject: streams.AgentControlPrefix + "a1.heartbeat", Data: req})
	}
	if out := beat(); len(out.Webhooks) != 1 || out.Webhooks[0].URL != "http://10.0.0.1/a" {
		t.Fatalf("first heartbeat: %+v", out.Webhooks)
	}
	w.URL, w.Enabled = "http://10.0.0.1/b", false
	if err := st.PutWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if out := beat(); len(out.Webhooks) != 1 || out.Webhooks[0].URL != "http://10.0.0.1/b" || out.Webhooks[0].Enabled {
		t.Fatalf("after a change: %+v", out.Webhooks)
	}
	if err := st.DeleteWebhook(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if out := beat(); len(out.Webhooks) != 0 {
		t.Fatalf("after a delete: %+v", out.Webhooks)
	}
}
