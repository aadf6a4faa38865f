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
// retention of 2 s and a history of 30 deliveries per webhook, and two
// waves of events, each of six retention periods, to one endpoint that
// always answers 200 and one that always answers 500 (two attempts, then
// dead; the breaker is set out of reach here, see docs/reliability.md
// "Bounds"). While the traffic runs, no webhook's index ever holds more
// than the history limit and no attempt history more than its attempts;
// the dead-letter stream holds only the dead letters of about a retention.
// After each wave every delivery record, attempt history, delivery pointer
// and index (and each death's operational-events mark) is gone, the
// dead-letter stream is empty, and the only keys left are the webhooks,
// their statistics, minute buckets and operational-events state, and the
// event payloads (kept retention + max hold + 1 day); after the second
// wave Redis's memory is where the first left it plus the second's
// payloads. The bytes per retained delivery and per dead letter are logged.
func TestBoundedUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		retention = 2 * time.Second
		history   = 30
		wave      = 240
		period    = 50 * time.Millisecond // 20 events a second: 12 s a wave, 6 retentions
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

	var maxIndex, maxDead int64
	var perDelivery []deliveryMemory
	var perDead []float64
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
	sent := 0
	run := func() {
		tick := time.NewTicker(period)
		defer tick.Stop()
		for range wave {
			<-tick.C
			p.publish("deployment.applied", map[string]any{"deployment_id": "d-" + strconv.Itoa(sent), "service": "checkout"})
			sent++
			if sent%10 == 0 {
				sample()
			}
		}
		hermodtest.CheckFor(t, 2*time.Minute, 100*time.Millisecond, func() error {
			if n := okSink.Count(); n < sent {
				return fmt.Errorf("the good endpoint got %d of %d", n, sent)
			}
			if n := failSink.Count(); n < 2*sent {
				return fmt.Errorf("the failing endpoint got %d of %d attempts", n, 2*sent)
			}
			return p.inHand()
		})
		sample()
		for _, key := range scanKeys(t, rdb, "hermod:da:*") {
			if n, err := rdb.HLen(ctx, key).Result(); err == nil && n > 2 {
				t.Errorf("%s holds %d attempts, at most 2 were made", key, n)
			}
		}
		allExpire(t, p, rdb)
	}
	// payloads checks the event payloads kept and returns their bytes.
	payloads := func() int64 {
		keys := scanKeys(t, rdb, "hermod:e:*")
		if len(keys) != sent {
			t.Errorf("%d event payloads, want %d", len(keys), sent)
		}
		var total int64
		for _, k := range keys {
			ttl, err := rdb.TTL(ctx, k).Result()
			if err != nil || ttl <= 0 || ttl > retention+time.Second+24*time.Hour {
				t.Errorf("payload %s: TTL %s (%v), want at most retention + max hold + 1 day", k, ttl, err)
			}
			n, err := rdb.MemoryUsage(ctx, k, 0).Result()
			if err != nil {
				t.Fatal(err)
			}
			total += n
		}
		return total
	}
	// Keys left besides the payloads: the webhooks, their statistics and
	// minute buckets, and Hermod's few markers.
	onlyLasting := func() {
		for _, k := range scanKeys(t, rdb, "*") {
			switch {
			case strings.HasPrefix(k, "hermod:e:"), strings.HasPrefix(k, "hermod:wh:"), strings.HasPrefix(k, "hermod:ws:"),
				strings.HasPrefix(k, "hermod:ops:wh:"), // what operational events last told of the webhook
				strings.HasPrefix(k, "hermod:m:"), k == "hermod:whs", k == "hermod:whver", k == "hermod:keycheck", k == "hermod:layout":
			default:
				t.Errorf("key %s left after the retention", k)
			}
		}
	}

	run()
	onlyLasting()
	firstPayloads, first := payloads(), usedMemory(t, rdb)
	run()
	onlyLasting()
	secondPayloads := payloads() - firstPayloads
	const slack = 64 << 10 // minute buckets, allocator rounding
	hermodtest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		if used := usedMemory(t, rdb); used > first+secondPayloads+slack {
			return fmt.Errorf("used_memory %d after the second wave, bound %d (after the first %d + its payloads %d + %d)",
				used, first+secondPayloads+slack, first, secondPayloads, slack)
		}
		return nil
	})
	if maxDead == 0 || maxDead > wave/2 {
		t.Errorf("the dead-letter stream held up to %d dead letters at once (a wave has %d); want about a retention's", maxDead, wave)
	}
	var rec, att, ptr, idx []float64
	for _, d := range perDelivery {
		rec, att, ptr, idx = append(rec, d.record), append(att, d.attempts), append(ptr, d.pointer), append(idx, d.index)
	}
	t.Logf("%d events to 2 webhooks in two waves; most ids in one index %d (limit %d); most dead letters at once %d; "+
		"Redis bytes per retained dead delivery: record %.0f, attempt history (2 attempts) %.0f, pointer %.0f, delivery index entry %.0f; "+
		"stream bytes per dead letter %.0f; Redis bytes per payload %d; used_memory %d after the first wave, %d after the second",
		sent, maxIndex, history, maxDead, mean(rec), mean(att), mean(ptr), mean(idx), mean(perDead),
		(firstPayloads+secondPayloads)/int64(sent), first, usedMemory(t, rdb))
}

// An endpoint that always fails, with its failure breaker on: once the
// breaker opens, deliveries are parked without spending attempts, and one
// created more than HERMOD_MAX_HOLD (1 s here) ago is dead (expired)
// instead of parked again. Twelve seconds of traffic (twelve max holds)
// leave no delivery waiting once the traffic stops: the deliveries stream
// drains, and every record, pointer, index and dead letter expires.
// Without the expiry the breaker lets one attempt through a second, and
// the parked deliveries wait for minutes.
func TestBoundedUnderAFailingEndpointWithItsBreaker(t *testing.T) {
	t.Parallel()
	const (
		events = 240
		period = 50 * time.Millisecond // 20 events a second
	)
	p := startPipeline(t, func(c *allinone.Config) {
		c.Retention, c.HistoryLimit, c.MaxHold = 2*time.Second, 30, time.Second
		c.Isolation.Threshold, c.Isolation.Cooldown = 3, time.Second
		c.LogLevel = "warn"
	})
	rdb := p.Redis.Client(t)
	ctx := context.Background()
	failSink := hermodtest.NewSink(t)
	failSink.SetAnswer(func(int, *http.Request) int { return http.StatusInternalServerError })
	failID := p.createWebhook(map[string]any{"name": "failing", "url": failSink.URL, "event_types": []string{"deployment.applied"},
		"max_retries": 2})
	expired := false
	var maxQueued uint64
	tick := time.NewTicker(period)
	for i := range events {
		<-tick.C
		p.publish("deployment.applied", map[string]any{"deployment_id": "d-" + strconv.Itoa(i)})
		if i%10 == 9 {
			maxQueued = max(maxQueued, streamState(t, p.jetStream(), streams.DeliveriesStream).Msgs)
			ids, err := rdb.ZRange(ctx, store.StatusIndexKey(failID, streams.StatusDead), 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if rdb.HGet(ctx, store.DeliveryKey(failID, id), "reason").Val() == string(streams.ReasonExpired) {
					expired = true
				}
			}
		}
	}
	tick.Stop()
	hermodtest.CheckFor(t, time.Minute, 100*time.Millisecond, p.inHand)
	if !expired {
		t.Error("no delivery died expired: the breaker never held one past the max hold")
	}
	if n := failSink.Count(); n >= 2*events {
		t.Errorf("the endpoint got %d attempts, %d without the breaker", n, 2*events)
	}
	allExpire(t, p, rdb)
	t.Logf("%d events; %d attempts reached the endpoint; most deliveries queued at once %d", events, failSink.Count(), maxQueued)
}

// allExpire waits until every delivery record, attempt history, pointer,
// index and dead letter is gone: records by their TTL, ids by the sweep,
// dead letters by the stream's max age.
func allExpire(t *testing.T, p *pipeline, rdb *redis.Client) {
	t.Helper()
	hermodtest.CheckFor(t, 2*time.Minute, 200*time.Millisecond, func() error {
		for _, pattern := range []string{"hermod:d:*", "hermod:da:*", "hermod:dw:*", "hermod:wd:*", "hermod:wt:*", "hermod:ops:dead:*"} {
			if keys := scanKeys(t, rdb, pattern); len(keys) > 0 {
				return fmt.Errorf("%d keys %s left, e.g. %s; %s", len(keys), pattern, keys[0], explain(t, rdb, keys))
			}
		}
		if st := streamState(t, p.jetStream(), streams.DeadStream); st.Msgs != 0 {
			return fmt.Errorf("%d dead letters left", st.Msgs)
		}
		return nil
	})
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
// counted), and the delivery's share of its webhook's index (the index's
// memory over its entries), each averaged over up to ten of them; ok false
// when none is dead.
func deliveryBytes(t *testing.T, rdb *redis.Client, wh string) (b deliveryMemory, ok bool) {
	t.Helper()
	ctx := context.Background()
	ids, err := rdb.ZRange(ctx, store.StatusIndexKey(wh, streams.StatusDead), 0, 9).Result()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, id := range ids {
		var got [3]int64
		complete := true
		for i, k := range []string{store.DeliveryKey(wh, id), store.AttemptsKey(wh, id), store.DeliveryWebhookKey(id)} {
			v, err := rdb.MemoryUsage(ctx, k, 0).Result()
			if err != nil { // expired meanwhile
				complete = false
				break
			}
			got[i] = v
		}
		if complete {
			b.record, b.attempts, b.pointer, n = b.record+float64(got[0]), b.attempts+float64(got[1]), b.pointer+float64(got[2]), n+1
		}
	}
	if n == 0 {
		return b, false
	}
	b.record, b.attempts, b.pointer = b.record/n, b.attempts/n, b.pointer/n
	entries, _ := rdb.ZCard(ctx, store.DeliveryIndexKey(wh)).Result()
	mem, err := rdb.MemoryUsage(ctx, store.DeliveryIndexKey(wh), 0).Result()
	if err == nil && entries > 0 {
		b.index = float64(mem) / float64(entries)
	}
	return b, true
}

// deliveryMemory is what one retained delivery takes in Redis, by part.
type deliveryMemory struct{ record, attempts, pointer, index float64 }

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
