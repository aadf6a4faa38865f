package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).flushStreamStateLoop"))
}

func webhook(id string, types ...string) *webhooks.Webhook {
	now := time.Now().UTC()
	return &webhooks.Webhook{ID: id, Name: id, URL: "https://e.test/" + id, Secret: "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		EventTypes: types, MaxRetries: 5, TimeoutSeconds: 30, Enabled: true, CreatedAt: now, UpdatedAt: now}
}

// A change the API confirmed is in every index when Notify returns; a change
// whose notice was lost arrives through the version poll.
func TestIndexFollowsChanges(t *testing.T) {
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	key, _ := encryption.ParseKey(strings.Repeat("cd", 32))
	box, _ := encryption.New(key)
	st := store.New(rd.Client(t), box)
	ctx := context.Background()
	if err := st.PutWebhook(ctx, webhook("w-0", "*")); err != nil {
		t.Fatal(err)
	}
	var conns []*nats.Conn
	connect := func() *nats.Conn {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		return nc
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ixCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var changed sync.Map
	var indexes []*Index
	for i := 0; i < 2; i++ {
		ix := New(st, connect(), zerolog.Nop(), Options{PollInterval: 50 * time.Millisecond})
		ix.OnChange(func(id string, w *webhooks.Webhook) { changed.Store(id, w != nil) })
		if err := ix.Load(ixCtx); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = ix.Run(ixCtx) }()
		indexes = append(indexes, ix)
	}
	for _, ix := range indexes {
		if _, ok := ix.Get("w-0"); !ok {
			t.Fatalf("initial load missed w-0")
		}
	}
	unconfirmed := prometheus.NewCounter(prometheus.CounterOpts{Name: "unconfirmed_total"})
	n, err := NewNotifier(connect(), zerolog.Nop(), unconfirmed)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	hermodtest.CheckFor(t, 3*time.Second, 10*time.Millisecond, func() error {
		if got := n.expected(); got != 2 {
			return fmt.Errorf("%d of 2 indexes announced", got)
		}
		return nil
	})

	// Confirmed change: visible in both indexes as soon as Notify returns.
	if err := st.PutWebhook(ctx, webhook("w-1", "deployment.*")); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, "w-1"); err != nil {
		t.Fatal(err)
	}
	for i, ix := range indexes {
		got := ix.Set().Match(&matching.Event{Type: "deployment.applied"}, nil)
		if len(got) != 2 {
			t.Errorf("index %d matched %d webhooks right after Notify, want 2", i, len(got))
		}
	}
	if v, _ := changed.Load("w-1"); v != true {
		t.Errorf("OnChange not called for w-1")
	}
	// Lost notice: a write without Notify arrives through the version poll.
	if err := st.PutWebhook(ctx, webhook("w-2", "alert.*")); err != nil {
		t.Fatal(err)
	}
	for _, ix := range indexes {
		hermodtest.CheckFor(t, 2*time.Second, 10*time.Millisecond, func() error {
			if _, ok := ix.Get("w-2"); !ok {
				return errors.New("the version poll has not picked up w-2 (written without a notice)")
			}
			return nil
		})
	}
	// Delete, confirmed.
	if err := st.DeleteWebhook(ctx, "w-1"); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, "w-1"); err != nil {
		t.Fatal(err)
	}
	for _, ix := range indexes {
		if _, ok := ix.Get("w-1"); ok {
			t.Errorf("deleted webhook still indexed after Notify")
		}
	}
	if c := counterValue(t, unconfirmed); c != 0 {
		t.Errorf("%v changes counted unconfirmed; both indexes confirmed every change", c)
	}
	// Refresh on a miss finds a webhook the index has not heard of yet, and
	// reports a missing one as gone.
	if err := st.PutWebhook(ctx, webhook("w-3", "*")); err != nil {
		t.Fatal(err)
	}
	if w, err := indexes[0].Refresh(ctx, "w-3"); err != nil || w == nil {
		t.Errorf("refresh w-3: %v %v", w, err)
	}
	if w, err := indexes[0].Refresh(ctx, "w-404"); err != nil || w != nil {
		t.Errorf("refresh missing: %v %v", w, err)
	}
}

// counterValue reads c through a registry of its own.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gather %v: %v", mfs, err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

// An index that announces itself but never confirms a change: Notify still
// succeeds (the change is stored; the version poll applies it), after
// MaxWait, and the change is logged and counted as unconfirmed, naming the
// webhook and how many indexes did not answer.
func TestNotifyReportsUnconfirmedChange(t *testing.T) {
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	key, _ := encryption.ParseKey(strings.Repeat("cd", 32))
	box, _ := encryption.New(key)
	st := store.New(rd.Client(t), box)
	ctx := context.Background()
	var conns []*nats.Conn
	connect := func() *nats.Conn {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		return nc
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ixCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	ix := New(st, connect(), zerolog.Nop(), Options{})
	if err := ix.Load(ixCtx); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = ix.Run(ixCtx) }()
	// The silent index: it announces itself like an index (on its own and
	// when probed) and receives the notices, but never replies.
	silent := connect()
	const silentID = "silent-index"
	var notices atomic.Int32
	if _, err := silent.Subscribe(ProbeSubject, func(*nats.Msg) { _ = silent.Publish(AliveSubject, []byte(silentID)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := silent.Subscribe(streams.ChangesSubject, func(*nats.Msg) { notices.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := silent.Flush(); err != nil {
		t.Fatal(err)
	}

	logs := &hermodtest.LogBuffer{}
	unconfirmed := prometheus.NewCounter(prometheus.CounterOpts{Name: "unconfirmed_total"})
	n, err := NewNotifier(connect(), zerolog.New(logs), unconfirmed)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	hermodtest.CheckFor(t, 3*time.Second, 10*time.Millisecond, func() error {
		if got := n.expected(); got != 2 {
			return fmt.Errorf("%d indexes known, want 2", got)
		}
		return nil
	})

	if err := st.PutWebhook(ctx, webhook("w-1", "deployment.*")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := n.Notify(ctx, "w-1"); err != nil {
		t.Fatalf("Notify: %v (the change is stored: want nil)", err)
	}
	if waited := time.Since(start); waited < n.MaxWait {
		t.Errorf("Notify returned after %v, before MaxWait %v", waited, n.MaxWait)
	}
	if _, ok := ix.Get("w-1"); !ok {
		t.Error("the answering index does not have w-1 after Notify")
	}
	if notices.Load() != 1 {
		t.Errorf("the silent index got %d notices, want 1", notices.Load())
	}
	if c := counterValue(t, unconfirmed); c != 1 {
		t.Errorf("unconfirmed changes counted: %v, want 1", c)
	}
	var line struct {
		Level       string `json:"level"`
		WebhookID   string `json:"webhook_id"`
		Indexes     int    `json:"indexes"`
		Unconfirmed int    `json:"unconfirmed"`
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &line) != nil {
		t.Fatalf("want one JSON log line, got %q", logs.String())
	}
	if line.Level != "warn" || line.WebhookID != "w-1" || line.Indexes != 2 || line.Unconfirmed != 1 {
		t.Errorf("log line %+v, want warn for w-1 with 1 of 2 indexes unconfirmed", line)
	}
}

// A notifier made before the index it must wait for started (the
// all-in-one: the API is built before its index loads) misses the index's
// first announcement. Told of the index, a change made at once still waits
// until the index applied it, so an event published after the answer
// reaches the new webhook.
func TestNotifierWaitsForAnIndexItWasToldOf(t *testing.T) {
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	key, _ := encryption.ParseKey(strings.Repeat("cd", 32))
	box, _ := encryption.New(key)
	st := store.New(rd.Client(t), box)
	ctx := context.Background()
	ixConn, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer ixConn.Close()
	apiConn, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer apiConn.Close()
	unconfirmed := prometheus.NewCounter(prometheus.CounterOpts{Name: "unconfirmed_total"})
	n, err := NewNotifier(apiConn, zerolog.Nop(), unconfirmed)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	// The index is slow to follow: its notices wait until Run starts.
	ix := New(st, ixConn, zerolog.Nop(), Options{PollInterval: time.Hour})
	if err := ix.Load(ctx); err != nil {
		t.Fatal(err)
	}
	n.Expect(ix.ID())
	if got := n.expected(); got != 1 {
		t.Fatalf("%d indexes known right after Expect, want 1", got)
	}
	if err := st.PutWebhook(ctx, webhook("w-new", "*")); err != nil {
		t.Fatal(err)
	}
	ixCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	notified := make(chan error, 1)
	go func() { notified <- n.Notify(ctx, "w-new") }()
	// Notify is waiting for the index; the index follows from now on.
	wg.Add(1)
	go func() { defer wg.Done(); _ = ix.Run(ixCtx) }()
	if err := <-notified; err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.Get("w-new"); !ok {
		t.Error("Notify returned before the index applied the change")
	}
	if c := counterValue(t, unconfirmed); c != 0 {
		t.Errorf("unconfirmed changes counted: %v, want 0", c)
	}
}
