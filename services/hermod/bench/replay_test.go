package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	allinone "github.com/hermodhq/hermod/services/hermod"
	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
)

// Live traffic beside a bulk replay: a steady stream of live deliveries to
// one webhook, measured alone, then again while a replay requeues a large
// number of dead deliveries of another webhook (seeded straight into Redis
// as dead records with their payloads). Once per replay rate: the
// configured HERMOD_REPLAY_RATE (bounded) and one so high it is no bound.
//
//	HERMOD_BENCH_REPLAY_DEAD   dead deliveries replayed (default 20000)
//	HERMOD_BENCH_REPLAY_RATES  replay rates, comma-separated (default 500,100000)
//	HERMOD_BENCH_REPLAY_LIVE   live deliveries per second (default 200), for 10 s each time
func BenchmarkInProcessReplayBesideLiveTraffic(b *testing.B) {
	dead := envNumber(b, "HERMOD_BENCH_REPLAY_DEAD", 20000)
	live := envNumber(b, "HERMOD_BENCH_REPLAY_LIVE", 200)
	rates := []int{500, 100000}
	if v := os.Getenv("HERMOD_BENCH_REPLAY_RATES"); v != "" {
		rates = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("HERMOD_BENCH_REPLAY_RATES: %v", err)
			}
			rates = append(rates, n)
		}
	}
	for i := 0; i < b.N; i++ {
		for _, rate := range rates {
			replayBesideLive(b, dead, live, rate)
		}
	}
}

func envNumber(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("%s: %q is not a positive number", name, v)
		}
		return n
	}
	return def
}

func replayBesideLive(b *testing.B, dead, live, rate int) {
	rd := hermodtest.StartRedis(b)
	e := startConfigured(b, rd, func(c *allinone.Config) {
		c.ReplayRate = rate
		c.HistoryLimit = max(c.HistoryLimit, 2*dead)
	})
	const seconds = 10
	liveSink := newSink(b, int64(2*live*seconds))
	e.createWebhooks(1, liveSink.url, "deployment.applied")
	deadSink := newSink(b, int64(dead))
	deadHook := fleet.CreateWebhooks(b, e.hc, e.base, []string{deadSink.url + "/dead"}, "instance.crash")[0]
	since := time.Now().Add(-time.Hour)
	seedDead(b, store.New(rd.Client(b), nil), deadHook, dead, since)

	intended := map[string]time.Time{}
	steadyLive := func(prefix string) (time.Time, time.Time) {
		begin := time.Now()
		n := live * seconds
		interval := time.Second / time.Duration(live)
		for j := 0; j < n; j++ {
			at := begin.Add(time.Duration(j) * interval)
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
			id := prefix + strconv.Itoa(j)
			intended[id] = at
			e.publish(id, "deployment.applied")
		}
		e.flush()
		return begin, time.Now()
	}
	// Alone.
	begin, _ := steadyLive("alone-")
	hermodtest.CheckFor(b, time.Minute, 10*time.Millisecond, func() error {
		if n := liveSink.n.Load(); n < int64(live*seconds) {
			return fmt.Errorf("%d of %d live deliveries", n, live*seconds)
		}
		return nil
	})
	report(b, fmt.Sprintf("live %d/s alone", live), liveSink, intended, begin, time.Now())

	// During the replay.
	liveSink.mu.Lock()
	liveSink.recv = map[string][]time.Time{}
	liveSink.mu.Unlock()
	intended = map[string]time.Time{}
	replayBegin := time.Now()
	replayID := startBenchReplay(b, e, deadHook, since)
	begin, _ = steadyLive("beside-")
	end := wait(b, liveSink, time.Minute)
	report(b, fmt.Sprintf("live %d/s, replay at %d/s", live, rate), liveSink, intended, begin, end)
	var r struct {
		State      string    `json:"state"`
		Requeued   int       `json:"requeued"`
		CreatedAt  time.Time `json:"created_at"`
		FinishedAt time.Time `json:"finished_at"`
	}
	// The runner requeues one delivery after the other: a few hundred per
	// second on a busy machine, whatever the bound.
	hermodtest.CheckFor(b, time.Duration(dead/min(rate, 200)+120)*time.Second, 100*time.Millisecond, func() error {
		getJSON(b, e, "/api/v1/replays/"+replayID, &r)
		if r.State != "done" {
			return fmt.Errorf("replay %+v", r)
		}
		return nil
	})
	replayed := r.FinishedAt.Sub(r.CreatedAt)
	arrived := wait(b, deadSink, 5*time.Minute)
	fmt.Printf("%-28s %d dead deliveries requeued in %.1fs (%.0f/s), all %d received %.1fs after the start\n",
		fmt.Sprintf("replay at %d/s", rate), r.Requeued, replayed.Seconds(), float64(r.Requeued)/replayed.Seconds(),
		deadSink.n.Load(), arrived.Sub(replayBegin).Seconds())
	e.cancel()
}

// seedDead stores n dead deliveries of webhook wh created from since on,
// each with its event's payload, as the recorder would have.
func seedDead(b *testing.B, st *store.Store, wh string, n int, since time.Time) {
	lim := store.Limits{Retention: 72 * time.Hour, HistoryLimit: 2 * n, PayloadTTL: 96 * time.Hour}
	for start := 0; start < n; start += 1000 {
		var outs []streams.Outcome
		var enq []streams.Enqueued
		for i := start; i < min(start+1000, n); i++ {
			id, ev := uuid.NewString(), uuid.NewString()
			created := since.Add(time.Duration(i) * time.Millisecond).UnixMilli()
			enq = append(enq, streams.Enqueued{V: 1, EventID: ev, EventType: "instance.crash", CreatedAt: created,
				Payload:    []byte(`{"id":"` + ev + `","event_type":"instance.crash","timestamp":"2026-01-01T00:00:00Z","data":{"instance_id":"i-1"}}`),
				Deliveries: []streams.EnqueuedItem{{DeliveryID: id, WebhookID: wh}}})
			outs = append(outs, streams.Outcome{V: 1, DeliveryID: id, WebhookID: wh, EventID: ev, EventType: "instance.crash",
				Attempt: 1, Status: streams.StatusDead, AttemptStatus: streams.StatusFailed, StatusCode: 500, By: "broker",
				StartedAt: created, FinishedAt: created, CreatedAt: created, PayloadSize: 100})
		}
		if err := st.ApplyOutcomes(context.Background(), outs, enq, lim); err != nil {
			b.Fatal(err)
		}
	}
}

func startBenchReplay(b *testing.B, e *env, wh string, since time.Time) string {
	body, _ := json.Marshal(map[string]any{"statuses": []string{"dead"}, "since": since.UTC().Format(time.RFC3339Nano),
		"until": time.Now().UTC().Format(time.RFC3339Nano)})
	req, _ := http.NewRequest(http.MethodPost, e.base+"/api/v1/webhooks/"+wh+"/replay", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+fleet.AdminKey)
	resp, err := e.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&r) != nil {
		b.Fatalf("start replay: %d", resp.StatusCode)
	}
	return r.ID
}

func getJSON(b *testing.B, e *env, path string, v any) {
	req, _ := http.NewRequest(http.MethodGet, e.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+fleet.AdminKey)
	resp, err := e.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(v) != nil {
		b.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
}
