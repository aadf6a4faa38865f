package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/agentauth"
	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

const testSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// testStore is a store on a real redis-server with an encryption key.
func testStore(tb testing.TB) *store.Store {
	tb.Helper()
	rd := hermodtest.StartRedis(tb)
	key, _ := encryption.ParseKey(strings.Repeat("ab", 32))
	box, err := encryption.New(key)
	if err != nil {
		tb.Fatal(err)
	}
	return store.New(rd.Client(tb), box)
}

func putAgent(tb testing.TB, st *store.Store, id, token string, labels ...string) {
	tb.Helper()
	now := time.Now().UTC()
	if err := st.CreateAgent(context.Background(), &store.Agent{ID: id, Labels: labels, TokenHash: store.HashToken(token),
		CreatedAt: now, UpdatedAt: now}); err != nil {
		tb.Fatal(err)
	}
}

func testWebhook(id, url string, labels ...string) *webhooks.Webhook {
	now := time.Now().UTC()
	return &webhooks.Webhook{ID: id, Name: "w", URL: url, Secret: testSecret, EventTypes: []string{"*"}, TargetLabels: labels,
		MaxRetries: 5, TimeoutSeconds: 30, Enabled: true, CreatedAt: now, UpdatedAt: now}
}

// BenchmarkAgentHeartbeat measures the control plane's answer to one agent
// heartbeat with 5,000 webhooks stored (1 in 10 for the agent's labels),
// against a real redis-server. `make bench` runs it.
func BenchmarkAgentHeartbeat(b *testing.B) {
	st := testStore(b)
	ctx := context.Background()
	const n = 5000
	for i := range n {
		w := testWebhook(fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "http://10.0.0.1/hook")
		if i%10 == 0 {
			w.TargetLabels = []string{"env:production"}
		}
		if err := st.PutWebhook(ctx, w); err != nil {
			b.Fatal(err)
		}
	}
	const token = "bench-agent-token-0123456789"
	putAgent(b, st, "bench", token, "env:production")
	s := New(st, nil, zerolog.Nop(), Options{})
	req, _ := json.Marshal(streams.AgentRequest{Token: token, Version: "bench"})
	msg := &nats.Msg{Subject: streams.AgentControlPrefix + "bench.heartbeat", Data: req}
	b.ResetTimer()
	for b.Loop() {
		out := s.answer(ctx, msg)
		if out.Error != "" || len(out.Webhooks) != n/10 {
			b.Fatalf("heartbeat answer: %q, %d webhooks", out.Error, len(out.Webhooks))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/heartbeat")
}

// heartbeats stores ws and an agent a1 granted env:production, and
// returns its heartbeat: the control plane's answer to it.
func heartbeats(t *testing.T, st *store.Store, ws ...*webhooks.Webhook) func() streams.AgentConfig {
	t.Helper()
	ctx := context.Background()
	for _, w := range ws {
		if err := st.PutWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	const token = "test-agent-token-0123456789"
	putAgent(t, st, "a1", token, "env:production")
	s := New(st, nil, zerolog.Nop(), Options{})
	req, _ := json.Marshal(streams.AgentRequest{Token: token})
	return func() streams.AgentConfig {
		return s.answer(ctx, &nats.Msg{Subject: streams.AgentControlPrefix + "a1.heartbeat", Data: req})
	}
}

// The cached snapshot follows every change: the next heartbeat after a put
// or a delete sees it.
func TestAgentHeartbeatFollowsWebhookChanges(t *testing.T) {
	st := testStore(t)
	ctx := context.Background()
	w := testWebhook("00000000-0000-4000-8000-000000000001", "http://10.0.0.1/a", "env:production")
	beat := heartbeats(t, st, w)
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

// A webhook's format options reach the agent as the JSON object of the
// options (routing key included: agents render the body), exactly what
// json.Marshal makes of them, and a webhook without options has no
// format_options at all.
func TestAgentAnswerCarriesFormatOptions(t *testing.T) {
	pd := testWebhook("00000000-0000-4000-8000-000000000001", "https://events.pagerduty.test/v2/enqueue", "env:production")
	pd.Format = formats.PagerDuty
	pd.FormatOptions = &formats.Options{RoutingKey: "R0123456789abcdef0123456789ABCDE", DedupField: "fingerprint",
		Severity: map[string]string{"alert.*": "critical", "*": "info"}}
	plain := testWebhook("00000000-0000-4000-8000-000000000002", "http://10.0.0.1/b", "env:production")
	beat := heartbeats(t, testStore(t), pd, plain)
	for range 2 { // the second answer comes from the cached snapshot
		data, err := json.Marshal(beat())
		if err != nil {
			t.Fatal(err)
		}
		var wire struct {
			Webhooks []map[string]json.RawMessage `json:"webhooks"`
		}
		if err := json.Unmarshal(data, &wire); err != nil || len(wire.Webhooks) != 2 {
			t.Fatalf("answer %s: %v", data, err)
		}
		want, _ := json.Marshal(pd.FormatOptions)
		for _, w := range wire.Webhooks {
			var id, format string
			_ = json.Unmarshal(w["id"], &id)
			_ = json.Unmarshal(w["format"], &format)
			opts, has := w["format_options"]
			switch id {
			case pd.ID:
				if format != "pagerduty" || string(opts) != string(want) {
					t.Errorf("pagerduty webhook on the wire: format %q, options %s, want %s", format, opts, want)
				}
			case plain.ID:
				if has || format != "" {
					t.Errorf("webhook without a format on the wire: format %q, options %s", format, opts)
				}
			}
		}
	}
}

// The control plane on its own, over a real NATS server: it answers an
// agent's hello with its grant's label sets and webhooks (secrets included),
// refuses a wrong token, authorizes the callout with the same grant, and
// hands a kick to whoever serves kick requests.
func TestControlPlaneAnswersAuthorizesAndKicks(t *testing.T) {
	ns := hermodtest.NATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	st := testStore(t)
	ctx := context.Background()
	covered := testWebhook("00000000-0000-4000-8000-000000000001", "http://10.0.0.1/prod", "env:production")
	other := testWebhook("00000000-0000-4000-8000-000000000002", "http://10.0.0.1/staging", "env:staging")
	broker := testWebhook("00000000-0000-4000-8000-000000000003", "https://e.test/broker")
	for _, w := range []*webhooks.Webhook{covered, other, broker} {
		if err := st.PutWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	const token = "test-agent-token-0123456789"
	putAgent(t, st, "eu-1", token, "env:production", "region:eu")

	logs := &hermodtest.LogBuffer{}
	cp := New(st, nc, zerolog.New(logs), Options{AcquireTTL: 30 * time.Second, KickTimeout: 5 * time.Second})
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- cp.Serve(sctx) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	ask := func(id, kind, tok string) streams.AgentConfig {
		t.Helper()
		body, _ := json.Marshal(streams.AgentRequest{Token: tok, Version: "test"})
		var out streams.AgentConfig
		hermodtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			m, err := nc.Request(streams.AgentControlPrefix+id+"."+kind, body, time.Second)
			if err != nil {
				return fmt.Errorf("control plane: %w", err)
			}
			return json.Unmarshal(m.Data, &out)
		})
		return out
	}
	hello := ask("eu-1", "hello", token)
	wantConsumer := streams.AgentConsumerName(covered.TargetLabels)
	if hello.Error != "" || hello.AgentID != "eu-1" || len(hello.Consumers) != 1 || hello.Consumers[0] != wantConsumer ||
		len(hello.Webhooks) != 1 || hello.Webhooks[0].ID != covered.ID || hello.Webhooks[0].Secret != testSecret ||
		hello.HeartbeatMs != HeartbeatInterval.Milliseconds() || hello.AcquireTTLms != 30000 {
		t.Fatalf("hello answer: %+v", hello)
	}
	if out := ask("eu-1", "heartbeat", "wrong-token-0123456789"); out.Error != "unauthorized" || len(out.Webhooks) != 0 {
		t.Fatalf("wrong token: %+v", out)
	}
	if out := ask("nobody", "hello", token); out.Error != "unauthorized" {
		t.Fatalf("unknown agent: %+v", out)
	}
	if out := ask("eu-1", "goodbye", token); out.Error != "unknown request" {
		t.Fatalf("unknown request: %+v", out)
	}
	a, err := st.GetAgent(ctx, "eu-1")
	if err != nil || a.Version != "test" || a.LastSeenAt.IsZero() {
		t.Fatalf("heartbeat not recorded: %+v, %v", a, err)
	}

	var grants agentauth.Grants = cp
	g, ok, err := grants.Authorize(ctx, "eu-1", token)
	if err != nil || !ok || g.AgentID != "eu-1" || len(g.Consumers) != 1 || g.Consumers[0] != wantConsumer ||
		len(g.WebhookIDs) != 1 || g.WebhookIDs[0] != covered.ID {
		t.Fatalf("Authorize: %+v %v %v", g, ok, err)
	}
	if _, ok, err := grants.Authorize(ctx, "eu-1", "wrong-token-0123456789"); ok || err != nil {
		t.Fatalf("Authorize with a wrong token: %v %v", ok, err)
	}

	// No kicker: the kick is skipped, quietly.
	cp.KickAgent(ctx, "eu-1")
	// A kicker: the kick reaches it and its answer is logged.
	kicked := make(chan string, 1)
	kctx, kstop := context.WithCancel(ctx)
	kdone := make(chan error, 1)
	go func() {
		kdone <- agentauth.ServeKicks(kctx, nc, func(_ context.Context, id string) (int, error) {
			kicked <- id
			return 2, nil
		}, zerolog.Nop())
	}()
	defer func() { kstop(); <-kdone }()
	hermodtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		cp.KickAgent(ctx, "eu-1")
		if !strings.Contains(logs.String(), `"kicked":2`) {
			return fmt.Errorf("no kick of 2 connections logged yet")
		}
		return nil
	})
	if id := <-kicked; id != "eu-1" {
		t.Fatalf("kicked %q, want eu-1", id)
	}
}

// A webhook whose target labels changed while its deliveries waited on its
// old label set's subject has moved: an agent whose grant covers the old
// set (still targeted by another of its webhooks, or by none) is told to
// take that set and is given the moved webhook's target labels, without
// url or secret, and the permission to park its deliveries, so that it
// sends them on instead of taking the webhook for deleted. An agent whose
// grant does not cover the old set is told nothing of it.
func TestAgentIsToldOfMovedWebhooks(t *testing.T) {
	ns := hermodtest.NATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := streams.EnsureStreams(ctx, js, streams.Settings{Subjects: []string{"alert.>"}}); err != nil {
		t.Fatal(err)
	}
	st := testStore(t)
	prod, prodEU := []string{"env:production"}, []string{"env:production", "region:eu"}
	covered := testWebhook("00000000-0000-4000-8000-000000000001", "http://10.0.0.1/prod", prod...)
	toBroker := testWebhook("00000000-0000-4000-8000-000000000002", "http://10.0.0.1/moved")                   // was prodEU, a set nobody targets now
	toStaging := testWebhook("00000000-0000-4000-8000-000000000003", "http://10.0.0.1/staging", "env:staging") // was prod
	for _, w := range []*webhooks.Webhook{covered, toBroker, toStaging} {
		if err := st.PutWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	for _, labels := range [][]string{prod, prodEU} {
		if _, err := js.CreateOrUpdateConsumer(ctx, streams.DeliveriesStream, streams.AgentConsumerConfig(labels, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []struct {
		labels []string
		id     string
	}{{prodEU, toBroker.ID}, {prod, toStaging.ID}, {prod, covered.ID}} {
		if _, err := js.Publish(ctx, streams.AgentSubject(m.labels, m.id), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	putAgent(t, st, "eu-1", "test-agent-token-0123456789", prodEU...)
	putAgent(t, st, "us-1", "test-agent-token-9876543210", "env:staging", "region:us")
	cp := New(st, nc, zerolog.Nop(), Options{AcquireTTL: 30 * time.Second})
	ask := func(id, token string) streams.AgentConfig {
		req, _ := json.Marshal(streams.AgentRequest{Token: token})
		return cp.answer(ctx, &nats.Msg{Subject: streams.AgentControlPrefix + id + ".hello", Data: req})
	}

	eu := ask("eu-1", "test-agent-token-0123456789")
	wantConsumers := []string{streams.AgentConsumerName(prod), streams.AgentConsumerName(prodEU)}
	slices.Sort(wantConsumers)
	if eu.Error != "" || !slices.Equal(eu.Consumers, wantConsumers) || len(eu.Webhooks) != 3 {
		t.Fatalf("eu-1's answer: consumers %v (want %v), %d webhooks (want 3), error %q", eu.Consumers, wantConsumers, len(eu.Webhooks), eu.Error)
	}
	for _, w := range eu.Webhooks[1:] { // the covered webhook first, then the moved ones by id
		if w.ID != toBroker.ID && w.ID != toStaging.ID || w.URL != "" || w.Secret != "" || !w.Enabled {
			t.Errorf("moved webhook as told: %+v, want its id, labels and state only", w)
		}
	}
	if eu.Webhooks[0].ID != covered.ID || eu.Webhooks[0].Secret != testSecret {
		t.Errorf("covered webhook as told: %+v", eu.Webhooks[0])
	}
	g, ok, err := cp.Authorize(ctx, "eu-1", "test-agent-token-0123456789")
	if err != nil || !ok || !slices.Equal(g.Consumers, wantConsumers) || len(g.WebhookIDs) != 3 {
		t.Fatalf("Authorize: %+v %v %v", g, ok, err)
	}

	// us-1 covers toStaging's new set, not the old ones: it has toStaging
	// in full, and nothing moved.
	us := ask("us-1", "test-agent-token-9876543210")
	if us.Error != "" || !slices.Equal(us.Consumers, []string{streams.AgentConsumerName([]string{"env:staging"})}) ||
		len(us.Webhooks) != 1 || us.Webhooks[0].ID != toStaging.ID || us.Webhooks[0].URL == "" {
		t.Fatalf("us-1 (covering neither old set) was told %+v", us)
	}
}
