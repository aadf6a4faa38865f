package recorder

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
)

// The router stores a delivery's enqueue record only after the delivery,
// so a fast agent's outcome can reach the results stream first. The
// recorder must not refuse it for good: it asks again until the record is
// there, and records it then (real JetStream and Redis).
func TestAgentOutcomeBeforeItsEnqueueRecord(t *testing.T) {
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	st := store.New(rd.Client(t), nil)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := streams.EnsureStreams(ctx, js, streams.Settings{Subjects: []string{"alert.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAgent(ctx, &store.Agent{ID: "eu-1", Labels: []string{"env:production"}, TokenHash: store.HashToken("t")}); err != nil {
		t.Fatal(err)
	}
	labels := func(context.Context, string) ([]string, bool, error) { return []string{"env:production"}, true, nil }
	rec := New(js, st, zerolog.Nop(), Options{Limits: store.Limits{Retention: time.Hour, HistoryLimit: 100, PayloadTTL: time.Hour},
		Agents: StoreAgents(st, labels)})
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = rec.Run(rctx) }()
	defer func() { stop(); wg.Wait() }()

	now := time.Now().UnixMilli()
	out, _ := json.Marshal(streams.Outcome{V: 1, DeliveryID: "d-1", WebhookID: "w-prod", EventID: "e-1", EventType: "alert.triggered",
		Attempt: 1, Status: streams.StatusSuccess, AttemptStatus: streams.StatusSuccess, StatusCode: 200, CreatedAt: now,
		TargetLabels: []string{"env:production"}})
	if _, err := js.Publish(ctx, streams.AgentOutcomeSubject("eu-1"), out); err != nil {
		t.Fatal(err)
	}
	// Let the recorder see the outcome alone first (it waits, not refuses).
	hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		info, err := js.Consumer(ctx, streams.ResultsStream, streams.RecorderConsumer)
		if err != nil {
			return err
		}
		ci, err := info.Info(ctx)
		if err != nil {
			return err
		}
		if ci.Delivered.Consumer == 0 {
			return fmt.Errorf("the recorder has not seen the outcome yet")
		}
		return nil
	})
	enq, _ := json.Marshal(streams.Enqueued{V: 1, EventID: "e-1", EventType: "alert.triggered", CreatedAt: now,
		Payload:    json.RawMessage(`{"id":"e-1"}`),
		Deliveries: []streams.EnqueuedItem{{DeliveryID: "d-1", WebhookID: "w-prod", TargetLabels: []string{"env:production"}}}})
	if _, err := js.Publish(ctx, streams.EnqueuedSubject, enq); err != nil {
		t.Fatal(err)
	}
	hermodtest.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		d, _, _, err := st.GetDelivery(ctx, "d-1")
		if err != nil {
			return err
		}
		if d.Status != streams.StatusSuccess || d.DeliveredBy != "agent:eu-1" {
			return fmt.Errorf("delivery %s by %q, want success by agent:eu-1", d.Status, d.DeliveredBy)
		}
		return nil
	})
}
