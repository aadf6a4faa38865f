package store

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var lim = Limits{Retention: time.Hour, HistoryLimit: 100, PayloadTTL: 2 * time.Hour}

func newStore(t *testing.T) (*Store, *hermodtest.Redis) {
	t.Helper()
	rd := hermodtest.StartRedis(t)
	return New(rd.Client(t), testBox(t)), rd
}

// testBox is the encryption box of the tests.
func testBox(t *testing.T) *encryption.Box {
	t.Helper()
	key, _ := encryption.ParseKey(strings.Repeat("ab", 32))
	box, err := encryption.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func outcome(did string, epoch, attempt int, status, attemptStatus streams.Status, code int) streams.Outcome {
	return streams.Outcome{V: 1, DeliveryID: did, WebhookID: "wh-1", EventID: "ev-1", EventType: "alert.triggered",
		Epoch: epoch, Attempt: attempt, Status: status, AttemptStatus: attemptStatus, StatusCode: code, DurationMs: 12,
		By: "broker", StartedAt: time.Now().UnixMilli(), FinishedAt: time.Now().UnixMilli(), CreatedAt: time.Now().UnixMilli(),
		PayloadSize: 42}
}

func enqueued(did string) streams.Enqueued {
	return streams.Enqueued{V: 1, EventID: "ev-1", EventType: "alert.triggered", CreatedAt: time.Now().UnixMilli(),
		Payload: []byte(`{"id":"ev-1"}`), Deliveries: []streams.EnqueuedItem{{DeliveryID: did, WebhookID: "wh-1"}}}
}

func apply(t *testing.T, s *Store, outs []streams.Outcome, enq ...streams.Enqueued) {
	t.Helper()
	if err := s.ApplyOutcomes(context.Background(), outs, enq, lim); err != nil {
		t.Fatal(err)
	}
}

// Records only move forward: any arrival order of the same outcomes, and
// duplicates, give the same record, history and counters.
func TestMergeOrderAndDuplicates(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	failed := outcome("d-1", 0, 1, streams.StatusFailed, streams.StatusFailed, 503)
	success := outcome("d-1", 0, 2, streams.StatusSuccess, streams.StatusSuccess, 200)
	// Success first, then the older failure, then the pending record, then all again.
	apply(t, s, []streams.Outcome{success})
	apply(t, s, []streams.Outcome{failed})
	apply(t, s, nil, enqueued("d-1"))
	apply(t, s, []streams.Outcome{success, failed}, enqueued("d-1"))
	d, hist, payload, err := s.GetDelivery(ctx, "d-1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != streams.StatusSuccess || d.Attempts != 2 || d.LastStatusCode != 200 || d.DeliveredBy != "broker" {
		t.Errorf("record %+v", d)
	}
	if len(hist) != 2 || hist[0].StatusCode != 503 || hist[1].StatusCode != 200 {
		t.Errorf("history %+v", hist)
	}
	if string(payload) != `{"id":"ev-1"}` {
		t.Errorf("payload %s", payload)
	}
	st, err := s.Stats(ctx, []string{"wh-1"})
	if err != nil {
		t.Fatal(err)
	}
	if st["wh-1"].Delivered != 1 || st["wh-1"].Failed != 0 || st["wh-1"].Last3 != "S" {
		t.Errorf("stats %+v", st["wh-1"])
	}
	buckets, err := s.MinuteStats(ctx, "wh-1", 2*time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var succ, fail int64
	for _, b := range buckets {
		succ += b.Success
		fail += b.Failed
	}
	if succ != 1 || fail != 1 {
		t.Errorf("minute stats success=%d failed=%d, want 1 and 1", succ, fail)
	}
	for _, st := range []streams.Status{"pending", "failed", "dead"} {
		if ds, _, _ := s.ListDeliveries(ctx, "wh-1", st, 10, ""); len(ds) != 0 {
			t.Errorf("listed as %s too", st)
		}
	}
	if ds, _, _ := s.ListDeliveries(ctx, "wh-1", "success", 10, ""); len(ds) != 1 {
		t.Errorf("not listed as success")
	}
}

// A dead delivery retried with a new epoch moves forward again; both ends count.
func TestMergeDeadThenRetried(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	dead := outcome("d-2", 0, 1, streams.StatusDead, streams.StatusFailed, 404)
	dead.Reason = streams.ReasonTerminal
	apply(t, s, []streams.Outcome{dead}, enqueued("d-2"))
	d, _, _, _ := s.GetDelivery(ctx, "d-2")
	if d.Status != streams.StatusDead || d.Reason != streams.ReasonTerminal {
		t.Fatalf("record %+v", d)
	}
	if ttl := s.rdb.TTL(ctx, DeliveryKey("wh-1", "d-2")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("finished record TTL %s, want the retention", ttl)
	}
	if err := s.Requeue(ctx, d, lim); err != nil {
		t.Fatal(err)
	}
	if ttl := s.rdb.TTL(ctx, DeliveryKey("wh-1", "d-2")).Val(); ttl != -1 {
		t.Errorf("requeued record still expires (%s)", ttl)
	}
	ok := outcome("d-2", 1, 1, streams.StatusSuccess, streams.StatusSuccess, 200)
	apply(t, s, []streams.Outcome{ok, dead}) // the old dead outcome replayed changes nothing
	d, hist, _, _ := s.GetDelivery(ctx, "d-2")
	if d.Status != streams.StatusSuccess || d.Epoch != 1 || len(hist) != 2 {
		t.Errorf("record %+v history %d", d, len(hist))
	}
	st, _ := s.Stats(ctx, []string{"wh-1"})
	if st["wh-1"].Delivered != 1 || st["wh-1"].Failed != 1 {
		t.Errorf("stats %+v", st["wh-1"])
	}
}

// Three dead in a row is degraded; the history limit keeps the newest.
func TestDegradedAndHistoryLimit(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	small := Limits{Retention: time.Hour, HistoryLimit: 3, PayloadTTL: time.Hour}
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		o := outcome(id, 0, 1, streams.StatusDead, streams.StatusFailed, 410)
		o.CreatedAt = int64(1_700_000_000_000 + i)
		if err := s.ApplyOutcomes(ctx, []streams.Outcome{o}, nil, small); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := s.Stats(ctx, []string{"wh-1"})
	if !st["wh-1"].Degraded(time.Now()) || st["wh-1"].Failed != 5 {
		t.Errorf("stats %+v", st["wh-1"])
	}
	ds, _, err := s.ListDeliveries(ctx, "wh-1", "", 10, "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	if strings.Join(ids, ",") != "e,d,c" {
		t.Errorf("kept %v, want the 3 newest", ids)
	}
	if _, _, _, err := s.GetDelivery(ctx, "a"); err != ErrNotFound {
		t.Errorf("trimmed record still readable: %v", err)
	}
	if n := s.rdb.ZCard(ctx, StatusIndexKey("wh-1", streams.StatusDead)).Val(); n != 3 {
		t.Errorf("status index holds %d", n)
	}
	// The trimmed deliveries' keys are gone, not only their index entries.
	for _, id := range []string{"a", "b"} {
		if n := s.rdb.Exists(ctx, DeliveryKey("wh-1", id), AttemptsKey("wh-1", id), DeliveryWebhookKey(id)).Val(); n != 0 {
			t.Errorf("%s: %d of its keys left", id, n)
		}
	}
	if n := s.rdb.Exists(ctx, TrimmedKey("wh-1")).Val(); n != 0 {
		t.Errorf("trimmed ids still listed")
	}
}

// A batch that stopped between writing and deleting the trimmed records
// leaves them listed; the sweep deletes them, except a delivery an outcome
// started again meanwhile.
// mergeOnly runs the first step of a batch (the merges and the pending
// outcomes' pointers) of a failed outcome for each id, created in that
// order, and stops there, as a batch that stopped after it.
func mergeOnly(t *testing.T, s *Store, lim Limits, ids ...string) []*queuedMerge {
	t.Helper()
	ctx := context.Background()
	p := s.rdb.Pipeline()
	var merges []*queuedMerge
	for i, id := range ids {
		o := outcome(id, 0, 1, streams.StatusFailed, streams.StatusFailed, 503)
		o.CreatedAt = int64(1_700_000_000_000 + i)
		m, err := s.queueOutcome(ctx, p, &o, lim, time.Now().UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		merges = append(merges, m)
	}
	if err := s.execScripts(ctx, p); err != nil {
		t.Fatal(err)
	}
	return merges
}

// A batch whose trimmed deliveries the sweep deleted between the batch's
// merges and its pointer writes (the sweep runs beside the batches) still
// deletes those pointers: none is left pointing at nothing.
func TestTrimmedPointersRaceTheSweep(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.loadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	small := Limits{Retention: time.Hour, HistoryLimit: 2, PayloadTTL: time.Hour}
	merges := mergeOnly(t, s, small, "a", "b", "c", "d")
	// The sweep takes the trimmed a and b first...
	if err := s.sweepTrimmed(ctx, "wh-1"); err != nil {
		t.Fatal(err)
	}
	// ...then the batch writes its pointers and drops what it trimmed.
	if err := s.pointed(ctx, merges); err != nil {
		t.Fatal(err)
	}
	if err := s.dropTrimmed(ctx, trimmedOf(merges)); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int64{"a": 0, "b": 0, "c": 1, "d": 1} {
		if n := s.rdb.Exists(ctx, DeliveryWebhookKey(id)).Val(); n != want {
			t.Errorf("pointer of %s: %d, want %d", id, n, want)
		}
	}
}

func TestTrimmedLeftBehindAreSwept(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CheckKey(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	w := &webhooks.Webhook{ID: "wh-1", Name: "n", URL: "https://example.test/", Secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
		EventTypes: []string{"*"}, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := s.PutWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	small := Limits{Retention: time.Hour, HistoryLimit: 2, PayloadTTL: time.Hour}
	if err := s.loadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	// The first step only (the merges and their pointers), as a batch that
	// stopped after it.
	merges := mergeOnly(t, s, small, "a", "b", "c", "d")
	if err := s.pointed(ctx, merges); err != nil {
		t.Fatal(err)
	}
	if got := s.rdb.ZRange(ctx, TrimmedKey("wh-1"), 0, -1).Val(); strings.Join(got, ",") != "a,b" {
		t.Fatalf("trimmed %v, want a,b", got)
	}
	for _, id := range []string{"a", "b"} {
		if _, _, _, err := s.GetDelivery(ctx, id); err != nil {
			t.Fatalf("%s: the record is deleted by the second step only: %v", id, err)
		}
	}
	// An outcome for b, with the history limit raised meanwhile: a trimmed
	// delivery is gone, so b starts anew (its old attempt is not kept).
	late := outcome("b", 0, 2, streams.StatusSuccess, streams.StatusSuccess, 200)
	late.CreatedAt = 1_700_000_000_001
	raised := small
	raised.HistoryLimit = 3
	if err := s.ApplyOutcomes(ctx, []streams.Outcome{late}, nil, raised); err != nil {
		t.Fatal(err)
	}
	if d, hist, _, err := s.GetDelivery(ctx, "b"); err != nil || d.Status != streams.StatusSuccess || len(hist) != 1 {
		t.Errorf("b after its late outcome: %+v %v %v", d, hist, err)
	}
	if err := s.SweepIndexes(ctx, small.Retention); err != nil {
		t.Fatal(err)
	}
	if n := s.rdb.Exists(ctx, DeliveryKey("wh-1", "a"), AttemptsKey("wh-1", "a"), DeliveryWebhookKey("a")).Val(); n != 0 {
		t.Errorf("a: %d of its keys left after the sweep", n)
	}
	if n := s.rdb.Exists(ctx, TrimmedKey("wh-1")).Val(); n != 0 {
		t.Errorf("trimmed ids still listed after the sweep")
	}
	ds, _, err := s.ListDeliveries(ctx, "wh-1", "", 10, "")
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	if err != nil || strings.Join(ids, ",") != "d,c,b" {
		t.Errorf("listed %v %v, want d,c,b", ids, err)
	}
	if owner, ok, err := s.DeliveryWebhook(ctx, "b"); err != nil || !ok || owner != "wh-1" {
		t.Errorf("b's webhook: %q %v %v", owner, ok, err)
	}
	st, _ := s.Stats(ctx, []string{"wh-1"})
	if st["wh-1"].Delivered != 1 {
		t.Errorf("b's success not counted: %+v", st["wh-1"])
	}
}

// Webhooks are sealed at rest; a wrong key is refused; a store without a
// key (the router) reads everything but the secrets.
func TestWebhooksSealedAtRest(t *testing.T) {
	s, rd := newStore(t)
	ctx := context.Background()
	if err := s.CheckKey(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	w := &webhooks.Webhook{ID: "11111111-1111-1111-1111-111111111111", Name: "n", URL: "https://example.test/p4th?tok=q",
		AuthHeader: "Bearer a-secret", Secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", EventTypes: []string{"*"},
		Headers: map[string]string{"Dd-Api-Key": "dd-key-value", "X-Vendor-Token": "vendor-token-value"},
		Format:  formats.PagerDuty, FormatOptions: &formats.Options{RoutingKey: "R0123456789abcdef0123456789ABCDE"},
		Filter:     `data.severity == "critical" && labels.env == "prod"`,
		MaxRetries: 5, TimeoutSeconds: 30, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := s.PutWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	raw := s.rdb.Get(ctx, WebhookKey(w.ID)).Val()
	for _, plain := range []string{"p4th", "a-secret", "c2VjcmV0c2VjcmV0", "dd-key-value", "vendor-token-value", "Dd-Api-Key", "X-Vendor-Token",
		"R0123456789abcdef", "routing_key"} {
		if strings.Contains(raw, plain) {
			t.Errorf("stored value contains %q", plain)
		}
	}
	got, err := s.GetWebhook(ctx, w.ID)
	if err != nil || got.URL != w.URL || got.AuthHeader != w.AuthHeader || got.Secret != w.Secret {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if !reflect.DeepEqual(got.Headers, w.Headers) {
		t.Fatalf("headers round trip: names %q, want %q", webhooks.HeaderNames(got.Headers), webhooks.HeaderNames(w.Headers))
	}
	if got.FormatOptions == nil || got.FormatOptions.RoutingKey != w.FormatOptions.RoutingKey {
		t.Fatalf("the routing key did not round trip")
	}
	noKey := New(rd.Client(t), nil)
	if err := noKey.CheckKey(ctx); err == nil {
		t.Errorf("a keyless service may not start over encrypted data... unless it needs no secret: CheckKey must say so")
	}
	// The router reads without the key: it still has what matching needs,
	// the filter expression among it.
	if nw, err := noKey.GetWebhook(ctx, w.ID); err != nil || nw.URL != "" || nw.Secret != "" || nw.Headers != nil || nw.Name != "n" || nw.Filter != w.Filter {
		t.Errorf("keyless read: %+v %v", nw, err)
	}
	other, _ := encryption.New([]byte(strings.Repeat("z", 32)))
	if err := New(rd.Client(t), other).CheckKey(ctx); err == nil {
		t.Errorf("wrong key accepted")
	}
	if v, err := s.Version(ctx); err != nil || v != 1 {
		t.Errorf("version %d %v", v, err)
	}
	if err := s.DeleteWebhook(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetWebhook(ctx, w.ID); err != ErrNotFound {
		t.Errorf("deleted webhook: %v", err)
	}
}

// A webhook stored before custom headers existed (no headers_enc) reads as
// one without headers; one without headers is stored without the key.
func TestWebhookWithoutHeadersBackwardCompatible(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CheckKey(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	w := &webhooks.Webhook{ID: "22222222-2222-2222-2222-222222222222", Name: "old", URL: "https://example.test/in",
		Secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", EventTypes: []string{"*"},
		MaxRetries: 5, TimeoutSeconds: 30, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := s.PutWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	raw := s.rdb.Get(ctx, WebhookKey(w.ID)).Val()
	if strings.Contains(raw, "headers") {
		t.Errorf("a webhook without headers stores a headers key: %s", raw)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &fields); err != nil {
		t.Fatal(err)
	}
	// The shape written before the field existed: the same keys, none added.
	for _, k := range []string{"id", "name", "url_enc", "secret_enc", "event_types", "max_retries", "timeout_seconds", "enabled", "created_at", "updated_at"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("stored webhook lacks %q", k)
		}
	}
	got, err := s.GetWebhook(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Headers != nil {
		t.Errorf("headers %q, want none", webhooks.HeaderNames(got.Headers))
	}
}

// Scripts are loaded once; when Redis loses them (a restart), the failed
// write clears the mark and the next one loads them again.
func TestScriptsReloadAfterFlush(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	apply(t, s, []streams.Outcome{outcome("d-9", 0, 1, streams.StatusFailed, streams.StatusFailed, 500)})
	if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	ok := outcome("d-9", 0, 2, streams.StatusSuccess, streams.StatusSuccess, 200)
	if err := s.ApplyOutcomes(ctx, []streams.Outcome{ok}, nil, lim); err == nil || !strings.Contains(err.Error(), "NOSCRIPT") {
		t.Fatalf("write after a script flush: %v, want NOSCRIPT", err)
	}
	apply(t, s, []streams.Outcome{ok})
	if d, _, _, _ := s.GetDelivery(ctx, "d-9"); d.Status != streams.StatusSuccess {
		t.Errorf("status %s after reload", d.Status)
	}
}

// One event's payload serves every webhook it went to; a finished delivery
// extends it to the retention (never shortens it).
func TestPayloadExtendedWhenADeliveryFinishes(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	lim := Limits{Retention: time.Hour, HistoryLimit: 100, PayloadTTL: 30 * time.Minute}
	e := enqueued("d-1")
	e.Deliveries = append(e.Deliveries, streams.EnqueuedItem{DeliveryID: "d-2", WebhookID: "wh-2"})
	if err := s.ApplyOutcomes(ctx, nil, []streams.Enqueued{e}, lim); err != nil {
		t.Fatal(err)
	}
	if ttl := s.rdb.TTL(ctx, EventKey("ev-1")).Val(); ttl <= 0 || ttl > 30*time.Minute {
		t.Fatalf("payload TTL %s before any delivery finished", ttl)
	}
	failed := outcome("d-1", 0, 1, streams.StatusFailed, streams.StatusFailed, 503)
	if err := s.ApplyOutcomes(ctx, []streams.Outcome{failed}, nil, lim); err != nil {
		t.Fatal(err)
	}
	if ttl := s.rdb.TTL(ctx, EventKey("ev-1")).Val(); ttl > 30*time.Minute {
		t.Fatalf("payload extended by a retry: %s", ttl)
	}
	done := outcome("d-2", 0, 1, streams.StatusSuccess, streams.StatusSuccess, 200)
	done.WebhookID = "wh-2"
	if err := s.ApplyOutcomes(ctx, []streams.Outcome{done}, nil, lim); err != nil {
		t.Fatal(err)
	}
	if ttl := s.rdb.TTL(ctx, EventKey("ev-1")).Val(); ttl <= 30*time.Minute || ttl > time.Hour {
		t.Errorf("payload TTL %s after a delivery finished, want the retention", ttl)
	}
	for _, d := range []string{"d-1", "d-2"} {
		if _, _, payload, err := s.GetDelivery(ctx, d); err != nil || string(payload) != `{"id":"ev-1"}` {
			t.Errorf("%s payload %s %v", d, payload, err)
		}
	}
}

// With the usual limits (the payload stored for longer than the retention)
// a delivery that finishes soon leaves the payload's TTL alone: it already
// outlasts the record.
func TestPayloadNotExtendedWhenItOutlastsTheRecord(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	lim := Limits{Retention: time.Hour, HistoryLimit: 100, PayloadTTL: 3 * time.Hour}
	if err := s.ApplyOutcomes(ctx, nil, []streams.Enqueued{enqueued("d-1")}, lim); err != nil {
		t.Fatal(err)
	}
	done := outcome("d-1", 0, 1, streams.StatusSuccess, streams.StatusSuccess, 200)
	if err := s.ApplyOutcomes(ctx, []streams.Outcome{done}, nil, lim); err != nil {
		t.Fatal(err)
	}
	if ttl := s.rdb.TTL(ctx, EventKey("ev-1")).Val(); ttl <= 2*time.Hour {
		t.Errorf("payload TTL %s, want the 3 h it was stored with", ttl)
	}
}
