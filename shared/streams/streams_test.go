package streams

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/hermodtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).flushStreamStateLoop"))
}

func TestMetaRoundTrip(t *testing.T) {
	m := Meta{DeliveryID: "d", WebhookID: "w", EventID: "e", EventType: "alert.triggered", Epoch: 2, Attempts: 3,
		Lost: 1, CreatedAt: 1700000000000, Due: 1700000005000, HeldSince: 1700000001000}
	msg := NewMsg(DeliverSubject("w"), "id-1", m, []byte("{}"))
	got, err := ParseMeta(msg.Header)
	if err != nil || got != m {
		t.Fatalf("%+v %v", got, err)
	}
	if msg.Header.Get(HdrMsgID) != "id-1" {
		t.Errorf("msg id")
	}
	for _, h := range []nats.Header{{}, {HdrVersion: {"2"}, HdrDelivery: {"d"}, HdrWebhook: {"w"}},
		{HdrVersion: {"1"}, HdrDelivery: {"d"}}, {HdrVersion: {"1"}, HdrDelivery: {"d"}, HdrWebhook: {"w"}, HdrAttempts: {"x"}}} {
		if _, err := ParseMeta(h); err == nil {
			t.Errorf("ParseMeta(%v) accepted", h)
		}
	}
	if RetryMsgID(m, 7) == RetryMsgID(Meta{DeliveryID: "d", Epoch: 2, Attempts: 4, Lost: 1}, 7) {
		t.Errorf("retry ids of different attempts collide")
	}
	if SubjectFor("w", nil, true) != "hermod.dlv.w" || SubjectFor("w", nil, false) != "hermod.held.w" ||
		SubjectFor("w", []string{"env:prod"}, false) != AgentSubject([]string{"env:prod"}, "w") {
		t.Errorf("SubjectFor")
	}
	if LabelSetHash([]string{"a:1", "b:2"}) == LabelSetHash([]string{"a:1"}) {
		t.Errorf("label hashes collide")
	}
}

// EnsureStreams is idempotent; Feed hands every message over and drains.
func TestEnsureStreamsAndFeed(t *testing.T) {
	ns := hermodtest.NATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	s := Settings{Subjects: []string{"alert.>"}, DedupWindow: 2 * time.Minute, Retention: time.Hour}
	for i := 0; i < 2; i++ {
		if err := EnsureStreams(ctx, js, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := EnsureStreams(ctx, js, Settings{}); err == nil {
		t.Errorf("no subjects accepted")
	}
	for i := 0; i < 2; i++ { // the same Nats-Msg-Id twice is stored once
		if _, err := js.PublishMsg(ctx, NewMsg(DeliverSubject("w"), "same", Meta{DeliveryID: "d", WebhookID: "w"}, []byte("{}"))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		if _, err := js.PublishMsg(ctx, NewMsg(DeliverSubject("w"), "m"+string(rune('0'+i)), Meta{DeliveryID: "d", WebhookID: "w"}, []byte("{}"))); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, DeliveriesStream, DelivererConsumerConfig(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan Pulled)
	drain, err := Feed(cons, 2, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range out {
		_ = m.Ack()
		if got++; got == 5 {
			go drain()
		}
	}
	if got != 5 {
		t.Errorf("fed %d messages, want 5", got)
	}
}

// Every catalogue event type published on its EventSubject lands in the
// event stream.
func TestEventSubjectCapturedByEventStream(t *testing.T) {
	ns := hermodtest.NATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	cat := catalog.New(catalog.Default)
	if err := EnsureStreams(ctx, js, Settings{Subjects: cat.StreamSubjects()}); err != nil {
		t.Fatal(err)
	}
	for _, et := range cat.Types() {
		if et.Type == catalog.TestEventType {
			continue
		}
		subject := EventSubject(et.Type)
		if catalog.IsOperational(et.Type) {
			// Hermod's own events: captured on Hermod's subject only, never
			// on the platform's (nothing stores hermod.webhook.degraded).
			if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte("{}")}); !errors.Is(err, jetstream.ErrNoStreamResponse) {
				t.Errorf("%s on the platform subject: %v, want no stream", et.Type, err)
			}
			subject = OpsEventSubject(et.Type)
		}
		ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte("{}"),
			Header: nats.Header{HdrMsgID: {"e-" + et.Type}}})
		if err != nil || ack.Stream != EventsStream {
			t.Errorf("%s: %+v %v", et.Type, ack, err)
		}
	}
}

func TestParseAgentResultSubject(t *testing.T) {
	for _, c := range []struct {
		subject, id, kind string
		ok                bool
	}{
		{AgentOutcomeSubject("eu-1"), "eu-1", "out", true},
		{AgentBreakerSubject("eu_2"), "eu_2", "breaker", true},
		{OutcomeSubject, "", "", false},
		{BreakerSubject, "", "", false},
		{AgentResultsPrefix + "eu-1.other", "", "", false},
		{AgentResultsPrefix + "a.b.out", "", "", false},
		{AgentResultsPrefix + ".out", "", "", false},
		{AgentResultsPrefix + "out", "", "", false},
	} {
		id, kind, ok := ParseAgentResultSubject(c.subject)
		if id != c.id || kind != c.kind || ok != c.ok {
			t.Errorf("ParseAgentResultSubject(%q) = %q %q %v, want %q %q %v", c.subject, id, kind, ok, c.id, c.kind, c.ok)
		}
	}
	if got := SubjectWebhookID(DelaySubject("w-1")); got != "w-1" {
		t.Errorf("SubjectWebhookID: %q", got)
	}
	if got := SubjectWebhookID(AgentSubject([]string{"env:x"}, "w-2")); got != "w-2" {
		t.Errorf("SubjectWebhookID(agent): %q", got)
	}
}

func TestIsReadySubject(t *testing.T) {
	labels := []string{"env:production"}
	for _, c := range []struct {
		subject, id string
		labels      []string
		want        bool
	}{
		{DeliverSubject("w1"), "w1", nil, true},
		{AgentSubject(labels, "w1"), "w1", labels, true},
		{DeliverSubject("w1"), "w1", labels, false},
		{AgentSubject(labels, "w1"), "w1", nil, false},
		{AgentSubject([]string{"env:staging"}, "w1"), "w1", labels, false},
		{DeliverSubject("w2"), "w1", nil, false},
		{DelaySubject("w1"), "w1", nil, false},
		{DeliverSubject("xw1"), "w1", nil, false},
	} {
		if got := IsReadySubject(c.subject, c.id, c.labels); got != c.want {
			t.Errorf("IsReadySubject(%q, %q, %v) = %v, want %v", c.subject, c.id, c.labels, got, c.want)
		}
		if c.want != (c.subject == SubjectFor(c.id, c.labels, true)) {
			t.Errorf("%q: disagrees with SubjectFor", c.subject)
		}
	}
}

// A batch (of outcomes, or of enqueue records) is one message marked by
// its header; a batch of one is an ordinary message; its entries are read
// one by one, and an unreadable batch body is refused.
func TestBatches(t *testing.T) {
	var enc [][]byte
	for _, id := range []string{"d1", "d2", "d3"} {
		b, _ := json.Marshal(Outcome{V: SchemaVersion, DeliveryID: id, WebhookID: "w", Status: StatusSuccess, Attempt: 1})
		enc = append(enc, b)
	}
	for _, m := range []*nats.Msg{NewOutcomeBatch(OutcomeSubject, enc), NewEnqueuedBatch(enc)} {
		if EntryCount(m.Header) != 3 {
			t.Fatalf("batch message %s %v", m.Subject, m.Header)
		}
		entries, err := Entries(m.Header, m.Data)
		if err != nil || len(entries) != 3 {
			t.Fatalf("Entries(%s) = %d entries, %v", m.Data, len(entries), err)
		}
		for i, e := range entries {
			var o Outcome
			if err := json.Unmarshal(e, &o); err != nil || o.DeliveryID != "d"+strconv.Itoa(i+1) || o.Status != StatusSuccess {
				t.Errorf("entry %d: %+v %v", i, o, err)
			}
		}
	}
	if m := NewEnqueuedBatch(enc); m.Subject != EnqueuedSubject {
		t.Errorf("enqueue batch on %s", m.Subject)
	}
	one := NewOutcomeBatch(OutcomeSubject, enc[:1])
	if one.Header != nil || EntryCount(one.Header) != 1 || !bytes.Equal(one.Data, enc[0]) {
		t.Errorf("a batch of one: %v %s", one.Header, one.Data)
	}
	if e, err := Entries(one.Header, one.Data); err != nil || len(e) != 1 || !bytes.Equal(e[0], enc[0]) {
		t.Errorf("the entries of a single message: %v %v", e, err)
	}
	if EntryCount(nats.Header{HdrBatch: {"x"}}) != 1 {
		t.Error("an unreadable count is not 1")
	}
	marked := nats.Header{HdrBatch: {"2"}}
	for _, bad := range []string{`[`, `{"v":2,"outcomes":[{}]}`, `{"v":1,"outcomes":[]}`, `{"v":1,"records":[]}`, `{"v":0}`, `[{}]`} {
		if _, err := Entries(marked, []byte(bad)); err == nil {
			t.Errorf("Entries(%s) accepted", bad)
		}
	}
}
