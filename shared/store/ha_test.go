package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/redisurl"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// urlClient opens a client for a HERMOD_REDIS_URL, closed when t ends.
func urlClient(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	cfg, err := redisurl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Client()
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// The whole store works through a redis-cluster:// URL against a cluster
// of three primaries, and its keys spread over them.
func TestStoreThroughClusterURL(t *testing.T) {
	rc := hermodtest.StartRedisClusterNodes(t, 3)
	rdb := urlClient(t, rc.URL())
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("a redis-cluster:// URL opened a %T", rdb)
	}
	exerciseStore(t, rdb)
	ctx := context.Background()
	holding := 0
	for _, n := range rc.Nodes {
		size, err := n.Client(t).DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			holding++
		}
	}
	if holding < 2 {
		t.Errorf("%d of 3 nodes hold keys: the store's keys did not spread over the cluster", holding)
	}
}

// The whole store works through a redis-sentinel:// URL, writing to the
// primary the Sentinels name; the replica follows.
func TestStoreThroughSentinelURL(t *testing.T) {
	rs := hermodtest.StartRedisSentinel(t, time.Second, 5*time.Second)
	rdb := urlClient(t, rs.URL())
	exerciseStore(t, rdb)
	ctx := context.Background()
	replica := rs.Replica.Client(t)
	hermodtest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n, err := replica.Exists(ctx, LayoutKey()).Result(); err != nil || n != 1 {
			return fmt.Errorf("the replica has not the layout key: %d %v", n, err)
		}
		return nil
	})
}

// When the primary dies, the Sentinels promote the replica and the same
// client writes to it within a bounded time; what was written before is
// still there.
func TestStoreWritesAgainAfterSentinelFailover(t *testing.T) {
	rs := hermodtest.StartRedisSentinel(t, time.Second, 5*time.Second)
	rdb := urlClient(t, rs.URL())
	s := New(rdb, testBox(t))
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	put := func(id string) error {
		return s.PutWebhook(ctx, &webhooks.Webhook{ID: id, Name: "n", URL: "https://example.test/",
			Secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", EventTypes: []string{"*"}, Enabled: true, CreatedAt: now, UpdatedAt: now})
	}
	record := func(did string) error {
		e := streams.Enqueued{V: 1, EventID: "ev-" + did, EventType: "alert.triggered", CreatedAt: now.UnixMilli(),
			Payload: []byte(`{"x":1}`), Deliveries: []streams.EnqueuedItem{{DeliveryID: did, WebhookID: "wh-1"}}}
		return s.ApplyOutcomes(ctx, nil, []streams.Enqueued{e}, lim)
	}
	before := "3a1c2d1e-0b5a-4c55-9d0e-3f7f1f0c9a11"
	if err := put(before); err != nil {
		t.Fatal(err)
	}
	if err := record("d-before"); err != nil {
		t.Fatal(err)
	}
	// Wait until the replica has it all, so the failover loses nothing.
	if n, err := rdb.Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d replicas acknowledged (%v)", n, err)
	}
	killed := time.Now()
	rs.Primary.Stop()
	var writes int
	hermodtest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		writes++
		if err := put(fmt.Sprintf("3a1c2d1e-0b5a-4c55-9d0e-%012d", writes)); err != nil {
			return fmt.Errorf("put webhook: %w", err)
		}
		return record(fmt.Sprintf("d-%d", writes))
	})
	took := time.Since(killed)
	t.Logf("failover: writes succeeded again %v after the primary was killed (%d tries)", took.Round(time.Millisecond), writes)
	addr, err := rs.PrimaryAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if addr != rs.Replica.Addr {
		t.Errorf("the Sentinels name %s as the primary, want the old replica %s", addr, rs.Replica.Addr)
	}
	if _, err := s.GetWebhook(ctx, before); err != nil {
		t.Errorf("the webhook written before the failover: %v", err)
	}
	if _, _, _, err := s.GetDelivery(ctx, "d-before"); err != nil {
		t.Errorf("the record written before the failover: %v", err)
	}
	if _, _, _, err := s.GetDelivery(ctx, fmt.Sprintf("d-%d", writes)); err != nil {
		t.Errorf("the record written after the failover: %v", err)
	}
}
