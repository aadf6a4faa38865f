package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

func TestMain(m *testing.M) {
	formats.RunnerMain() // a test that renders a template starts its runner from this binary
	goleak.VerifyTestMain(m)
}

// controlPlane answers the agent's hello and heartbeat on a real NATS
// server with whatever answer holds now.
type controlPlane struct {
	mu     sync.Mutex
	answer streams.AgentConfig
	asked  []streams.AgentRequest
}

func (c *controlPlane) set(a streams.AgentConfig) {
	c.mu.Lock()
	c.answer = a
	c.mu.Unlock()
}

// bundle is an agent on a real NATS connection with a control plane.
type bundle struct {
	a  *Agent
	cp *controlPlane
	nc *nats.Conn
}

func newBundle(t *testing.T) *bundle {
	t.Helper()
	ns := hermodtest.NATS(t)
	cpConn, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cpConn.Close)
	cp := &controlPlane{}
	sub, err := cpConn.Subscribe(streams.AgentControlPrefix+"a1.*", func(m *nats.Msg) {
		var req streams.AgentRequest
		_ = json.Unmarshal(m.Data, &req)
		cp.mu.Lock()
		cp.asked = append(cp.asked, req)
		data, _ := json.Marshal(cp.answer)
		cp.mu.Unlock()
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := cpConn.Flush(); err != nil {
		t.Fatal(err)
	}
	reconnected := &atomic.Bool{}
	nc, err := nats.Connect(ns.ClientURL(), nats.ReconnectWait(10*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected.Store(true) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	a := &Agent{nc: nc, cfg: Config{ID: "a1", Token: "tok"}, log: zerolog.Nop(), hooks: map[string]*webhooks.Webhook{},
		wake: make(chan struct{}, 1), reconnected: reconnected}
	return &bundle{a: a, cp: cp, nc: nc}
}

func grant(consumers []string, hooks ...streams.AgentWebhook) streams.AgentConfig {
	return streams.AgentConfig{V: 1, AgentID: "a1", Labels: []string{"env=prod"}, AcquireTTLms: 60000, HeartbeatMs: 10000,
		Consumers: consumers, Webhooks: hooks}
}

var prodHook = streams.AgentWebhook{ID: "w1", URL: "http://127.0.0.1:9/x", AuthHeader: "Bearer t", Secret: "whsec_YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=",
	PrevSecret: "whsec_YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=", PrevSecretExpiresAt: time.Now().Add(time.Hour).UnixMilli(), TargetLabels: []string{"env=prod"},
	MaxRetries: 3, TimeoutSeconds: 7, Enabled: true}

// The grant's webhooks become the agent's, field for field, and its
// consumers are what it takes deliveries from.
func TestAgentAppliesItsGrant(t *testing.T) {
	b := newBundle(t)
	b.cp.set(grant([]string{"agent_x"}, prodHook))
	if err := b.a.ask(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	w, ok := b.a.Get("w1")
	if !ok || w.URL != prodHook.URL || w.AuthHeader != "Bearer t" || !slices.Equal(w.Secrets(time.Now()), []string{prodHook.Secret, prodHook.PrevSecret}) ||
		w.MaxAttempts() != 3 || w.TimeoutSeconds != 7 || !w.Enabled {
		t.Errorf("webhook %+v", w)
	}
	if got := b.a.consumers(); !slices.Equal(got, []string{"agent_x"}) {
		t.Errorf("consumers %v", got)
	}
	if len(b.cp.asked) != 1 || b.cp.asked[0].Token != "tok" {
		t.Errorf("requests %+v", b.cp.asked)
	}
}

// A refusal stops the agent taking deliveries until the control plane
// accepts it again.
func TestAgentRefused(t *testing.T) {
	b := newBundle(t)
	b.cp.set(grant([]string{"agent_x"}, prodHook))
	if err := b.a.ask(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	b.cp.set(streams.AgentConfig{V: 1, Error: "unauthorized"})
	if err := b.a.ask(context.Background(), "heartbeat"); !errors.Is(err, ErrRevoked) {
		t.Fatalf("err = %v, want ErrRevoked", err)
	}
	if b.a.consumers() != nil || !b.a.refused.Load() {
		t.Error("a refused agent still takes deliveries")
	}
	b.cp.set(grant([]string{"agent_x"}, prodHook))
	if err := b.a.ask(context.Background(), "heartbeat"); err != nil {
		t.Fatal(err)
	}
	if b.a.consumers() == nil {
		t.Error("accepted again, but still takes nothing")
	}
	b.cp.set(streams.AgentConfig{V: 1, Error: "overloaded"})
	if err := b.a.ask(context.Background(), "heartbeat"); err == nil || errors.Is(err, ErrRevoked) || b.a.refused.Load() {
		t.Errorf("another error (%v) is not a refusal", err)
	}
}

// When the grant's label sets or webhooks change under a connection, the
// agent reconnects so NATS authorizes the new permissions; a heartbeat
// with the same grant does not.
func TestAgentReconnectsWhenItsGrantChanges(t *testing.T) {
	b := newBundle(t)
	b.cp.set(grant([]string{"agent_x"}, prodHook))
	ctx := context.Background()
	for range 2 {
		if err := b.a.ask(ctx, "heartbeat"); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.nc.Stats().Reconnects; n != 0 {
		t.Fatalf("%d reconnects with an unchanged grant", n)
	}
	other := prodHook
	other.ID = "w2"
	b.cp.set(grant([]string{"agent_x"}, prodHook, other))
	if err := b.a.ask(ctx, "heartbeat"); err != nil {
		t.Fatal(err)
	}
	hermodtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := b.nc.Stats().Reconnects; n != 1 {
			return fmt.Errorf("%d reconnects, want 1", n)
		}
		return nil
	})
}

func TestGrantKeyIgnoresOrder(t *testing.T) {
	w1, w2 := prodHook, prodHook
	w2.ID = "w2"
	a := grantKey(grant([]string{"c1", "c2"}, w1, w2))
	if b := grantKey(grant([]string{"c2", "c1"}, w2, w1)); a != b {
		t.Errorf("%q != %q", a, b)
	}
	if c := grantKey(grant([]string{"c1"}, w1, w2)); c == a {
		t.Error("a lost label set does not change the key")
	}
	if c := grantKey(grant([]string{"c1", "c2"}, w1)); c == a {
		t.Error("a lost webhook does not change the key")
	}
}

// The API's test delivery: sent to the webhook with its signature, the
// answer reported; refused for a webhook outside the grant.
func TestAgentTestDelivery(t *testing.T) {
	b := newBundle(t)
	sink := hermodtest.NewSink(t)
	hook := prodHook
	hook.URL = sink.URL + "/hook"
	b.cp.set(grant([]string{"agent_x"}, hook))
	if err := b.a.ask(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	client := delivery.NewClient(delivery.ClientOptions{})
	defer client.Close()
	sub, err := b.nc.Subscribe(streams.AgentTestPrefix+"a1", func(m *nats.Msg) { b.a.test(client, m) })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ask := func(webhookID string) streams.AgentTestResult {
		t.Helper()
		req, _ := json.Marshal(streams.AgentTestRequest{V: 1, WebhookID: webhookID, DeliveryID: "t-1", Body: []byte(`{"x":1}`)})
		m, err := b.nc.Request(streams.AgentTestPrefix+"a1", req, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var res streams.AgentTestResult
		if err := json.Unmarshal(m.Data, &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := ask("w1"); !res.Success || res.StatusCode != 200 {
		t.Errorf("test result %+v", res)
	}
	got := sink.Received()
	if len(got) != 1 || got[0].Header.Get("webhook-id") != "t-1" || !strings.HasPrefix(got[0].Header.Get("webhook-signature"), "v1,") ||
		got[0].Header.Get("Authorization") != "Bearer t" {
		t.Errorf("received %+v", got)
	}
	if res := ask("w-unknown"); res.Success || res.Error != "this agent may not deliver that webhook" {
		t.Errorf("test of a webhook outside the grant: %+v", res)
	}
	b.a.refused.Store(true)
	if res := ask("w1"); res.Success || !strings.Contains(res.Error, "refused") {
		t.Errorf("test by a refused agent: %+v", res)
	}
}
