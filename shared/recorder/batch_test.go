package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// recording is a running recorder on real JetStream and Redis.
type recording struct {
	js   jetstream.JetStream
	st   *store.Store
	logs *hermodtest.LogBuffer
	now  int64 // unix ms, the outcomes' times
}

func startRecording(t *testing.T) *recording {
	t.Helper()
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	st := store.New(rd.Client(t), nil)
	_, js := hermodtest.JetStream(t, ns.ClientURL())
	ctx := context.Background()
	if err := streams.EnsureStreams(ctx, js, streams.Settings{Subjects: []string{"alert.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAgent(ctx, &store.Agent{ID: "eu-1", Labels: []string{"env:production"}, TokenHash: store.HashToken("t")}); err != nil {
		t.Fatal(err)
	}
	labels := func(_ context.Context, id string) ([]string, bool, error) {
		if strings.HasPrefix(id, "w-prod") {
			return []string{"env:production"}, true, nil
		}
		return nil, true, nil
	}
	r := &recording{js: js, st: st, logs: &hermodtest.LogBuffer{}, now: time.Now().UnixMilli()}
	rec := New(js, st, zerolog.New(r.logs), Options{Limits: store.Limits{Retention: time.Hour, HistoryLimit: 100, PayloadTTL: time.Hour},
		Agents: StoreAgents(st, labels)})
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = rec.Run(rctx) }()
	t.Cleanup(func() { stop(); wg.Wait() })
	return r
}

// enqueue publishes the enqueue record of deliveries of webhook (agents'
// when labels are given).
func (r *recording) enqueue(t *testing.T, webhook string, labels []string, ids ...string) {
	t.Helper()
	e := streams.Enqueued{V: 1, EventID: "e-" + ids[0], EventType: "alert.triggered", CreatedAt: r.now, Payload: json.RawMessage(`{"id":"e"}`)}
	for _, id := range ids {
		e.Deliveries = append(e.Deliveries, streams.EnqueuedItem{DeliveryID: id, WebhookID: webhook, TargetLabels: labels})
	}
	data, _ := json.Marshal(e)
	r.publish(t, &nats.Msg{Subject: streams.EnqueuedSubject, Data: data})
}

// success is the encoded success outcome of delivery id of webhook.
func (r *recording) success(webhook, id string) []byte {
	data, _ := json.Marshal(streams.Outcome{V: 1, DeliveryID: id, WebhookID: webhook, EventID: "e", EventType: "alert.triggered",
		Attempt: 1, Status: streams.StatusSuccess, AttemptStatus: streams.StatusSuccess, StatusCode: 200, DurationMs: 3,
		StartedAt: r.now, FinishedAt: r.now, CreatedAt: r.now, By: "broker"})
	return data
}

func (r *recording) publish(t *testing.T, m *nats.Msg) {
	t.Helper()
	if _, err := r.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// drained waits until the recorder has acked every result.
func (r *recording) drained(t *testing.T) {
	t.Helper()
	hermodtest.CheckFor(t, 15*time.Second, 10*time.Millisecond, func() error {
		c, err := r.js.Consumer(context.Background(), streams.ResultsStream, streams.RecorderConsumer)
		if err != nil {
			return err
		}
		ci, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if ci.NumPending != 0 || ci.NumAckPending != 0 {
			return fmt.Errorf("%d results pending, %d unacked", ci.NumPending, ci.NumAckPending)
		}
		return nil
	})
}

// counts checks a webhook's lasting and per-minute success counts, and
// that each delivery succeeded with one attempt in its history.
func (r *recording) counts(webhook string, ids ...string) error {
	ctx := context.Background()
	stats, err := r.st.Stats(ctx, []string{webhook})
	if err != nil {
		return err
	}
	if got := stats[webhook].Delivered; got != int64(len(ids)) {
		return fmt.Errorf("webhook %s: %d delivered, want %d", webhook, got, len(ids))
	}
	buckets, err := r.st.MinuteStats(ctx, webhook, 3*time.Minute, time.Now())
	if err != nil {
		return err
	}
	var succeeded int64
	for _, b := range buckets {
		succeeded += b.Success
	}
	if succeeded != int64(len(ids)) {
		return fmt.Errorf("webhook %s: %d successful attempts in its minutes, want %d", webhook, succeeded, len(ids))
	}
	for _, id := range ids {
		d, hist, _, err := r.st.GetDelivery(ctx, id)
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		if d.Status != streams.StatusSuccess || d.Attempts != 1 || len(hist) != 1 {
			return fmt.Errorf("%s: %s after %d attempts, %d in its history", id, d.Status, d.Attempts, len(hist))
		}
	}
	return nil
}

// A batch message's outcomes are all written; the same batch again (a
// redelivery, or a publish repeated after a lost acknowledgement) counts
// nothing twice.
func TestOutcomeBatchWrittenOnce(t *testing.T) {
	r := startRecording(t)
	ids := []string{"d-1", "d-2", "d-3", "d-4", "d-5"}
	r.enqueue(t, "w-1", nil, ids...)
	var outs [][]byte
	for _, id := range ids {
		outs = append(outs, r.success("w-1", id))
	}
	batch := streams.NewOutcomeBatch(streams.OutcomeSubject, outs)
	r.publish(t, batch)
	r.drained(t)
	if err := r.counts("w-1", ids...); err != nil {
		t.Fatal(err)
	}
	r.publish(t, streams.NewOutcomeBatch(streams.OutcomeSubject, outs))
	r.publish(t, &nats.Msg{Subject: streams.OutcomeSubject, Data: outs[0]}) // and one of them alone
	r.drained(t)
	if err := r.counts("w-1", ids...); err != nil {
		t.Fatalf("after the batch came again: %v", err)
	}
}

// A broken entry of a batch is logged and dropped; the batch's other
// outcomes are written and the message is acked. A batch whose body cannot
// be read at all is logged and dropped.
func TestOutcomeBatchWithBrokenEntries(t *testing.T) {
	r := startRecording(t)
	r.enqueue(t, "w-1", nil, "d-a", "d-b", "d-x")
	newer := strings.Replace(string(r.success("w-1", "d-x")), `"v":1`, `"v":99`, 1)
	r.publish(t, streams.NewOutcomeBatch(streams.OutcomeSubject, [][]byte{
		r.success("w-1", "d-a"),
		[]byte(`{"v":1,"webhook_id":"w-1","status":"success"}`), // no delivery id
		[]byte(newer),                     // a newer schema
		[]byte(`{"v":1,"delivery_id":7}`), // a field of the wrong type
		r.success("w-1", "d-b"),
	}))
	unreadable := streams.NewOutcomeBatch(streams.OutcomeSubject, [][]byte{r.success("w-1", "d-x"), r.success("w-1", "d-x")})
	unreadable.Data = unreadable.Data[:len(unreadable.Data)-5]
	r.publish(t, unreadable)
	r.drained(t)
	if err := r.counts("w-1", "d-a", "d-b"); err != nil {
		t.Fatal(err)
	}
	if d, _, _, err := r.st.GetDelivery(context.Background(), "d-x"); err != nil || d.Status != streams.StatusPending {
		t.Errorf("d-x: %+v %v, want still pending", d, err)
	}
	logs := r.logs.String()
	if n := strings.Count(logs, `"message":"dropping an unreadable outcome"`); n != 3 {
		t.Errorf("%d broken entries logged, want 3: %s", n, logs)
	}
	if n := strings.Count(logs, `"message":"dropping an unreadable outcome batch"`); n != 1 {
		t.Errorf("%d unreadable batches logged, want 1: %s", n, logs)
	}
}

// An agent's batch holding an outcome for a delivery not known yet: the
// other outcomes are written at once; the batch comes back until the
// delivery is known, then that outcome is written too, and the outcomes
// written before, written again, count nothing twice.
func TestAgentOutcomeBatchWithAnUnknownDelivery(t *testing.T) {
	r := startRecording(t)
	prod := []string{"env:production"}
	r.enqueue(t, "w-prod", prod, "d-1", "d-2")
	r.publish(t, streams.NewOutcomeBatch(streams.AgentOutcomeSubject("eu-1"),
		[][]byte{r.success("w-prod", "d-1"), r.success("w-prod", "d-2"), r.success("w-prod", "d-3")}))
	hermodtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		return r.counts("w-prod", "d-1", "d-2")
	})
	if _, _, _, err := r.st.GetDelivery(context.Background(), "d-3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("d-3 recorded before it was known: %v", err)
	}
	// The batch comes back (it was nakked for d-3) at least once more
	// before d-3 is known: d-1 and d-2 are written again.
	hermodtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		c, err := r.js.Consumer(context.Background(), streams.ResultsStream, streams.RecorderConsumer)
		if err != nil {
			return err
		}
		ci, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if ci.Delivered.Consumer < 3 { // the enqueue record, the batch, the batch again
			return fmt.Errorf("%d deliveries to the recorder, want the batch redelivered", ci.Delivered.Consumer)
		}
		return nil
	})
	r.enqueue(t, "w-prod", prod, "d-3")
	r.drained(t)
	if err := r.counts("w-prod", "d-1", "d-2", "d-3"); err != nil {
		t.Fatal(err)
	}
	if d, _, _, err := r.st.GetDelivery(context.Background(), "d-3"); err != nil || d.DeliveredBy != "agent:eu-1" {
		t.Errorf("d-3: %+v %v, want delivered by agent:eu-1", d, err)
	}
}

// A message of several events' enqueue records (the router's batch) makes
// every delivery's pending record; a broken record loses only itself; the
// same batch again (an event routed twice) changes nothing.
func TestEnqueuedBatch(t *testing.T) {
	r := startRecording(t)
	record := func(event string, ids ...string) []byte {
		e := streams.Enqueued{V: 1, EventID: event, EventType: "alert.triggered", CreatedAt: r.now, Payload: json.RawMessage(`{"id":"` + event + `"}`)}
		for _, id := range ids {
			e.Deliveries = append(e.Deliveries, streams.EnqueuedItem{DeliveryID: id, WebhookID: "w-1"})
		}
		data, _ := json.Marshal(e)
		return data
	}
	batch := [][]byte{record("e-1", "d-1", "d-2"), []byte(`{"v":1,"event_id":7}`), record("e-2", "d-3")}
	r.publish(t, streams.NewEnqueuedBatch(batch))
	r.drained(t)
	ctx := context.Background()
	for _, id := range []string{"d-1", "d-2", "d-3"} {
		if d, _, _, err := r.st.GetDelivery(ctx, id); err != nil || d.Status != streams.StatusPending {
			t.Errorf("%s: %+v %v, want pending", id, d, err)
		}
	}
	if n := strings.Count(r.logs.String(), `"message":"dropping an unreadable enqueue record"`); n != 1 {
		t.Errorf("%d broken records logged, want 1: %s", n, r.logs.String())
	}
	var outs [][]byte
	for _, id := range []string{"d-1", "d-2", "d-3"} {
		outs = append(outs, r.success("w-1", id))
	}
	r.publish(t, streams.NewOutcomeBatch(streams.OutcomeSubject, outs))
	r.publish(t, streams.NewEnqueuedBatch(batch)) // routed again: the records stay delivered
	r.drained(t)
	if err := r.counts("w-1", "d-1", "d-2", "d-3"); err != nil {
		t.Fatal(err)
	}
}
