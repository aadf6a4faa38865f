package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// Every command and script call of the store keeps to one slot: the whole
// store works against a Redis Cluster node, which refuses any that does not.
func TestStoreKeepsToOneSlotPerCall(t *testing.T) {
	rd := hermodtest.StartRedisCluster(t)
	rdb := rd.Client(t)
	if err := rdb.Del(context.Background(), WebhookKey("a"), WebhookKey("b")).Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("the cluster node took a command across slots: %v", err)
	}
	exerciseStore(t, rdb)
}

// exerciseStore runs every operation of the store through rdb.
func exerciseStore(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	s := New(rdb, testBox(t))
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("check key", s.CheckKey(ctx))
	must("migrate", s.Migrate(ctx))
	now := time.Now().UTC()
	hooks := []string{"6f1c2d1e-0b5a-4c55-9d0e-3f7f1f0c9a11", "0b1e6a43-2f55-4a07-8d52-1f8c5d0a3c27"}
	for _, id := range hooks {
		must("put webhook", s.PutWebhook(ctx, &webhooks.Webhook{ID: id, Name: "n", URL: "https://example.test/",
			Secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", EventTypes: []string{"*"}, Enabled: true, CreatedAt: now, UpdatedAt: now}))
	}
	all, err := s.AllWebhooks(ctx)
	must("all webhooks", err)
	if len(all) != 2 {
		t.Fatalf("%d webhooks", len(all))
	}
	_, _, err = s.ListWebhooks(ctx, 10, "")
	must("list webhooks", err)
	_, err = s.Version(ctx)
	must("version", err)

	must("create agent", s.CreateAgent(ctx, &Agent{ID: "eu-1", Labels: []string{"region:eu"}, CreatedAt: now, UpdatedAt: now}))
	must("agent seen", s.AgentSeen(ctx, "eu-1", "1", 0, now))
	_, err = s.GetAgent(ctx, "eu-1")
	must("get agent", err)
	_, _, err = s.ListAgents(ctx, 10, "")
	must("list agents", err)
	must("delete agent", s.DeleteAgent(ctx, "eu-1"))
	sess, err := s.CreateSession(ctx, "k", time.Hour)
	must("create session", err)
	_, err = s.GetSession(ctx, sess.Token)
	must("get session", err)
	must("delete session", s.DeleteSession(ctx, sess.Token))

	// One event to both webhooks, more deliveries than the history keeps,
	// outcomes, a breaker report, a manual retry, a sweep, a deletion.
	small := Limits{Retention: time.Hour, HistoryLimit: 2, PayloadTTL: time.Hour}
	for i, d := range []string{"d-1", "d-2", "d-3"} {
		e := streams.Enqueued{V: 1, EventID: "ev-" + d, EventType: "alert.triggered", CreatedAt: now.UnixMilli() + int64(i),
			Payload: []byte(`{"x":1}`)}
		for _, wh := range hooks {
			e.Deliveries = append(e.Deliveries, streams.EnqueuedItem{DeliveryID: wh[:4] + d, WebhookID: wh})
		}
		must("enqueue", s.ApplyOutcomes(ctx, nil, []streams.Enqueued{e}, small))
	}
	var outs []streams.Outcome
	for _, wh := range hooks {
		o := outcome(wh[:4]+"d-3", 0, 1, streams.StatusDead, streams.StatusFailed, 410)
		o.WebhookID, o.EventID = wh, "ev-d-3"
		outs = append(outs, o)
	}
	must("outcomes and breakers", s.ApplyBatch(ctx, Batch{Outcomes: outs,
		Breakers: []streams.BreakerState{{V: 1, WebhookID: hooks[0], OpenUntil: now.Add(time.Minute).UnixMilli(), At: now.UnixMilli()}}}, small))
	d, _, payload, err := s.GetDelivery(ctx, hooks[0][:4]+"d-3")
	must("get delivery", err)
	if d.Status != streams.StatusDead || string(payload) != `{"x":1}` {
		t.Fatalf("delivery %+v payload %s", d, payload)
	}
	must("requeue", s.Requeue(ctx, d, small))
	ds, _, err := s.ListDeliveries(ctx, hooks[0], "", 10, "")
	must("list deliveries", err)
	if len(ds) != 2 {
		t.Errorf("%d deliveries kept, want 2", len(ds))
	}
	_, err = s.Stats(ctx, hooks)
	must("stats", err)
	_, err = s.MinuteStats(ctx, hooks[0], 5*time.Minute, now)
	must("minute stats", err)
	must("sweep", s.SweepIndexes(ctx, small.Retention))
	_, _, err = s.DeliveryWebhook(ctx, d.ID)
	must("delivery's webhook", err)
	exerciseReplays(t, s, hooks[1], now)
	must("delete webhook", s.DeleteWebhook(ctx, hooks[0]))
}
