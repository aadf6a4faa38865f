package index

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/store"
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
		if err := ix.Start(ixCtx, &wg); err != nil {
			t.Fatal(err)
		}
		indexes = append(indexes, ix)
	}
	for _, ix := range indexes {
		if _, ok := ix.Get("w-0"); !ok {
			t.Fatalf("initial load missed w-0")
		}
	}
	n, err := NewNotifier(connect())
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
