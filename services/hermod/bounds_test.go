package allinone_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	allinone "github.com/hermodhq/hermod/services/hermod"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
)

// Retention and the history limit hold under load, against a real
// redis-server and a real embedded JetStream, with time compressed: a
// retention of 2 s and a history of 30 deliveries per webhook, and events
// for twelve retention periods to one endpoint that always answers 200 and
// one that always answers 500 (two attempts, then dead; the breaker is set
// out of reach here, see docs/reliability.md "Bounds"). While the traffic
// runs, no webhook's index ever holds more than the history limit and no
// attempt history more than its attempts; the dead-letter stream holds
// only the dead letters of about a retention. Once the traffic stops,
// every delivery record, attempt history, delivery pointer and index is
// gone, the dead-letter stream is empty, and Redis's memory is back to
// where it started plus the event payloads (kept retention + max hold +
// 1 day). The bytes per retained delivery and per dead letter are logged.
func TestBoundedUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		retention = 2 * time.Second
		history   = 30
		events    = 480
		period    = 50 * time.Millisecond // 20 events a second: 24 s, 12 retentions
	)
	p := startPipeline(t, func(c *allinone.Config) {
		c.Retention, c.HistoryLimit, c.MaxHold = retention, history, time.Second
		c.Isolation.Threshold = 1000
		c.LogLevel = "warn"
	})
	rdb := p.Redis.Client(t)
	ctx := context.Background()
	okSink, failSink := hermodtest.NewSink(t), hermodtest.NewSink(t)
	failSink.SetAnswer(func(int, *http.Request) int { return http.StatusInternalServerError })
	okID := p.createWebhook(map[string]any{"name": "ok", "url": okSink.URL, "event_types": []string{"deployment.applied"}})
	failID := p.createWebhook(map[string]any{"name": "failing", "url": failSink.URL, "event_types": []string{"deployment.applied"},
		"max_retries": 2})
	base := usedMemory(t, rdb)
	stats0, _ := rdb.Do(ctx, "MEMORY", "STATS").Result()

	var maxIndex, maxDead int64
	var perDelivery, perDead []float64
	sample := func() {
		for _, wh := range []string{okID, failID} {
			n, err := rdb.ZCard(ctx, store.DeliveryIndexKey(wh)).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n > history {
				t.Errorf("webhook %s: %d deliveries in its index, limit %d", wh, n, history)
			}
			maxIndex = max(maxIndex, n)
		}
		st := streamState(t, p.jetStream(), streams.DeadStream)
		maxDead = max(maxDead, int64(st.Msgs))
		if st.Msgs > 0 {
			perDead = append(perDead, float64(st.Bytes)/float64(st.Msgs))
		}
		if b, ok := deliveryBytes(t, rdb, failID); ok {
			perDelivery = append(perDelivery, b)
		}
	}
	tick := time.NewTicker(period)
	for i := range events {
		<-tick.C
		p.publish("deployment.applied", map[string]any{"deployment_id": "d-" + strconv.Itoa(i), "service": "checkout"})
		if i%10 == 9 {
			sample()
		}
	}
	tick.Stop()
	hermodtest.CheckFor(t, 2*time.Minute, 100*time.Millisecond, func() error {
		if n := okSink.Count(); n < events {
			return fmt.Errorf("the good endpoint got %d of %d", n, events)
		}
		if n := failSink.Count(); n < 2*events {
			return fmt.Errorf("the failing endpoint got %d of %d attempts", n, 2*events)
		}
		return p.inHand()
	})
	sample()
	for _, key := range scanKeys(t, rdb, "hermod:da:*") {
		if n, err := rdb.HLen(ctx, key).Result(); err == nil && n > 2 {
			t.Errorf("%s holds %d attempts, at most 2 were made", key, n)
		}
	}
	if maxDead == 0 || maxDead > events/3 {
		t.Errorf("the dead-letter stream held up to %d of %d dead letters at once; want about a retention's", maxDead, events)
	}

	// Everything expires: records by their TTL, ids by the sweep, dead
	// letters by the stream's max age.
	hermodtest.CheckFor(t, 2*time.Minute, 200*time.Millisecond, func() error {
		for _, pattern := range []string{"hermod:d:*", "hermod:da:*", "hermod:dw:*", "hermod:wd:*", "hermod:wt:*"} {
			if keys := scanKeys(t, rdb, pattern); len(keys) > 0 {
				return fmt.Errorf("%d keys %s left, e.g. %s; %s", len(keys), pattern, keys[0], explain(t, rdb, keys))
			}
		}
		if st := streamState(t, p.jetStream(), streams.DeadStream); st.Msgs != 0 {
			return fmt.Errorf("%d dead letters left", st.Msgs)
		}
		return nil
	})
	payloads := scanKeys(t, rdb, "hermod:e:*")
	if len(payloads) != events {
		t.Errorf("%d event payloads, want %d", len(payloads), events)
	}
	var payloadBytes int64
	for _, k := range payloads {
		ttl, err := rdb.TTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > retention+time.Second+24*time.Hour {
			t.Errorf("payload %s: TTL %s (%v), want at most retention + max hold + 1 day", k, ttl, err)
		}
		n, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		payloadBytes += n
	}
	const slack = 256 << 10 // scripts, minute buckets, statistics, allocator rounding
	hermodtest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		if used := usedMemory(t, rdb); used > base+payloadBytes+slack {
			byKind := map[string]int64{}
			for _, k := range scanKeys(t, rdb, "*") {
				n, _ := rdb.MemoryUsage(ctx, k, 0).Result()
				kind := k
				if i := strings.IndexAny(k[min(len(k), 7):], ":{"); i >= 0 {
					kind = k[:7+i]
				}
				byKind[kind] += n
			}
			stats1, _ := rdb.Do(ctx, "MEMORY", "STATS").Result()
			return fmt.Errorf("used_memory %d, bound %d (start %d + payloads %d + %d); by kind %v\n%v\n%v", used, base+payloadBytes+slack, base, payloadBytes, slack, byKind, stats0, stats1)
		}
		return nil
	})
	t.Logf("%d events to 2 webhooks; most ids in one index %d (limit %d); most dead letters at once %d; "+
		"Redis bytes per retained dead delivery (record, 2 attempts, pointer) %.0f; stream bytes per dead letter %.0f; "+
		"Redis bytes per payload %d; used_memory %d at start, %d at the end",
		events, maxIndex, history, maxDead, mean(perDelivery), mean(perDead), payloadBytes/int64(max(1, len(payloads))),
		base, usedMemory(t, rdb))
}

func usedMemory(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

func scanKeys(t *testing.T, rdb *redis.Client, pattern string) []string {
	t.Helper()
	var out []string
	it := rdb.Scan(context.Background(), 0, pattern, 1000).Iterator()
	for it.Next(context.Background()) {
		out = append(out, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func streamState(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamState {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State
}

// deliveryBytes is the Redis memory of one dead delivery of webhook wh:
// its record, attempt history and pointer (MEMORY USAGE, every field
// counted), averaged over up to ten of them; ok false when none is dead.
func deliveryBytes(t *testing.T, rdb *redis.Client, wh string) (float64, bool) {
	t.Helper()
	ctx := context.Background()
	ids, err := rdb.ZRange(ctx, store.StatusIndexKey(wh, streams.StatusDead), 0, 9).Result()
	if err != nil {
		t.Fatal(err)
	}
	var total, n int64
	for _, id := range ids {
		var sum int64
		complete := true
		for _, k := range []string{store.DeliveryKey(wh, id), store.AttemptsKey(wh, id), store.DeliveryWebhookKey(id)} {
			b, err := rdb.MemoryUsage(ctx, k, 0).Result()
			if err != nil { // expired meanwhile
				complete = false
				break
			}
			sum += b
		}
		if complete {
			total, n = total+sum, n+1
		}
	}
	if n == 0 {
		return 0, false
	}
	return float64(total) / float64(n), true
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// explain describes leftover delivery pointers: their webhook, whether the
// delivery is in an index, and whether its record exists.
func explain(t *testing.T, rdb *redis.Client, keys []string) string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, k := range keys {
		id, ok := strings.CutPrefix(k, "hermod:dw:")
		if !ok {
			continue
		}
		wh, _ := rdb.Get(ctx, k).Result()
		ttl, _ := rdb.TTL(ctx, k).Result()
		_, inIndex := rdb.ZScore(ctx, store.DeliveryIndexKey(wh), id).Result()
		_, inTrimmed := rdb.ZScore(ctx, store.TrimmedKey(wh), id).Result()
		rec, _ := rdb.Exists(ctx, store.DeliveryKey(wh, id)).Result()
		out = append(out, fmt.Sprintf("%s: webhook %s ttl %s index %v trimmed %v record %d", id, wh, ttl, inIndex == nil, inTrimmed == nil, rec))
	}
	return strings.Join(out, "; ")
}
