package allinone

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// The embedded store runs everything the store sends it: the migration of
// an older build's snapshot, the record scripts (trimming included), the
// sweep; and what it holds survives a restart, layout version included.
func TestEmbeddedStoreRunsTheStore(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	key, _ := encryption.ParseKey(strings.Repeat("cd", 32))
	box, err := encryption.New(key)
	if err != nil {
		t.Fatal(err)
	}
	open := func() (*embeddedRedis, *store.Store) {
		t.Helper()
		e, err := startEmbeddedRedis(dir, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: e.m.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		return e, store.New(rdb, box)
	}
	e, st := open()
	rdb := st.Redis()
	now := time.Now().UTC()
	const wh = "6f1c2d1e-0b5a-4c55-9d0e-3f7f1f0c9a11"
	if err := st.PutWebhook(ctx, &webhooks.Webhook{ID: wh, Name: "n", URL: "https://example.test/",
		Secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", EventTypes: []string{"*"}, Enabled: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	// A delivery in progress as a layout 1 build wrote it (old key names).
	created := now.Add(-time.Minute).UnixMilli()
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, "hermod:d:d-old", "ord", 12, "status", "failed", "epoch", 0, "attempts", 1, "webhook_id", wh,
			"event_id", "ev-0", "event_type", "alert.triggered", "created_at", created, "updated_at", created)
		p.HSet(ctx, "hermod:da:d-old", "0.001", `{"attempt":1,"status":"failed","status_code":503}`)
		p.ZAdd(ctx, "hermod:wd:"+wh, redis.Z{Score: float64(created), Member: "d-old"})
		p.ZAdd(ctx, "hermod:wd:"+wh+":failed", redis.Z{Score: float64(created), Member: "d-old"})
		p.HSet(ctx, "hermod:ws:"+wh, "failed", 3, "last3", "DDD")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if d, hist, _, err := st.GetDelivery(ctx, "d-old"); err != nil || d.Status != streams.StatusFailed || len(hist) != 1 {
		t.Fatalf("migrated delivery: %+v %v %v", d, hist, err)
	}

	// Two new deliveries with a history of two: the migrated one is trimmed.
	lim := store.Limits{Retention: time.Hour, HistoryLimit: 2, PayloadTTL: 30 * time.Minute}
	enq := streams.Enqueued{V: 1, EventID: "ev-1", EventType: "alert.triggered", CreatedAt: now.UnixMilli(), Payload: []byte(`{"id":"ev-1"}`),
		Deliveries: []streams.EnqueuedItem{{DeliveryID: "d-1", WebhookID: wh}}}
	enq2 := enq
	enq2.EventID, enq2.CreatedAt = "ev-2", now.UnixMilli()+1
	enq2.Deliveries = []streams.EnqueuedItem{{DeliveryID: "d-2", WebhookID: wh}}
	done := streams.Outcome{V: 1, DeliveryID: "d-1", WebhookID: wh, EventID: "ev-1", EventType: "alert.triggered", Attempt: 1,
		Status: streams.StatusSuccess, AttemptStatus: streams.StatusSuccess, StatusCode: 200, DurationMs: 20, By: "broker",
		StartedAt: now.UnixMilli(), FinishedAt: now.UnixMilli(), CreatedAt: now.UnixMilli()}
	if err := st.ApplyBatch(ctx, store.Batch{Enqueued: []streams.Enqueued{enq, enq2}, Outcomes: []streams.Outcome{done},
		Breakers: []streams.BreakerState{{V: 1, WebhookID: wh, OpenUntil: now.Add(time.Minute).UnixMilli(), At: now.UnixMilli()}}}, lim); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := st.GetDelivery(ctx, "d-old"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("trimmed delivery: %v", err)
	}
	if ttl := rdb.TTL(ctx, store.EventKey("ev-1")).Val(); ttl <= 30*time.Minute || ttl > time.Hour {
		t.Errorf("payload TTL %s, want it extended to the retention once delivered", ttl)
	}
	if ttl := rdb.TTL(ctx, store.EventKey("ev-2")).Val(); ttl <= 0 || ttl > 30*time.Minute {
		t.Errorf("undelivered payload TTL %s", ttl)
	}
	if err := st.SweepIndexes(ctx, lim.Retention); err != nil {
		t.Fatal(err)
	}
	stats, err := st.Stats(ctx, []string{wh})
	if err != nil || stats[wh].Delivered != 1 || stats[wh].Last3 != "DDS" || stats[wh].BreakerUntil.IsZero() {
		t.Errorf("stats %+v %v", stats[wh], err)
	}
	e.close()

	e, st = open()
	defer e.close()
	d, hist, payload, err := st.GetDelivery(ctx, "d-1")
	if err != nil || d.Status != streams.StatusSuccess || len(hist) != 1 || string(payload) != `{"id":"ev-1"}` {
		t.Errorf("after a restart: %+v %v %s %v", d, hist, payload, err)
	}
	if v := st.Redis().Get(ctx, store.LayoutKey()).Val(); v != strconv.Itoa(store.LayoutVersion) {
		t.Errorf("layout version after a restart: %q", v)
	}
}
