package router

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixedSet struct{ set *matching.Set }

func (f fixedSet) Set() *matching.Set { return f.set }

// bundle is one test's router with a fake publisher and a fixed webhook set.
type bundle struct {
	j   *hermodtest.Journal
	pub *hermodtest.FakePub
	r   *Router
}

func newBundle(t *testing.T, hooks ...*webhooks.Webhook) *bundle {
	j := &hermodtest.Journal{}
	pub := &hermodtest.FakePub{J: j}
	rs := newRecords(pub, 0)
	t.Cleanup(rs.close)
	r := &Router{pub: pub, records: rs, ix: fixedSet{matching.Build(hooks)}, log: zerolog.Nop()}
	r.onFilterError = r.filterError
	return &bundle{j: j, pub: pub, r: r}
}

func (b *bundle) event(body string, h nats.Header) *hermodtest.FakeMsg {
	if h == nil {
		h = nats.Header{}
	}
	return &hermodtest.FakeMsg{J: b.j, Subj: "deployment.applied", Header: h, Body: []byte(body), Seq: 7, Delivered: 1}
}

func hook(id string, enabled bool, labels ...string) *webhooks.Webhook {
	return &webhooks.Webhook{ID: id, Enabled: enabled, EventTypes: []string{"deployment.*"}, TargetLabels: labels}
}

const event = `{"id":"ev-1","event_type":"deployment.applied","data":{"deployment_id":"d-1"}}`

// One delivery per matching webhook, on the subject its state picks, with
// the delivery id as Nats-Msg-Id; then the enqueue record; the event is
// acked only after every publish was acknowledged.
func TestRouterFansOut(t *testing.T) {
	b := newBundle(t, hook("w-live", true), hook("w-paused", false), hook("w-agent", true, "env=prod"),
		&webhooks.Webhook{ID: "w-other", Enabled: true, EventTypes: []string{"alert.*"}})
	// The acknowledgements are held: nothing more may happen until they come.
	b.pub.Hold = true
	done := make(chan struct{})
	go func() { defer close(done); b.r.handle(b.event(event, nil), nil) }()
	agentSubject := streams.AgentSubject([]string{"env=prod"}, "w-agent")
	hermodtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(b.pub.Published()); n != 3 {
			return fmt.Errorf("%d deliveries published, want 3", n)
		}
		return nil
	})
	if got := b.j.All(); slices.Contains(got, "publish hermod.results.enq") || slices.Contains(got, "ack") {
		t.Fatalf("journal %v: the enqueue record or the ack before the deliveries were acknowledged", got)
	}
	b.pub.AckAll() // the deliveries'
	hermodtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if !slices.Contains(b.j.All(), "publish hermod.results.enq") {
			return fmt.Errorf("no enqueue record after the deliveries were acknowledged: %v", b.j.All())
		}
		return nil
	})
	if slices.Contains(b.j.All(), "ack") {
		t.Fatalf("acked before the enqueue record was acknowledged: %v", b.j.All())
	}
	b.pub.AckAll() // the enqueue record's
	<-done
	got := b.j.All()
	if len(got) == 0 || got[len(got)-1] != "ack" || slices.Index(got, "publish hermod.results.enq") < slices.Index(got, "puback "+agentSubject) {
		t.Errorf("journal %v: want every delivery acknowledged before the enqueue record, and the ack last", got)
	}
	for _, c := range []struct {
		subject   string
		webhook   string
		heldSince bool
	}{
		{streams.DeliverSubject("w-live"), "w-live", false},
		{streams.HeldSubject("w-paused"), "w-paused", true},
		{agentSubject, "w-agent", false},
	} {
		m := b.pub.On(t, c.subject)
		meta, err := streams.ParseMeta(m.Header)
		if err != nil {
			t.Fatal(err)
		}
		if meta.DeliveryID != DeliveryID("ev-1", c.webhook) || m.Header.Get(streams.HdrMsgID) != meta.DeliveryID ||
			meta.EventID != "ev-1" || meta.EventType != "deployment.applied" || (meta.HeldSince != 0) != c.heldSince {
			t.Errorf("%s: %+v", c.subject, meta)
		}
		if string(m.Data) != event {
			t.Errorf("%s: body %s", c.subject, m.Data)
		}
	}
	var enq streams.Enqueued
	if err := json.Unmarshal(b.pub.On(t, streams.EnqueuedSubject).Data, &enq); err != nil {
		t.Fatal(err)
	}
	if enq.EventID != "ev-1" || len(enq.Deliveries) != 3 || string(enq.Payload) != event {
		t.Errorf("enqueue record %+v", enq)
	}
}

// A delivery that cannot be enqueued, or an enqueue record that is not
// stored, leaves the event to come back in a second (its re-fan-out is
// deduplicated by the delivery ids).
func TestRouterNaksWhenAPublishFails(t *testing.T) {
	for _, subject := range []string{streams.DeliverSubject("w-live"), streams.EnqueuedSubject} {
		t.Run(subject, func(t *testing.T) {
			b := newBundle(t, hook("w-live", true))
			b.pub.Fail = map[string]bool{subject: true}
			b.r.handle(b.event(event, nil), nil)
			got := b.j.All()
			if len(got) == 0 || got[len(got)-1] != "nak 1s" || slices.Contains(got, "ack") {
				t.Errorf("journal %v, want a nak of 1s and no ack", got)
			}
		})
	}
}

func TestRouterAcksAnEventNobodyWants(t *testing.T) {
	b := newBundle(t, hook("w-live", true))
	b.r.handle(b.event(`{"id":"ev-2","event_type":"alert.triggered","data":{}}`, nil), nil)
	if got := b.j.All(); !slices.Equal(got, []string{"ack"}) {
		t.Errorf("journal %v, want only the ack", got)
	}
}

// What is not an event is terminated: a body that is no envelope, and a
// copy of a delivery message published on an event subject (an agent's
// pull request can name any reply subject).
func TestRouterTerminatesWhatIsNotAnEvent(t *testing.T) {
	b := newBundle(t, hook("w-live", true))
	b.r.handle(b.event(`not json`, nil), nil)
	b.r.handle(b.event(event, nats.Header{streams.HdrDelivery: {"d-1"}}), nil)
	b.r.handle(b.event(event, nats.Header{streams.HdrVersion: {"1"}}), nil)
	if got := b.j.All(); !slices.Equal(got, []string{"term", "term", "term"}) {
		t.Errorf("journal %v", got)
	}
	if len(b.pub.Published()) != 0 {
		t.Error("published something for a non-event")
	}
}

// An event without an id takes its Nats-Msg-Id, else one derived from its
// stream sequence, and the body delivered carries it.
func TestRouterNamesAnEventWithoutID(t *testing.T) {
	for _, c := range []struct {
		name   string
		header nats.Header
		want   string
	}{
		{"from Nats-Msg-Id", nats.Header{streams.HdrMsgID: {"pub-42"}}, "pub-42"},
		{"from the stream sequence", nil, EventIDFromSeq(7)},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBundle(t, hook("w-live", true))
			b.r.handle(b.event(`{"event_type":"deployment.applied","data":{}}`, c.header), nil)
			m := b.pub.On(t, streams.DeliverSubject("w-live"))
			var env struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(m.Data, &env); err != nil || env.ID != c.want {
				t.Errorf("delivered body %s (err %v), want id %s", m.Data, err, c.want)
			}
			if meta, _ := streams.ParseMeta(m.Header); meta.DeliveryID != DeliveryID(c.want, "w-live") {
				t.Errorf("delivery id %s", meta.DeliveryID)
			}
		})
	}
}

// enqueueRecords decodes every enqueue record published, whether alone (with
// its dedup id) or in a batch message (ids empty).
func enqueueRecords(t *testing.T, pub *hermodtest.FakePub) (recs []streams.Enqueued, ids []string, batches []int) {
	t.Helper()
	for _, m := range pub.Published() {
		if m.Subject != streams.EnqueuedSubject {
			continue
		}
		entries, err := streams.Entries(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		id := m.Header.Get(streams.HdrMsgID)
		if len(entries) > 1 {
			id = ""
			batches = append(batches, len(entries))
		}
		for _, e := range entries {
			var enq streams.Enqueued
			if err := json.Unmarshal(e, &enq); err != nil {
				t.Fatal(err)
			}
			recs, ids = append(recs, enq), append(ids, id)
		}
	}
	return recs, ids, batches
}

// A fan-out too large for one enqueue record is split; the payload travels
// in the first part only, and each part published alone has its own dedup
// id.
func TestRouterSplitsTheEnqueueRecord(t *testing.T) {
	hooks := make([]*webhooks.Webhook, 0, maxEnqueuedItems+5)
	for i := range maxEnqueuedItems + 5 {
		hooks = append(hooks, hook("w"+strconv.Itoa(i), true))
	}
	b := newBundle(t, hooks...)
	b.r.handle(b.event(event, nil), nil)
	parts, ids, _ := enqueueRecords(t, b.pub)
	if len(parts) == 2 && parts[0].Payload == nil { // published by the other publisher first
		parts[0], parts[1], ids[0], ids[1] = parts[1], parts[0], ids[1], ids[0]
	}
	if len(parts) != 2 || len(parts[0].Deliveries) != maxEnqueuedItems || len(parts[1].Deliveries) != 5 ||
		parts[0].Payload == nil || parts[1].Payload != nil {
		t.Fatalf("%d parts", len(parts))
	}
	for i, want := range []string{"enq:ev-1:0", "enq:ev-1:" + strconv.Itoa(maxEnqueuedItems)} {
		if ids[i] != "" && ids[i] != want {
			t.Errorf("part %d: dedup id %q, want %q", i, ids[i], want)
		}
	}
}

// The enqueue records of events in hand together go in one message: while
// both record publishers wait for their acknowledgements, the records of
// the next events gather, and each event is acked only once the message
// holding its record is acknowledged.
func TestRouterBatchesEnqueueRecords(t *testing.T) {
	b := newBundle(t, hook("w-live", true))
	b.pub.Hold = true
	const n = 6
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.r.handle(b.event(`{"id":"ev-`+strconv.Itoa(i)+`","event_type":"deployment.applied","data":{}}`, nil), nil)
		}()
	}
	// Both publishers hold a message waiting for its acknowledgement, and
	// every other event's record waits for them.
	hermodtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		b.pub.AckSubject(streams.DeliverSubject("w-live"))
		recs, _, _ := enqueueRecords(t, b.pub)
		msgs := 0
		for _, m := range b.pub.Published() {
			if m.Subject == streams.EnqueuedSubject {
				msgs++
			}
		}
		if msgs != 2 || len(recs)+len(b.r.records.queue) != n {
			return fmt.Errorf("%d enqueue messages (%d records) published and %d records waiting, want 2 messages and all %d records",
				msgs, len(recs), len(b.r.records.queue), n)
		}
		return nil
	})
	if slices.Contains(b.j.All(), "ack") {
		t.Fatalf("an event was acked before its enqueue record was acknowledged: %v", b.j.All())
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	hermodtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		b.pub.AckAll()
		select {
		case <-done:
			return nil
		default:
			return fmt.Errorf("events still in hand: %v", b.j.All())
		}
	})
	recs, _, batches := enqueueRecords(t, b.pub)
	if len(recs) != n || len(batches) == 0 || batches[len(batches)-1] < 2 {
		t.Errorf("%d records in %d batch messages (sizes %v), want %d with the later ones batched", len(recs), len(batches), batches, n)
	}
	acks := 0
	for _, e := range b.j.All() {
		if e == "ack" {
			acks++
		}
	}
	if acks != n {
		t.Errorf("%d events acked, want %d", acks, n)
	}
}

// Delivery ids are stable: the same event and webhook give the same id
// (a re-fan-out is deduplicated), different ones differ.
func TestDeliveryIDIsStable(t *testing.T) {
	a, again, other := DeliveryID("ev-1", "w-1"), DeliveryID("ev-1", "w-1"), DeliveryID("ev-1", "w-2")
	if a != again || a == other || DeliveryID("ev-2", "w-1") == a {
		t.Errorf("ids %s %s %s", a, again, other)
	}
	if one, again := EventIDFromSeq(1), EventIDFromSeq(1); one == EventIDFromSeq(2) || one != again {
		t.Error("event ids from sequences are not stable and distinct")
	}
}

// The router's limit is the envelope of HERMOD_MAX_EVENT_BYTES, lowered when the NATS max
// payload leaves less room beside a delivery's headers; an enqueue record
// message must fit the max payload with its header.
func TestLimits(t *testing.T) {
	for _, c := range []struct {
		maxEvent            int
		maxPayload          int64
		wantEvent, wantRecs int
	}{
		{256 << 10, 1 << 20, 256<<10 + streams.EnvelopeRoom, 1<<20 - headerRoom},
		{8 << 20, 1 << 20, 1<<20 - headerRoom, 1<<20 - headerRoom},
		{0, 8 << 20, 256<<10 + streams.EnvelopeRoom, 8<<20 - headerRoom},
		{4096, 0, 4096 + streams.EnvelopeRoom, 0},
	} {
		ev, rec := limits(c.maxEvent, c.maxPayload)
		if ev != c.wantEvent || rec != c.wantRecs {
			t.Errorf("limits(%d, %d) = %d, %d; want %d, %d", c.maxEvent, c.maxPayload, ev, rec, c.wantEvent, c.wantRecs)
		}
	}
}

// An event over the limit is terminated (never redelivered) and counted,
// with nothing published; one exactly at the limit is fanned out.
func TestRouterRefusesAnEventOverTheLimit(t *testing.T) {
	b := newBundle(t, hook("w-live", true))
	b.r.m = metrics.NewRouting(prometheus.NewRegistry())
	at := eventOfSize(t, 2048)
	b.r.eventLimit = len(at)
	b.r.handle(b.event(at+" ", nil), nil) // one byte over
	if got := b.j.All(); !slices.Equal(got, []string{"term"}) {
		t.Fatalf("journal %v, want a term", got)
	}
	if n := len(b.pub.Published()); n != 0 {
		t.Fatalf("published %d messages for a refused event", n)
	}
	if n := testutil.ToFloat64(b.r.m.EventsRefused.WithLabelValues("too_large")); n != 1 {
		t.Errorf("hermod_events_refused_total{reason=too_large} = %v", n)
	}
	b.r.handle(b.event(at, nil), nil)
	if got := b.j.All(); got[len(got)-1] != "ack" {
		t.Errorf("journal %v: the event at the limit was not acked", got)
	}
}

// eventOfSize is an envelope of exactly n bytes.
func eventOfSize(t *testing.T, n int) string {
	t.Helper()
	head, tail := `{"id":"ev-big","event_type":"deployment.applied","data":{"x":"`, `"}}`
	if n < len(head)+len(tail) {
		t.Fatalf("an event cannot be %d bytes", n)
	}
	return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
}

// A payload that would not fit one enqueue record with its deliveries
// travels alone; the deliveries follow without it.
func TestRouterSendsALargePayloadAlone(t *testing.T) {
	b := newBundle(t, hook("w-a", true), hook("w-b", true))
	big := eventOfSize(t, 4096)
	b.r.recordLimit = len(big) + 200 // the payload fits alone, not with two deliveries
	b.r.records = newRecords(b.pub, b.r.recordLimit)
	t.Cleanup(b.r.records.close)
	b.r.handle(b.event(big, nil), nil)
	recs, ids, _ := enqueueRecords(t, b.pub)
	var payloads, deliveries int
	for i, r := range recs {
		if len(r.Payload) > 0 {
			payloads++
			if string(r.Payload) != big || len(r.Deliveries) != 0 {
				t.Errorf("payload part %+v", r.Deliveries)
			}
			if ids[i] != "" && ids[i] != "enq:ev-big:payload" {
				t.Errorf("payload part's dedup id %q", ids[i])
			}
		}
		deliveries += len(r.Deliveries)
	}
	if payloads != 1 || deliveries != 2 || len(recs) != 2 {
		t.Errorf("%d parts, %d with the payload, %d deliveries", len(recs), payloads, deliveries)
	}
	for _, m := range b.pub.Published() {
		if len(m.Data) > b.r.recordLimit && m.Subject == streams.EnqueuedSubject {
			t.Errorf("an enqueue record message of %d bytes passes the limit %d", len(m.Data), b.r.recordLimit)
		}
	}
}

// The index sweep runs every minute, or every quarter of a shorter
// retention.
func TestSweepEvery(t *testing.T) {
	for r, want := range map[time.Duration]time.Duration{72 * time.Hour: time.Minute, 4 * time.Minute: time.Minute,
		time.Minute: 15 * time.Second, 2 * time.Second: 500 * time.Millisecond, 0: 100 * time.Millisecond} {
		if got := SweepEvery(r); got != want {
			t.Errorf("SweepEvery(%s) = %s, want %s", r, got, want)
		}
	}
}

// A webhook's filter expression decides with the other filters; one that
// gives no answer (a missing field, a result that is not a bool) is no
// match, counted by reason, and the event is still acked.
func TestRouterFilterExpression(t *testing.T) {
	withFilter := func(id, expr string) *webhooks.Webhook {
		w := hook(id, true)
		w.Filter = expr
		return w
	}
	b := newBundle(t, hook("w-plain", true),
		withFilter("w-prod", `data.deployment_id == "d-1" && labels.env == "prod"`),
		withFilter("w-staging", `labels.env == "staging"`),
		withFilter("w-missing", `data.severity == "high"`),
		withFilter("w-notbool", `data.deployment_id`),
		withFilter("w-has", `!has(data.severity) && event_type.endsWith(".applied")`))
	b.r.m = metrics.NewRouting(prometheus.NewRegistry())
	b.r.handle(b.event(`{"id":"ev-1","event_type":"deployment.applied","labels":{"env":"prod"},"data":{"deployment_id":"d-1"}}`, nil), nil)
	var got []string
	for _, m := range b.pub.Published() {
		if id := m.Header.Get(streams.HdrWebhook); id != "" {
			got = append(got, id)
		}
	}
	slices.Sort(got)
	if want := []string{"w-has", "w-plain", "w-prod"}; !slices.Equal(got, want) {
		t.Errorf("delivered to %v, want %v", got, want)
	}
	if all := b.j.All(); all[len(all)-1] != "ack" {
		t.Errorf("journal %v: the event was not acked", all)
	}
	for reason, want := range map[string]float64{"missing_field": 1, "not_bool": 1, "eval": 0, "cost_limit": 0, "compile": 0} {
		if n := testutil.ToFloat64(b.r.m.FilterErrors.WithLabelValues(reason)); n != want {
			t.Errorf("hermod_filter_errors_total{reason=%s} = %v, want %v", reason, n, want)
		}
	}
}

// The log about failing expressions lets one line through per interval
// and tells how many it held back.
func TestFilterLogIsRateLimited(t *testing.T) {
	var l filterLog
	now := time.Unix(1000, 0)
	if ok, _ := l.allow(now); !ok {
		t.Fatal("the first failure was not logged")
	}
	for range 5 {
		if ok, _ := l.allow(now.Add(time.Second)); ok {
			t.Fatal("a failure within the interval was logged")
		}
	}
	ok, skipped := l.allow(now.Add(filterLogInterval))
	if !ok || skipped != 5 {
		t.Errorf("after the interval: allow = %v, %d held back; want true, 5", ok, skipped)
	}
}

// The operational family is Hermod's own: on a platform subject it is
// terminated and counted; an operational subject carries only its own
// type; and an operational event never goes to the webhook it is about.
func TestRouterOperationalEvents(t *testing.T) {
	opsHook := func(id string) *webhooks.Webhook {
		return &webhooks.Webhook{ID: id, Enabled: true, EventTypes: []string{"hermod.*", "deployment.*"}}
	}
	const dead = `{"id":"ev-ops","event_type":"hermod.delivery.dead","data":{"webhook_id":"w-a"}}`
	t.Run("refused on a platform subject", func(t *testing.T) {
		b := newBundle(t, opsHook("w-a"))
		b.r.m = metrics.NewRouting(prometheus.NewRegistry())
		b.r.handle(b.event(dead, nil), nil) // on deployment.applied
		if got := b.j.All(); !slices.Equal(got, []string{"term"}) || len(b.pub.Published()) != 0 {
			t.Fatalf("journal %v, published %d: want a term and nothing", got, len(b.pub.Published()))
		}
		if n := testutil.ToFloat64(b.r.m.EventsRefused.WithLabelValues("reserved_family")); n != 1 {
			t.Errorf("hermod_events_refused_total{reason=reserved_family} = %v", n)
		}
	})
	t.Run("an operational subject carries only its type", func(t *testing.T) {
		b := newBundle(t, opsHook("w-a"))
		b.r.m = metrics.NewRouting(prometheus.NewRegistry())
		for _, m := range []*hermodtest.FakeMsg{
			{J: b.j, Subj: streams.OpsEventSubject("hermod.webhook.degraded"), Header: nats.Header{}, Body: []byte(dead)},
			{J: b.j, Subj: streams.OpsEventSubject("deployment.applied"), Header: nats.Header{}, Body: []byte(event)},
		} {
			b.r.handle(m, nil)
		}
		if got := b.j.All(); !slices.Equal(got, []string{"term", "term"}) {
			t.Fatalf("journal %v, want two terms", got)
		}
		if n := testutil.ToFloat64(b.r.m.EventsRefused.WithLabelValues("not_operational")); n != 2 {
			t.Errorf("hermod_events_refused_total{reason=not_operational} = %v", n)
		}
	})
	t.Run("never to the webhook it is about", func(t *testing.T) {
		b := newBundle(t, opsHook("w-a"), opsHook("w-b"))
		m := &hermodtest.FakeMsg{J: b.j, Subj: streams.OpsEventSubject("hermod.delivery.dead"),
			Header: nats.Header{streams.HdrAboutWebhook: {"w-a"}}, Body: []byte(dead)}
		done := make(chan struct{})
		go func() { defer close(done); b.r.handle(m, nil) }()
		hermodtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
			b.pub.AckAll()
			if !slices.Contains(b.j.All(), "ack") {
				return fmt.Errorf("journal %v: not acked yet", b.j.All())
			}
			return nil
		})
		<-done
		var to []string
		for _, p := range b.pub.Published() {
			if p.Subject != streams.EnqueuedSubject {
				to = append(to, streams.SubjectWebhookID(p.Subject))
			}
		}
		if !slices.Equal(to, []string{"w-b"}) {
			t.Errorf("delivered to %v, want only w-b", to)
		}
	})
}
