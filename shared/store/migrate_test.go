package store

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// writeLayout1 writes what a build of layout 1 left in Redis for one
// webhook: a delivery in progress (failed once, no TTL), a finished one
// (with the retention TTL), the event payload, statistics, indexes and a
// minute bucket. The key names are written out: this is the old layout.
func writeLayout1(t *testing.T, rdb *redis.Client, wh string, minute int64) {
	t.Helper()
	ctx := context.Background()
	entry := func(attempt int, status streams.Status, code int) string {
		b, _ := json.Marshal(AttemptEntry{Attempt: attempt, Status: status, StatusCode: code, DurationMs: 40, By: "broker",
			StartedAt: time.UnixMilli(minute * 60000).UTC().Format(time.RFC3339Nano)})
		return string(b)
	}
	created := strconv.FormatInt(minute*60000, 10)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, "hermod:d:d-pend", "ord", 12, "status", "failed", "epoch", 0, "attempts", 1, "webhook_id", wh,
			"event_id", "ev-1", "event_type", "alert.triggered", "created_at", created, "updated_at", created,
			"payload_size", 13, "last_status_code", 503, "delivered_by", "broker", "last_error", "HTTP 503",
			"next_retry_at", minute*60000+5000)
		p.HSet(ctx, "hermod:da:d-pend", "0.001", entry(1, "failed", 503))
		p.HSet(ctx, "hermod:d:d-done", "ord", 15, "status", "success", "epoch", 0, "attempts", 1, "webhook_id", wh,
			"event_id", "ev-1", "event_type", "alert.triggered", "created_at", created, "updated_at", created,
			"payload_size", 13, "last_status_code", 200, "delivered_by", "broker", "completed_at", created)
		p.HSet(ctx, "hermod:da:d-done", "0.001", entry(1, "success", 200))
		p.Expire(ctx, "hermod:d:d-done", time.Hour)
		p.Expire(ctx, "hermod:da:d-done", time.Hour)
		p.Set(ctx, "hermod:e:ev-1", `{"id":"ev-1"}`, 2*time.Hour)
		p.HSet(ctx, "hermod:ws:"+wh, "delivered", 1, "last3", "S", "last_at", created,
			"breaker_until", time.Now().Add(time.Hour).UnixMilli(), "breaker_at", created)
		p.ZAdd(ctx, "hermod:wd:"+wh, redis.Z{Score: float64(minute * 60000), Member: "d-pend"}, redis.Z{Score: float64(minute*60000 + 1), Member: "d-done"})
		p.ZAdd(ctx, "hermod:wd:"+wh+":failed", redis.Z{Score: float64(minute * 60000), Member: "d-pend"})
		p.ZAdd(ctx, "hermod:wd:"+wh+":success", redis.Z{Score: float64(minute*60000 + 1), Member: "d-done"})
		p.HSet(ctx, "hermod:m:"+wh+":"+strconv.FormatInt(minute, 10), "s", 1, "f", 1, "h5", 2)
		p.Expire(ctx, "hermod:m:"+wh+":"+strconv.FormatInt(minute, 10), 25*time.Hour)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Data written in layout 1 reads back the same through the store after
// Migrate, keeps its TTLs, and takes new outcomes; Migrate runs once.
func TestMigrateLayout1(t *testing.T) {
	s, rd := newStore(t)
	ctx := context.Background()
	rdb := rd.Client(t)
	// Webhooks, agents and sessions have the same keys in both layouts.
	if err := s.CheckKey(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	w := &webhooks.Webhook{ID: "6f1c2d1e-0b5a-4c55-9d0e-3f7f1f0c9a11", Name: "ops", URL: "https://example.test/hook",
		Secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", EventTypes: []string{"alert.*"}, MaxRetries: 5, TimeoutSeconds: 30,
		Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := s.PutWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAgent(ctx, &Agent{ID: "eu-1", Labels: []string{"region:eu"}, TokenHash: HashToken("tok"), CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.AgentSeen(ctx, "eu-1", "1.2.3", 2, now); err != nil {
		t.Fatal(err)
	}
	sess, err := s.CreateSession(ctx, "key-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	minute := now.UnixMilli() / 60000
	writeLayout1(t, rdb, w.ID, minute)
	// A run that stopped half way: the record moved, its attempts not.
	if err := rdb.Rename(ctx, "hermod:d:d-done", DeliveryKey(w.ID, "d-done")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, DeliveryWebhookKey("d-done"), w.ID, 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Attempts whose record was gone before the migration stay as they are.
	if err := rdb.HSet(ctx, "hermod:da:d-orphan", "0.001", "{}").Err(); err != nil {
		t.Fatal(err)
	}

	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if v := rdb.Get(ctx, LayoutKey()).Val(); v != strconv.Itoa(LayoutVersion) {
		t.Fatalf("layout version %q", v)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		for _, kind := range []string{v1Delivery, v1Attempts, v1Stats, v1Index, v1Minute} {
			if _, old := v1Rest(kind, k); old && k != "hermod:da:d-orphan" {
				t.Errorf("layout 1 key left: %s", k)
			}
		}
	}

	// Everything reads back through the store.
	if got, err := s.GetWebhook(ctx, w.ID); err != nil || got.URL != w.URL || got.Secret != w.Secret {
		t.Errorf("webhook: %+v %v", got, err)
	}
	if list, _, err := s.ListWebhooks(ctx, 10, ""); err != nil || len(list) != 1 {
		t.Errorf("webhooks: %v %v", list, err)
	}
	if a, err := s.GetAgent(ctx, "eu-1"); err != nil || !a.TokenMatches("tok") || a.Version != "1.2.3" || a.InFlight != 2 {
		t.Errorf("agent: %+v %v", a, err)
	}
	if got, err := s.GetSession(ctx, sess.Token); err != nil || got.CSRF != sess.CSRF {
		t.Errorf("session: %+v %v", got, err)
	}
	d, hist, payload, err := s.GetDelivery(ctx, "d-pend")
	if err != nil || d.Status != streams.StatusFailed || d.Attempts != 1 || d.LastStatusCode != 503 || d.WebhookID != w.ID ||
		d.NextRetryAt.IsZero() || len(hist) != 1 || hist[0].StatusCode != 503 || string(payload) != `{"id":"ev-1"}` {
		t.Errorf("delivery in progress: %+v %+v %s %v", d, hist, payload, err)
	}
	if ttl := rdb.TTL(ctx, DeliveryKey(w.ID, "d-pend")).Val(); ttl != -1 {
		t.Errorf("record in progress got a TTL: %s", ttl)
	}
	d, hist, _, err = s.GetDelivery(ctx, "d-done")
	if err != nil || d.Status != streams.StatusSuccess || len(hist) != 1 || hist[0].StatusCode != 200 {
		t.Errorf("finished delivery: %+v %+v %v", d, hist, err)
	}
	for _, k := range []string{DeliveryKey(w.ID, "d-done"), AttemptsKey(w.ID, "d-done")} {
		if ttl := rdb.TTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("%s TTL %s, want the hour it had", k, ttl)
		}
	}
	if ids := deliveryIDs(t, s, w.ID, ""); ids != "d-done,d-pend" {
		t.Errorf("listed %s", ids)
	}
	if ids := deliveryIDs(t, s, w.ID, streams.StatusFailed); ids != "d-pend" {
		t.Errorf("listed as failed: %s", ids)
	}
	if owner, ok, err := s.DeliveryWebhook(ctx, "d-pend"); err != nil || !ok || owner != w.ID {
		t.Errorf("delivery's webhook: %q %v %v", owner, ok, err)
	}
	st, err := s.Stats(ctx, []string{w.ID})
	if err != nil || st[w.ID].Delivered != 1 || st[w.ID].Last3 != "S" || !st[w.ID].Degraded(time.Now()) {
		t.Errorf("stats %+v %v", st[w.ID], err)
	}
	buckets, err := s.MinuteStats(ctx, w.ID, time.Minute, now)
	if err != nil || len(buckets) != 1 || buckets[0].Success != 1 || buckets[0].Failed != 1 || buckets[0].P50Ms == nil {
		t.Errorf("minute stats %+v %v", buckets, err)
	}
	if ttl := rdb.TTL(ctx, MinuteKey(w.ID, minute)).Val(); ttl <= 24*time.Hour {
		t.Errorf("minute bucket TTL %s", ttl)
	}

	// The delivery in progress goes on in the new layout.
	ok := streams.Outcome{V: 1, DeliveryID: "d-pend", WebhookID: w.ID, EventID: "ev-1", EventType: "alert.triggered",
		Attempt: 2, Status: streams.StatusSuccess, AttemptStatus: streams.StatusSuccess, StatusCode: 200, DurationMs: 30,
		By: "broker", StartedAt: now.UnixMilli(), FinishedAt: now.UnixMilli(), CreatedAt: minute * 60000}
	apply(t, s, []streams.Outcome{ok})
	d, hist, _, err = s.GetDelivery(ctx, "d-pend")
	if err != nil || d.Status != streams.StatusSuccess || len(hist) != 2 {
		t.Errorf("after a new outcome: %+v %d %v", d, len(hist), err)
	}
	if ids := deliveryIDs(t, s, w.ID, streams.StatusFailed); ids != "" {
		t.Errorf("still listed as failed: %s", ids)
	}
	if ids := deliveryIDs(t, s, w.ID, streams.StatusSuccess); ids != "d-done,d-pend" {
		t.Errorf("listed as success: %s", ids)
	}
	st, _ = s.Stats(ctx, []string{w.ID})
	if st[w.ID].Delivered != 2 || st[w.ID].Last3 != "SS" {
		t.Errorf("stats after a new outcome %+v", st[w.ID])
	}

	// Once recorded, the version keeps Migrate from running again.
	if err := rdb.HSet(ctx, "hermod:ws:late", "delivered", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if rdb.Exists(ctx, "hermod:ws:late").Val() != 1 {
		t.Errorf("Migrate ran again")
	}
}

func deliveryIDs(t *testing.T, s *Store, wh string, status streams.Status) string {
	t.Helper()
	ds, _, err := s.ListDeliveries(context.Background(), wh, status, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return strings.Join(ids, ",")
}

// An empty Redis gets the version at once; a version newer than this
// build's is refused rather than misread.
func TestMigrateVersions(t *testing.T) {
	s, rd := newStore(t)
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rdb := rd.Client(t)
	if keys := rdb.Keys(ctx, "*").Val(); len(keys) != 1 || keys[0] != LayoutKey() {
		t.Errorf("keys after migrating an empty Redis: %v", keys)
	}
	if err := rdb.Set(ctx, LayoutKey(), LayoutVersion+1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("newer layout: %v", err)
	}
}

// Processes that start together may all migrate: together they move every
// key once and lose none.
func TestMigrateConcurrent(t *testing.T) {
	s, rd := newStore(t)
	ctx := context.Background()
	rdb := rd.Client(t)
	const hooks, per = 3, 400
	minute := time.Now().UnixMilli() / 60000
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for h := 0; h < hooks; h++ {
			wh := "wh-" + strconv.Itoa(h)
			p.HSet(ctx, "hermod:ws:"+wh, "delivered", per)
			p.HSet(ctx, "hermod:m:"+wh+":"+strconv.FormatInt(minute, 10), "s", per)
			for i := 0; i < per; i++ {
				d := wh + "-d" + strconv.Itoa(i)
				p.HSet(ctx, "hermod:d:"+d, "ord", 15, "status", "success", "webhook_id", wh, "created_at", i)
				p.HSet(ctx, "hermod:da:"+d, "0.001", "{}")
				p.ZAdd(ctx, "hermod:wd:"+wh, redis.Z{Score: float64(i), Member: d})
				p.ZAdd(ctx, "hermod:wd:"+wh+":success", redis.Z{Score: float64(i), Member: d})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() { errs <- New(rd.Client(t), nil).Migrate(ctx) }()
	}
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for h := 0; h < hooks; h++ {
		wh := "wh-" + strconv.Itoa(h)
		ds, _, err := s.ListDeliveries(ctx, wh, streams.StatusSuccess, 1000, "")
		if err != nil || len(ds) != per {
			t.Fatalf("%s: %d deliveries listed, want %d (%v)", wh, len(ds), per, err)
		}
		for _, d := range ds {
			if owner, ok, err := s.DeliveryWebhook(ctx, d.ID); err != nil || !ok || owner != wh {
				t.Fatalf("%s: webhook %q %v %v", d.ID, owner, ok, err)
			}
			if n := rdb.HLen(ctx, AttemptsKey(wh, d.ID)).Val(); n != 1 {
				t.Fatalf("%s: %d attempts", d.ID, n)
			}
		}
		st, _ := s.Stats(ctx, []string{wh})
		if st[wh].Delivered != per {
			t.Errorf("%s: stats %+v", wh, st[wh])
		}
	}
	if n := rdb.DBSize(ctx).Val(); n != hooks*(2+2+per*3)+1 {
		t.Errorf("%d keys, want %d", n, hooks*(2+2+per*3)+1)
	}
}
