package opsevents

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// rig is a real JetStream and Redis, with the store on them.
type rig struct {
	js jetstream.JetStream
	st *store.Store
	m  *metrics.Ops
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	_, js := hermodtest.JetStream(t, ns.ClientURL())
	if err := streams.EnsureStreams(context.Background(), js, streams.Settings{Subjects: []string{"alert.>"}}); err != nil {
		t.Fatal(err)
	}
	return &rig{js: js, st: store.New(rd.Client(t), nil), m: metrics.NewOps(prometheus.NewRegistry())}
}

// told is one operational event as the event stream holds it.
type told struct {
	Subject string
	About   string
	Env     struct {
		ID        string         `json:"id"`
		EventType string         `json:"event_type"`
		Data      map[string]any `json:"data"`
	}
	Raw string
}

// events are the operational events stored in the event stream.
func (r *rig) events(t *testing.T) []told {
	t.Helper()
	ctx := context.Background()
	s, err := r.js.Stream(ctx, streams.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []told
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if !strings.HasPrefix(m.Subject, streams.OpsEventPrefix) {
			continue
		}
		e := told{Subject: m.Subject, About: m.Header.Get(streams.HdrAboutWebhook), Raw: string(m.Data)}
		if err := json.Unmarshal(m.Data, &e.Env); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func ofType(evs []told, typ string) []told {
	var out []told
	for _, e := range evs {
		if e.Env.EventType == typ {
			out = append(out, e)
		}
	}
	return out
}

type hookMap map[string]*webhooks.Webhook

func (h hookMap) Get(id string) (*webhooks.Webhook, bool) { w, ok := h[id]; return w, ok }

// clock is a stubbed clock shared by the replicas.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func deadOutcome(wh, did, eventType string, at time.Time) streams.Outcome {
	return streams.Outcome{V: 1, DeliveryID: did, WebhookID: wh, EventID: "ev-" + did, EventType: eventType, Attempt: 3,
		Status: streams.StatusDead, AttemptStatus: streams.StatusFailed, StatusCode: 500, Reason: streams.ReasonExhausted,
		Error: "HTTP 500", By: "broker", StartedAt: at.UnixMilli(), FinishedAt: at.UnixMilli(), CreatedAt: at.UnixMilli(), PayloadSize: 10}
}

func successOutcome(wh, did string, at time.Time) streams.Outcome {
	return streams.Outcome{V: 1, DeliveryID: did, WebhookID: wh, EventID: "ev-" + did, EventType: "alert.triggered", Attempt: 1,
		Status: streams.StatusSuccess, AttemptStatus: streams.StatusSuccess, StatusCode: 200, By: "broker",
		StartedAt: at.UnixMilli(), FinishedAt: at.UnixMilli(), CreatedAt: at.UnixMilli(), PayloadSize: 10}
}

var lim = store.Limits{Retention: time.Hour, HistoryLimit: 100, PayloadTTL: 2 * time.Hour}

// Three replicas' watchers see the same batches at once (the worst case:
// a batch recorded again after a crash, racing the first): each
// transition is told exactly once, deaths are bounded per window and
// count those withheld, a death of an operational event's delivery is
// never told, and nothing told carries the webhook's url beyond its host.
func TestWebhookWatcherAcrossReplicas(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	clk := &clock{t: time.Now().Truncate(time.Millisecond)}
	hooks := hookMap{"w-fail": {ID: "w-fail", Name: "orders", URL: "https://user:pw@receiver.example:8443/hook?token=s3cret", Enabled: true}}
	policy := Policy{Cooldown: 5 * time.Minute, DeadLimit: 3}
	var replicas []*WebhookWatcher
	for range 3 {
		w := NewWebhookWatcher(r.st, hooks, NewPublisher(r.js, r.m, zerolog.Nop()), policy, r.m, zerolog.Nop())
		w.now = clk.now
		replicas = append(replicas, w)
	}
	record := func(outs ...streams.Outcome) {
		t.Helper()
		b := store.Batch{Outcomes: outs}
		if err := r.st.ApplyBatch(ctx, b, lim); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, w := range replicas {
			wg.Add(1)
			go func() { defer wg.Done(); w.Recorded(ctx, b) }()
		}
		wg.Wait()
	}

	// Five deaths: the third makes the webhook degraded; three are told.
	for i := range 5 {
		clk.add(time.Second)
		record(deadOutcome("w-fail", fmt.Sprintf("d-%d", i), "alert.triggered", clk.now()))
	}
	evs := r.events(t)
	if n := len(ofType(evs, catalog.WebhookDegraded)); n != 1 {
		t.Fatalf("%d degraded events, want 1: %v", n, evs)
	}
	dead := ofType(evs, catalog.DeliveryDead)
	if len(dead) != 3 {
		t.Fatalf("%d delivery.dead events, want 3 (the limit)", len(dead))
	}
	d0 := dead[0]
	if d0.About != "w-fail" || d0.Subject != streams.OpsEventSubject(catalog.DeliveryDead) ||
		d0.Env.Data["delivery_id"] != "d-0" || d0.Env.Data["event_id"] != "ev-d-0" || d0.Env.Data["event_type"] != "alert.triggered" ||
		d0.Env.Data["reason"] != "exhausted" || d0.Env.Data["attempts"] != 3.0 || d0.Env.Data["last_status_code"] != 500.0 ||
		d0.Env.Data["name"] != "orders" || d0.Env.Data["url_redacted"] != "https://receiver.example:8443" {
		t.Errorf("delivery.dead: about %q subject %s data %v", d0.About, d0.Subject, d0.Env.Data)
	}
	deg := ofType(evs, catalog.WebhookDegraded)[0]
	if deg.Env.Data["webhook_id"] != "w-fail" || deg.Env.Data["reason"] != "dead_streak" || deg.About != "w-fail" {
		t.Errorf("degraded: %v", deg.Env.Data)
	}
	for _, e := range evs {
		for _, secret := range []string{"pw", "s3cret", "user:", "/hook"} {
			if strings.Contains(e.Raw, secret) {
				t.Errorf("%s carries %q: %s", e.Env.EventType, secret, e.Raw)
			}
		}
	}
	if n := testutil.ToFloat64(r.m.Suppressed.WithLabelValues(catalog.DeliveryDead, "dead_limit")); n != 2 {
		t.Errorf("dead_limit suppressed %v, want 2", n)
	}
	if n := testutil.ToFloat64(r.m.Published.WithLabelValues(catalog.WebhookDegraded)); n != 1 {
		t.Errorf("published degraded %v, want 1", n)
	}

	// A death of an operational event's delivery is never told.
	clk.add(time.Second)
	record(deadOutcome("w-fail", "d-ops", catalog.DeliveryDead, clk.now()))
	if n := testutil.ToFloat64(r.m.Suppressed.WithLabelValues(catalog.DeliveryDead, "ops_delivery")); n != 3 {
		t.Errorf("ops_delivery suppressed %v, want 3 (one per replica)", n)
	}

	// One success: recovered, once. Then degraded again within the
	// cooldown: coalesced, not told.
	clk.add(time.Second)
	record(successOutcome("w-fail", "s-1", clk.now()))
	for i := range 3 {
		clk.add(time.Second)
		record(deadOutcome("w-fail", fmt.Sprintf("e-%d", i), "alert.triggered", clk.now()))
	}
	evs = r.events(t)
	if n := len(ofType(evs, catalog.WebhookRecovered)); n != 1 {
		t.Fatalf("%d recovered events, want 1", n)
	}
	if rec := ofType(evs, catalog.WebhookRecovered)[0]; rec.Env.Data["degraded_at"] == nil {
		t.Errorf("recovered without degraded_at: %v", rec.Env.Data)
	}
	if n := len(ofType(evs, catalog.WebhookDegraded)); n != 1 {
		t.Fatalf("%d degraded events within the cooldown, want 1", n)
	}
	if n := len(ofType(evs, catalog.DeliveryDead)); n != 3 {
		t.Fatalf("%d delivery.dead events, want still 3 within the window", n)
	}

	// After the cooldown: the next death is told with the count of those
	// withheld, and the still degraded webhook is told degraded again.
	clk.add(5 * time.Minute)
	record(deadOutcome("w-fail", "f-0", "alert.triggered", clk.now()))
	evs = r.events(t)
	if n := len(ofType(evs, catalog.WebhookDegraded)); n != 2 {
		t.Fatalf("%d degraded events after the cooldown, want 2", n)
	}
	dead = ofType(evs, catalog.DeliveryDead)
	if len(dead) != 4 || dead[3].Env.Data["delivery_id"] != "f-0" || dead[3].Env.Data["suppressed"] != 5.0 {
		t.Fatalf("after the window: %d dead events, last %v; want 4, the last counting 5 withheld", len(dead), dead[len(dead)-1].Env.Data)
	}
}

// A breaker report makes the webhook degraded with reason breaker_open.
func TestWebhookWatcherBreaker(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	now := time.Now()
	hooks := hookMap{"w-b": {ID: "w-b", Name: "b", URL: "http://127.0.0.1:1/x", Enabled: true}}
	w := NewWebhookWatcher(r.st, hooks, NewPublisher(r.js, r.m, zerolog.Nop()), DefaultPolicy, r.m, zerolog.Nop())
	w.now = func() time.Time { return now }
	b := store.Batch{Breakers: []streams.BreakerState{{V: 1, WebhookID: "w-b", OpenUntil: now.Add(time.Minute).UnixMilli(), At: now.UnixMilli()}}}
	if err := r.st.ApplyBatch(ctx, b, lim); err != nil {
		t.Fatal(err)
	}
	w.Recorded(ctx, b)
	deg := ofType(r.events(t), catalog.WebhookDegraded)
	if len(deg) != 1 || deg[0].Env.Data["reason"] != "breaker_open" || deg[0].Env.Data["breaker_open_until"] == nil {
		t.Fatalf("degraded events %v", deg)
	}
}

// An agent that stops sending heartbeats is told inactive once (two
// replicas look), and active when it comes back.
func TestAgentWatcher(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	clk := &clock{t: time.Now().Truncate(time.Millisecond)}
	if err := r.st.CreateAgent(ctx, &store.Agent{ID: "eu-1", Labels: []string{"env:prod"}, TokenHash: store.HashToken("t"), CreatedAt: clk.now()}); err != nil {
		t.Fatal(err)
	}
	if err := r.st.CreateAgent(ctx, &store.Agent{ID: "never", TokenHash: store.HashToken("t"), CreatedAt: clk.now()}); err != nil {
		t.Fatal(err)
	}
	var replicas []*AgentWatcher
	for range 2 {
		a := NewAgentWatcher(r.st, NewPublisher(r.js, r.m, zerolog.Nop()), DefaultPolicy,
			AgentOptions{Every: time.Second, InactiveAfter: 30 * time.Second}, r.m, zerolog.Nop())
		a.now = clk.now
		replicas = append(replicas, a)
	}
	check := func() {
		t.Helper()
		var wg sync.WaitGroup
		for _, a := range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := a.Check(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	if err := r.st.AgentSeen(ctx, "eu-1", "1.0", 0, clk.now()); err != nil {
		t.Fatal(err)
	}
	// The agents by status, as the gauge says after each look.
	agents := func(active, inactive, never float64) {
		t.Helper()
		for status, want := range map[string]float64{"active": active, "inactive": inactive, "never_seen": never} {
			if n := testutil.ToFloat64(r.m.Agents.WithLabelValues(status)); n != want {
				t.Errorf("hermod_agents{status=%q} = %v, want %v", status, n, want)
			}
		}
	}
	check()
	agents(1, 0, 1)
	clk.add(10 * time.Second)
	check()
	if evs := r.events(t); len(evs) != 0 {
		t.Fatalf("told %v about a new, active agent", evs)
	}
	clk.add(31 * time.Second)
	check()
	check()
	agents(0, 1, 1)
	evs := r.events(t)
	if len(evs) != 1 || evs[0].Env.EventType != catalog.AgentInactive || evs[0].Env.Data["agent_id"] != "eu-1" ||
		evs[0].Env.Data["last_seen_at"] == nil || evs[0].About != "" {
		t.Fatalf("events %v, want one agent.inactive about eu-1", evs)
	}
	clk.add(time.Minute)
	if err := r.st.AgentSeen(ctx, "eu-1", "1.0", 0, clk.now()); err != nil {
		t.Fatal(err)
	}
	check()
	evs = r.events(t)
	if len(evs) != 2 || evs[1].Env.EventType != catalog.AgentActive || evs[1].Env.Data["inactive_since"] == nil {
		t.Fatalf("events %v, want agent.active last", evs)
	}
	agents(1, 0, 1)
}

// ReplayFinished is published like every operational event, for whoever
// finishes a replay.
func TestPublishReplayFinished(t *testing.T) {
	r := newRig(t)
	pub := NewPublisher(r.js, r.m, zerolog.Nop())
	ev := ReplayFinished{ID: "r-1", WebhookID: "w-1", State: "done", Matched: 10, Requeued: 8, Skipped: 2, Message: "replay done"}
	for range 2 { // told twice: stored once
		if err := pub.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	evs := r.events(t)
	if len(evs) != 1 || evs[0].Env.EventType != catalog.ReplayFinished || evs[0].Env.Data["requeued"] != 8.0 ||
		evs[0].Env.Data["webhook_id"] != "w-1" || evs[0].Env.Data["state"] != "done" {
		t.Fatalf("events %v", evs)
	}
}

// The recorder never waits for the watcher: batches beyond the queue are
// dropped and counted; Run then looks at those queued, in order.
func TestWebhookWatcherQueue(t *testing.T) {
	r := newRig(t)
	w := NewWebhookWatcher(r.st, nil, NewPublisher(r.js, r.m, zerolog.Nop()), DefaultPolicy, r.m, zerolog.Nop())
	for range QueueSize + 3 {
		w.Enqueue(store.Batch{}) // returns at once, queue full or not
	}
	if n := testutil.ToFloat64(r.m.Suppressed.WithLabelValues(QueueFullType, "queue_full")); n != 3 {
		t.Errorf("queue_full = %v, want 3", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	hermodtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := len(w.queue); n != 0 {
			return fmt.Errorf("%d batches still queued", n)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
