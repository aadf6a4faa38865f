package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/connect"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/ops"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// The request's validation: every refusal is 422 naming its field.
func TestParseReplay(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	body := func(statuses, since, until string) []byte {
		return []byte(`{"statuses":` + statuses + `,"since":` + since + `,"until":` + until + `}`)
	}
	const d1, d2 = `"2026-03-01T00:00:00Z"`, `"2026-03-02T00:00:00.1234567+02:00"`
	for _, c := range []struct {
		name  string
		body  []byte
		field string // "" accepted
	}{
		{"dead and failed", body(`["dead","failed"]`, d1, d2), ""},
		{"dead", body(`["dead"]`, d1, d2), ""},
		{"no statuses", body(`[]`, d1, d2), "statuses"},
		{"statuses null", body(`null`, d1, d2), "statuses"},
		{"statuses missing", []byte(`{"since":` + d1 + `,"until":` + d2 + `}`), "statuses"},
		{"success is not replayed", body(`["dead","success"]`, d1, d2), "statuses"},
		{"pending is not replayed", body(`["pending"]`, d1, d2), "statuses"},
		{"a status twice", body(`["dead","dead"]`, d1, d2), "statuses"},
		{"since missing", []byte(`{"statuses":["dead"],"until":` + d2 + `}`), "since"},
		{"since not RFC 3339", body(`["dead"]`, `"2026-03-01"`, d2), "since"},
		{"until empty", body(`["dead"]`, d1, `""`), "until"},
		{"until before since", body(`["dead"]`, d2, d1), "until"},
		{"until equal to since", body(`["dead"]`, d1, d1), "until"},
		{"over 31 days", body(`["dead"]`, `"2026-01-01T00:00:00Z"`, `"2026-02-01T00:00:00.001Z"`), "until"},
		{"31 days", body(`["dead"]`, `"2026-01-01T00:00:00Z"`, `"2026-02-01T00:00:00Z"`), ""},
		{"since in the future", body(`["dead"]`, `"2026-03-11T00:00:00Z"`, `"2026-03-12T00:00:00Z"`), "since"},
		{"an unknown field", []byte(`{"statuses":["dead"],"since":` + d1 + `,"until":` + d2 + `,"rate":5}`), "rate"},
		{"statuses of the wrong type", body(`"dead"`, d1, d2), "statuses"},
	} {
		statuses, since, until, err := parseReplay(c.body, now)
		if c.field == "" {
			if err != nil || len(statuses) == 0 || !since.Before(until) {
				t.Errorf("%s: refused: %v", c.name, err)
			}
			continue
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity || ae.Details["field"] != c.field {
			t.Errorf("%s: %v, want 422 naming %s", c.name, err, c.field)
		}
	}
	_, since, until, _ := parseReplay(body(`["dead"]`, d1, d2), now)
	if since.Location() != time.UTC || until.Nanosecond()%int(time.Millisecond) != 0 || until.Hour() != 22 {
		t.Errorf("times not kept in UTC to the millisecond: %v %v", since, until)
	}
}

// A webhook takes a delivery back when it still subscribes to its event
// type and sends to the same target labels.
func TestWebhookTakes(t *testing.T) {
	d := &store.Delivery{EventType: "alert.triggered"}
	for _, c := range []struct {
		types, labels []string
		dLabels       []string
		want          bool
	}{
		{[]string{"*"}, nil, nil, true},
		{[]string{"alert.*"}, nil, nil, true},
		{[]string{"alert.triggered"}, nil, nil, true},
		{[]string{"deployment.*"}, nil, nil, false},
		{[]string{"*"}, []string{"env:prod"}, nil, false},
		{[]string{"*"}, nil, []string{"env:prod"}, false},
		{[]string{"*"}, []string{"env:prod"}, []string{"env:prod"}, true},
	} {
		d.TargetLabels = c.dLabels
		if got := webhookTakes(&webhooks.Webhook{EventTypes: c.types, TargetLabels: c.labels}, d); got != c.want {
			t.Errorf("types %v labels %v, delivery labels %v: %v, want %v", c.types, c.labels, c.dLabels, got, c.want)
		}
	}
}

// replayAPI is the REST server on a real JetStream and Redis, with its
// replay runner run by the test.
type replayAPI struct {
	t     *testing.T
	s     *Server
	conns *connect.Conns
	cfg   Config
}

func startReplayAPI(t *testing.T, rate int) *replayAPI {
	t.Helper()
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	return newReplayAPI(t, ns.ClientURL(), rd.URL(), rate)
}

// newReplayAPI is another API process on the same NATS and Redis.
func newReplayAPI(t *testing.T, natsURL, redisURL string, rate int) *replayAPI {
	t.Helper()
	env := map[string]string{
		"HERMOD_NATS_URL": natsURL, "HERMOD_REDIS_URL": redisURL, "HERMOD_ADMIN_KEYS": hostileKey,
		"HERMOD_ENCRYPTION_KEY": strings.Repeat("ab", 32), "HERMOD_API_ADDR": "127.0.0.1:0",
		"HERMOD_REPLAY_RATE": strconv.Itoa(rate),
	}
	cfg, err := LoadConfig(envconfig.NewFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conns, err := connect.Open(ctx, "hermod-api", cfg.Common, cfg.Box, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	health := ops.NewHealth(conns.Checks(), zerolog.Nop())
	health.SetReady()
	s, err := Build(cfg, conns, nil, health, metrics.New("test"), zerolog.Nop())
	if err != nil {
		conns.Close()
		t.Fatal(err)
	}
	s.replayer.poll = 100 * time.Millisecond
	t.Cleanup(func() {
		s.notifier.Close()
		conns.Close()
	})
	return &replayAPI{t: t, s: s, conns: conns, cfg: cfg}
}

// runReplays runs the replay runner until the returned stop is called (or
// the test ends).
func (a *replayAPI) runReplays() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = a.s.replayer.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	a.t.Cleanup(stop)
	return stop
}

func (a *replayAPI) call(method, path string, body string) (int, []byte) {
	a.t.Helper()
	h := &hostile{t: a.t, s: a.s}
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return h.call(method, path, bearer(hostileKey), b)
}

func (a *replayAPI) webhook(types string) string {
	a.t.Helper()
	code, body := a.call("POST", "/api/v1/webhooks", `{"name":"r","url":"https://127.0.0.1:9/hook","event_types":`+types+`}`)
	if code != http.StatusCreated {
		a.t.Fatalf("create webhook: %d %s", code, body)
	}
	var w WebhookView
	if err := json.Unmarshal(body, &w); err != nil {
		a.t.Fatal(err)
	}
	return w.ID
}

// seed stores n deliveries of webhook wh in status st (dead or failed)
// created at, each with its event; without payload, the event's payload
// is not stored (expired).
func (a *replayAPI) seed(wh string, n int, st streams.Status, at time.Time, payload bool) []string {
	a.t.Helper()
	var ids []string
	var outs []streams.Outcome
	var enq []streams.Enqueued
	for i := range n {
		id, ev := uuid.NewString(), uuid.NewString()
		created := at.Add(time.Duration(i) * time.Millisecond).UnixMilli()
		e := streams.Enqueued{V: 1, EventID: ev, EventType: "alert.triggered", CreatedAt: created,
			Deliveries: []streams.EnqueuedItem{{DeliveryID: id, WebhookID: wh}}}
		if payload {
			e.Payload = []byte(`{"id":"` + ev + `","event_type":"alert.triggered","data":{}}`)
		}
		o := streams.Outcome{V: 1, DeliveryID: id, WebhookID: wh, EventID: ev, EventType: "alert.triggered",
			Attempt: 1, Status: st, AttemptStatus: streams.StatusFailed, StatusCode: 500, By: "broker",
			StartedAt: created, FinishedAt: created, CreatedAt: created, PayloadSize: 40}
		if st == streams.StatusFailed {
			o.NextRetryAt = time.Now().Add(time.Minute).UnixMilli()
		}
		enq, outs, ids = append(enq, e), append(outs, o), append(ids, id)
	}
	if err := a.conns.Store.ApplyOutcomes(context.Background(), outs, enq, a.s.opts.Limits); err != nil {
		a.t.Fatal(err)
	}
	return ids
}

func (a *replayAPI) start(wh, statuses string, since, until time.Time) ReplayView {
	a.t.Helper()
	code, body := a.call("POST", "/api/v1/webhooks/"+wh+"/replay", fmt.Sprintf(`{"statuses":%s,"since":%q,"until":%q}`,
		statuses, since.Format(time.RFC3339Nano), until.Format(time.RFC3339Nano)))
	if code != http.StatusAccepted {
		a.t.Fatalf("start replay: %d %s", code, body)
	}
	var v ReplayView
	if err := json.Unmarshal(body, &v); err != nil {
		a.t.Fatal(err)
	}
	return v
}

func (a *replayAPI) get(id string) ReplayView {
	a.t.Helper()
	code, body := a.call("GET", "/api/v1/replays/"+id, "")
	if code != http.StatusOK {
		a.t.Fatalf("get replay: %d %s", code, body)
	}
	var v ReplayView
	if err := json.Unmarshal(body, &v); err != nil {
		a.t.Fatal(err)
	}
	return v
}

func (a *replayAPI) waitState(id, state string) ReplayView {
	a.t.Helper()
	var v ReplayView
	hermodtest.CheckFor(a.t, 30*time.Second, 50*time.Millisecond, func() error {
		if v = a.get(id); v.State != state {
			return fmt.Errorf("replay %s: %+v", state, v)
		}
		return nil
	})
	return v
}

// published returns the delivery messages of webhook wh in the deliveries
// stream, by delivery id.
func (a *replayAPI) published(wh string) map[string][]streams.Meta {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A work-queue stream takes no ordered consumer: read it by sequence.
	st, err := a.conns.JS.Stream(ctx, streams.DeliveriesStream)
	if err != nil {
		a.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		a.t.Fatal(err)
	}
	out := map[string][]streams.Meta{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			a.t.Fatal(err)
		}
		if m.Subject != streams.DeliverSubject(wh) {
			continue
		}
		meta, err := streams.ParseMeta(m.Header)
		if err != nil {
			a.t.Fatal(err)
		}
		out[meta.DeliveryID] = append(out[meta.DeliveryID], meta)
	}
	return out
}

// Every dead delivery in the range is published once more (same delivery
// id, next epoch) and its record is pending; failed ones, those outside the
// range, and one whose payload expired are not published; the counts say so.
func TestReplayRequeuesDeadDeliveries(t *testing.T) {
	a := startReplayAPI(t, 1000)
	var finished []ReplayView
	var mu sync.Mutex
	a.s.Replayer().OnFinished(func(v ReplayView) { mu.Lock(); finished = append(finished, v); mu.Unlock() })
	a.runReplays()
	wh := a.webhook(`["*"]`)
	base := time.Now().Add(-time.Hour)
	dead := a.seed(wh, 25, streams.StatusDead, base, true)
	failed := a.seed(wh, 3, streams.StatusFailed, base.Add(time.Second), true)
	expired := a.seed(wh, 1, streams.StatusDead, base.Add(2*time.Second), false)
	before := a.seed(wh, 2, streams.StatusDead, base.Add(-time.Hour), true)

	v := a.start(wh, `["dead","failed"]`, base.Add(-time.Minute), time.Now().Add(time.Minute))
	if v.State != "running" || v.WebhookID != wh || len(v.Statuses) != 2 {
		t.Fatalf("started %+v", v)
	}
	v = a.waitState(v.ID, "done")
	if v.Matched != 29 || v.Requeued != 25 || v.Skipped != 4 || v.FinishedAt == nil || v.Error != nil {
		t.Fatalf("finished replay %+v, want 29 matched, 25 requeued, 4 skipped", v)
	}
	pub := a.published(wh)
	for _, id := range dead {
		if m := pub[id]; len(m) != 1 || m[0].Epoch != 1 || m[0].WebhookID != wh {
			t.Errorf("dead delivery %s published %+v, want once in epoch 1", id, m)
		}
		d, _, _, err := a.conns.Store.GetDelivery(context.Background(), id)
		if err != nil || d.Status != streams.StatusPending || d.Epoch != 1 {
			t.Errorf("record of %s after the replay: %+v %v", id, d, err)
		}
	}
	for _, id := range append(append(failed, expired...), before...) {
		if len(pub[id]) != 0 {
			t.Errorf("delivery %s was published", id)
		}
	}
	if len(pub) != len(dead) {
		t.Errorf("%d deliveries published, want %d", len(pub), len(dead))
	}
	mu.Lock()
	if len(finished) != 1 || finished[0].ID != v.ID || finished[0].State != "done" || finished[0].Requeued != 25 {
		t.Errorf("OnFinished got %+v", finished)
	}
	mu.Unlock()

	// Listed under its webhook; a second replay finds nothing dead left.
	code, body := a.call("GET", "/api/v1/replays?webhook_id="+wh, "")
	var list Page[ReplayView]
	if err := json.Unmarshal(body, &list); code != http.StatusOK || err != nil || len(list.Data) != 1 || list.Data[0].ID != v.ID {
		t.Fatalf("list: %d %s", code, body)
	}
	v2 := a.waitState(a.start(wh, `["dead"]`, base.Add(-time.Minute), time.Now()).ID, "done")
	if v2.Matched != 1 || v2.Requeued != 0 || v2.Skipped != 1 {
		t.Fatalf("second replay %+v, want only the expired one, skipped", v2)
	}
	if code, body := a.call("POST", "/api/v1/replays/"+v.ID+"/cancel", ""); code != http.StatusConflict {
		t.Fatalf("cancel a finished replay: %d %s", code, body)
	}
}

// The edges: an unknown webhook is 404, a bad body 422 naming the field,
// a second replay of a webhook while one runs 409, unknown replays 404.
func TestReplayRequests(t *testing.T) {
	a := startReplayAPI(t, 1)
	wh := a.webhook(`["*"]`)
	since, until := time.Now().Add(-time.Hour).Format(time.RFC3339), time.Now().Format(time.RFC3339)
	ok := `{"statuses":["dead"],"since":"` + since + `","until":"` + until + `"}`
	for _, c := range []struct {
		method, path, body string
		code               int
		field              string
	}{
		{"POST", "/api/v1/webhooks/" + uuid.NewString() + "/replay", ok, 404, ""},
		{"POST", "/api/v1/webhooks/" + wh + "/replay", `{"statuses":["success"],"since":"` + since + `","until":"` + until + `"}`, 422, "statuses"},
		{"POST", "/api/v1/webhooks/" + wh + "/replay", `{"statuses":["dead"],"since":"` + until + `","until":"` + since + `"}`, 422, "until"},
		{"POST", "/api/v1/webhooks/" + wh + "/replay", ok, 202, ""},
		{"POST", "/api/v1/webhooks/" + wh + "/replay", ok, 409, ""},
		{"GET", "/api/v1/replays/" + uuid.NewString(), "", 404, ""},
		{"POST", "/api/v1/replays/" + uuid.NewString() + "/cancel", "", 404, ""},
		{"GET", "/api/v1/replays", "", 422, "webhook_id"},
		{"GET", "/api/v1/replays?webhook_id=x", "", 422, "webhook_id"},
	} {
		code, body := a.call(c.method, c.path, c.body)
		if code != c.code {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, code, body, c.code)
			continue
		}
		if code >= 400 {
			var e APIError
			if err := json.Unmarshal(body, &e); err != nil || e.Code == "" || (c.field != "" && e.Details["field"] != c.field) {
				t.Errorf("%s %s: error %s, want the envelope naming %q", c.method, c.path, body, c.field)
			}
		}
	}
}

// A cancel stops the requeues: after the runner saw it, nothing more is
// published, and every published delivery is counted.
func TestReplayCancel(t *testing.T) {
	a := startReplayAPI(t, 5)
	seen := make(chan ReplayView, 4)
	a.s.Replayer().OnFinished(func(v ReplayView) { seen <- v })
	a.runReplays()
	wh := a.webhook(`["*"]`)
	base := time.Now().Add(-time.Hour)
	a.seed(wh, 40, streams.StatusDead, base, true)
	v := a.start(wh, `["dead"]`, base, time.Now())
	hermodtest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if v = a.get(v.ID); v.Requeued < 3 {
			return fmt.Errorf("requeued %d", v.Requeued)
		}
		return nil
	})
	code, body := a.call("POST", "/api/v1/replays/"+v.ID+"/cancel", "")
	if code != http.StatusOK || !strings.Contains(string(body), `"state":"cancelled"`) {
		t.Fatalf("cancel: %d %s", code, body)
	}
	var fin ReplayView
	select {
	case fin = <-seen:
	case <-time.After(20 * time.Second):
		t.Fatal("the runner never reported the cancel")
	}
	if fin.State != "cancelled" || fin.FinishedAt == nil {
		t.Fatalf("finished %+v", fin)
	}
	final := a.get(v.ID)
	pub := a.published(wh)
	if int64(len(pub)) != final.Requeued || final.Requeued >= 40 || final.Matched != final.Requeued+final.Skipped {
		t.Fatalf("after the cancel: %d published, replay %+v", len(pub), final)
	}
	// Nothing more is published once the runner saw the cancel.
	// A new replay of another webhook runs a few steps: the cancelled one
	// has had as long to publish and did not.
	other := a.webhook(`["*"]`)
	a.seed(other, 3, streams.StatusDead, base, true)
	a.waitState(a.start(other, `["dead"]`, base, time.Now()).ID, "done")
	if got := len(a.published(wh)); int64(got) != final.Requeued {
		t.Fatalf("published %d after the cancel, counted %d", got, final.Requeued)
	}
	if code, _ := a.call("POST", "/api/v1/replays/"+v.ID+"/cancel", ""); code != http.StatusConflict {
		t.Fatalf("second cancel: %d", code)
	}
}

// A replay outlives its API process: stopped gracefully, the process gives
// its lease up and another resumes from the position; a process that died
// holding the lease loses it when it lapses, and another takes over. Every
// dead delivery is published once, and the counts add up.
func TestReplayResumesInAnotherProcess(t *testing.T) {
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	a := newReplayAPI(t, ns.ClientURL(), rd.URL(), 20)
	b := newReplayAPI(t, ns.ClientURL(), rd.URL(), 20)
	stopA := a.runReplays()
	wh := a.webhook(`["*"]`)
	base := time.Now().Add(-time.Hour)
	dead := a.seed(wh, 60, streams.StatusDead, base, true)
	v := a.start(wh, `["dead"]`, base, time.Now())
	hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if v = a.get(v.ID); v.Requeued < 5 {
			return fmt.Errorf("requeued %d", v.Requeued)
		}
		return nil
	})
	stopA() // graceful: the lease is given up
	mid := a.get(v.ID)
	if mid.State != "running" || mid.Requeued >= 60 {
		t.Fatalf("after a's stop: %+v", mid)
	}
	rp, err := a.conns.Store.GetReplay(context.Background(), v.ID)
	if err != nil || !rp.LeaseUntil.IsZero() {
		t.Fatalf("lease after a graceful stop: %v %v", rp.LeaseUntil, err)
	}
	// A process that dies holding the lease: it lapses, then b takes over.
	now := time.Now()
	if ok, err := a.conns.Store.ClaimReplay(context.Background(), v.ID, "a-crashed-process", now, now.Add(time.Second)); err != nil || !ok {
		t.Fatalf("claim as a crashed process: %v %v", ok, err)
	}
	b.runReplays()
	v = b.waitState(v.ID, "done")
	if v.Requeued != 60 || v.Matched != 60 || v.Skipped != 0 {
		t.Fatalf("resumed replay %+v, want 60 requeued", v)
	}
	pub := a.published(wh)
	for _, id := range dead {
		if len(pub[id]) != 1 {
			t.Errorf("delivery %s published %d times", id, len(pub[id]))
		}
	}
}

// A replay whose webhook was deleted fails, naming why.
func TestReplayOfADeletedWebhookFails(t *testing.T) {
	a := startReplayAPI(t, 2)
	wh := a.webhook(`["*"]`)
	base := time.Now().Add(-time.Hour)
	a.seed(wh, 3, streams.StatusDead, base, true)
	v := a.start(wh, `["dead"]`, base, time.Now())
	if code, body := a.call("DELETE", "/api/v1/webhooks/"+wh, ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", code, body)
	}
	a.runReplays()
	v = a.waitState(v.ID, "failed")
	if v.Error == nil || *v.Error != "the webhook was deleted" {
		t.Fatalf("failed replay %+v", v)
	}
}
