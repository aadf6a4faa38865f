package dispatch

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

func pulled(m *hermodtest.FakeMsg, at time.Time) streams.Pulled {
	return streams.Pulled{Msg: m, At: at}
}

func outcomeOf(t *testing.T, b *bundle) streams.Outcome {
	t.Helper()
	var o streams.Outcome
	if err := json.Unmarshal(b.pub.On(t, streams.OutcomeSubject).Data, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func wantJournal(t *testing.T, b *bundle, want ...string) {
	t.Helper()
	if got := b.j.All(); !slices.Equal(got, want) {
		t.Errorf("journal\n  %q\nwant\n  %q", got, want)
	}
}

// settle runs what the settlers would: the pending settlements of w, in
// batches.
func settle(w *Worker) {
	src := w.batches()
	for b := src.Next(false); b != nil; b = src.Next(false) {
		w.settleBatch(b)
	}
}

// waitJournal waits until the journal holds want.
func waitJournal(t *testing.T, b *bundle, want ...string) {
	t.Helper()
	hermodtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if got := b.j.All(); !slices.Equal(got, want) {
			return errorf("journal %q, want %q", got, want)
		}
		return nil
	})
}

// A success: the outcome is stored, and only after its acknowledgement is
// the message acked.
func TestWorkerDeliverAcksAfterTheOutcomeIsStored(t *testing.T) {
	b := newBundle(t)
	b.pub.Hold = true
	w := b.worker(WorkerOptions{})
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	done := make(chan struct{})
	go func() { defer close(done); settle(w) }()
	waitJournal(t, b, "send d1", "publish hermod.results.out") // no ack before the PubAck
	b.pub.AckAll()
	<-done
	wantJournal(t, b, "send d1", "publish hermod.results.out", "puback hermod.results.out", "ack")
	o := outcomeOf(t, b)
	if o.Status != streams.StatusSuccess || o.AttemptStatus != streams.StatusSuccess || o.Attempt != 1 || o.StatusCode != 200 ||
		o.By != "broker" || o.PayloadSize != len(`{"id":"e1"}`) || o.DurationMs != 12 || o.StartedAt != t0.UnixMilli() {
		t.Errorf("outcome %+v", o)
	}
	req := b.sender.calls[0]
	if req.URL != "http://127.0.0.1:9/hook" || req.DeliveryID != "d1" || req.EventType != "deployment.applied" ||
		!slices.Equal(req.Secrets, []string{"whsec_x"}) || req.Timeout != 10*time.Second {
		t.Errorf("request %+v", req)
	}
}

// When the outcome's first publish fails, the settler publishes it again
// before the ack; when that fails too, the message is left to redelivery.
func TestWorkerDeliverOutcomeNotStoredLeavesTheMessage(t *testing.T) {
	b := newBundle(t)
	b.pub.FailN = map[string]int{streams.OutcomeSubject: 1}
	w := b.worker(WorkerOptions{})
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	settle(w)
	wantJournal(t, b, "send d1", "publish failed hermod.results.out", "publish hermod.results.out", "puback hermod.results.out", "ack")

	b2 := newBundle(t)
	b2.pub.Fail = map[string]bool{streams.OutcomeSubject: true}
	w2 := b2.worker(WorkerOptions{})
	w2.Handle(pulled(b2.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	settle(w2)
	// publishAll's tries until PublishRetry (50 ms here) has passed: the
	// first, and one more after its 200 ms pause; never an ack.
	wantJournal(t, b2, "send d1", "publish failed hermod.results.out", "publish failed hermod.results.out")
}

// A retryable failure: the failed outcome and the copy with one more failed
// attempt, due after the backoff, are both stored before the ack.
func TestWorkerRetry(t *testing.T) {
	b := newBundle(t)
	b.sender.answer = delivery.Result{StatusCode: 503, Class: delivery.Retryable, Excerpt: "upstream down\nretry later",
		ContentType: "text/plain", Err: errors.New("HTTP 503: upstream down")}
	w := b.worker(WorkerOptions{})
	m := b.msg(streams.DeliverSubject("w1"), streams.Meta{Attempts: 1})
	w.Handle(pulled(m, t0))
	wantJournal(t, b, "send d1", "publish hermod.results.out", "puback hermod.results.out",
		"publish hermod.delay.w1", "puback hermod.delay.w1", "ack")
	cp := b.pub.On(t, streams.DelaySubject("w1"))
	meta, err := streams.ParseMeta(cp.Header)
	if err != nil {
		t.Fatal(err)
	}
	due := time.UnixMilli(meta.Due)
	if meta.Attempts != 2 || due.Before(t0.Add(3600*time.Millisecond)) || due.After(t0.Add(4400*time.Millisecond)) {
		t.Errorf("copy attempts=%d due=%s, want 2 and 4 s ±10%% after %s", meta.Attempts, due, t0)
	}
	if id := cp.Header.Get(streams.HdrMsgID); id != streams.RetryMsgID(streams.Meta{DeliveryID: "d1", Attempts: 1}, 42) {
		t.Errorf("copy msg id %q", id)
	}
	o := outcomeOf(t, b)
	if o.Status != streams.StatusFailed || o.Attempt != 2 || o.NextRetryAt != meta.Due || o.StatusCode != 503 ||
		o.Response != "upstream down\nretry later" || o.ResponseType != "text/plain" || o.Error != "HTTP 503: upstream down" {
		t.Errorf("outcome %+v", o)
	}
}

// A retry whose copy cannot be stored is not acked: its lease expires and
// the attempt is made again.
func TestWorkerRetryNotStoredLeavesTheMessage(t *testing.T) {
	b := newBundle(t)
	b.sender.answer = delivery.Result{StatusCode: 500, Class: delivery.Retryable}
	b.pub.Fail = map[string]bool{streams.DelaySubject("w1"): true}
	b.worker(WorkerOptions{}).Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	if slices.Contains(b.j.All(), "ack") {
		t.Errorf("acked a retry that was not stored: %v", b.j.All())
	}
}

// Dead: the dead outcome and the dead letter are both acknowledged before
// the message is acked.
func TestWorkerDeadTerminal(t *testing.T) {
	b := newBundle(t)
	b.sender.answer = delivery.Result{StatusCode: 410, Class: delivery.Terminal}
	b.worker(WorkerOptions{}).Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	wantJournal(t, b, "send d1", "publish hermod.results.out", "puback hermod.results.out",
		"publish hermod.dead.w1", "puback hermod.dead.w1", "ack")
	dl := b.pub.On(t, streams.DeadSubject("w1"))
	if dl.Header.Get(streams.HdrReason) != "terminal" || dl.Header.Get(streams.HdrMsgID) != "" || string(dl.Data) != `{"id":"e1"}` {
		t.Errorf("dead letter %v %s", dl.Header, dl.Data)
	}
	if o := outcomeOf(t, b); o.Status != streams.StatusDead || o.Reason != streams.ReasonTerminal || o.Attempt != 1 || o.StatusCode != 410 {
		t.Errorf("outcome %+v", o)
	}
}

// A delivery whose lease was lost 5 times is dead without an attempt.
func TestWorkerAbandoned(t *testing.T) {
	b := newBundle(t)
	m := b.msg(streams.DeliverSubject("w1"), streams.Meta{Lost: 3, Attempts: 2})
	m.Delivered = 3
	b.worker(WorkerOptions{}).Handle(pulled(m, t0))
	wantJournal(t, b, "publish hermod.results.out", "puback hermod.results.out",
		"publish hermod.dead.w1", "puback hermod.dead.w1", "ack")
	o := outcomeOf(t, b)
	if o.Reason != streams.ReasonAbandoned || o.Attempt != 2 || o.Error != "lease expired 5 times without an outcome" {
		t.Errorf("outcome %+v", o)
	}
}

// Parking moves a copy to the delay subject without spending an attempt:
// every slot is taken and waiting for one is not allowed.
func TestWorkerParksASaturatedWebhook(t *testing.T) {
	b := newBundle(t)
	iso := NewIsolation(IsolationOptions{Inflight: 1})
	if !iso.Acquire("w1", 0) {
		t.Fatal("first slot refused")
	}
	w := b.worker(WorkerOptions{Isolation: iso})
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{Attempts: 2}), t0))
	wantJournal(t, b, "publish hermod.delay.w1", "puback hermod.delay.w1", "ack")
	cp := b.pub.On(t, streams.DelaySubject("w1"))
	meta, _ := streams.ParseMeta(cp.Header)
	if meta.Attempts != 2 || meta.Due != t0.Add(100*time.Millisecond).UnixMilli() {
		t.Errorf("parked copy %+v", meta)
	}
	if id := cp.Header.Get(streams.HdrMsgID); id != streams.RetryMsgID(streams.Meta{DeliveryID: "d1", Attempts: 2}, 42)+":p" {
		t.Errorf("parked msg id %q", id)
	}
	iso.Release("w1")
	// The slot the parked message did not use was given back.
	if !iso.Acquire("w1", 0) {
		t.Error("a parked delivery kept its slot")
	}
}

func TestWorkerHoldsAPausedWebhook(t *testing.T) {
	b := newBundle(t)
	b.hooks.hooks["w1"].Enabled = false
	b.worker(WorkerOptions{}).Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{Attempts: 1}), t0))
	wantJournal(t, b, "publish hermod.held.w1", "puback hermod.held.w1", "ack")
	meta, _ := streams.ParseMeta(b.pub.On(t, streams.HeldSubject("w1")).Header)
	if meta.HeldSince != t0.UnixMilli() || meta.Attempts != 1 || meta.Due != 0 {
		t.Errorf("held copy %+v", meta)
	}
}

func TestWorkerDropsADeletedWebhooksDelivery(t *testing.T) {
	b := newBundle(t)
	delete(b.hooks.hooks, "w1")
	b.worker(WorkerOptions{}).Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	wantJournal(t, b, "ack")
}

// A lookup that fails (the store is down and the index does not know the
// webhook) parks the delivery for a second instead of failing it.
func TestWorkerParksWhenTheStoreIsDown(t *testing.T) {
	b := newBundle(t)
	delete(b.hooks.hooks, "w1")
	b.hooks.err = errTest
	b.worker(WorkerOptions{}).Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	wantJournal(t, b, "publish hermod.delay.w1", "puback hermod.delay.w1", "ack")
	if meta, _ := streams.ParseMeta(b.pub.On(t, streams.DelaySubject("w1")).Header); meta.Due != t0.Add(time.Second).UnixMilli() {
		t.Errorf("due %d", meta.Due)
	}
}

// A header naming another webhook than the subject is never delivered.
func TestWorkerRejectsAForgedDelivery(t *testing.T) {
	b := newBundle(t)
	b.worker(WorkerOptions{}).Handle(pulled(b.msg(streams.DelaySubject("w2"), streams.Meta{}), t0))
	wantJournal(t, b, "term")
}

// A delivery on the wrong subject for its webhook (its labels changed) goes
// through the scheduler, due now.
func TestWorkerReroutes(t *testing.T) {
	b := newBundle(t)
	b.hooks.hooks["w1"].TargetLabels = []string{"env=prod"}
	b.worker(WorkerOptions{}).Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	wantJournal(t, b, "publish hermod.delay.w1", "puback hermod.delay.w1", "ack")
}

// The lease rules: renewed before an attempt after waiting over half of
// it; left alone after waiting out 90% of it.
func TestWorkerLeaseRules(t *testing.T) {
	b := newBundle(t)
	b.deps.Rules.AcquireTTL = 10 * time.Second
	w := b.worker(WorkerOptions{})
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0.Add(-6*time.Second)))
	settle(w)
	wantJournal(t, b, "in progress", "send d1", "publish hermod.results.out", "puback hermod.results.out", "ack")

	b2 := newBundle(t)
	b2.deps.Rules.AcquireTTL = 10 * time.Second
	b2.worker(WorkerOptions{}).Handle(pulled(b2.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0.Add(-9500*time.Millisecond)))
	wantJournal(t, b2)
}

// A refused agent takes nothing: the message's lease expires.
func TestWorkerRefusedLeavesEverything(t *testing.T) {
	b := newBundle(t)
	b.worker(WorkerOptions{Refused: func() bool { return true }}).Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	wantJournal(t, b)
}

// The breaker opens after the threshold of retryable failures, is reported,
// parks the next delivery until it closes, and a success closes it (also
// reported).
func TestWorkerBreaker(t *testing.T) {
	b := newBundle(t)
	b.sender.answer = delivery.Result{StatusCode: 500, Class: delivery.Retryable}
	w := b.worker(WorkerOptions{Isolation: NewIsolation(IsolationOptions{Threshold: 2, Cooldown: 20 * time.Second})})
	for i := range 2 {
		m := b.msg(streams.DeliverSubject("w1"), streams.Meta{DeliveryID: "d" + strconv.Itoa(i)})
		w.Handle(pulled(m, t0))
	}
	var rep streams.BreakerState
	if err := json.Unmarshal(b.pub.On(t, streams.BreakerSubject).Data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.WebhookID != "w1" || rep.OpenUntil != t0.Add(20*time.Second).UnixMilli() {
		t.Errorf("breaker report %+v", rep)
	}
	calls := b.sender.count()
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{DeliveryID: "d9"}), t0))
	if b.sender.count() != calls {
		t.Error("attempted through an open breaker")
	}
	parked := b.pub.Published()
	meta, _ := streams.ParseMeta(parked[len(parked)-1].Header)
	if meta.DeliveryID != "d9" || meta.Due != rep.OpenUntil {
		t.Errorf("parked %+v, want due at the breaker's close %d", meta, rep.OpenUntil)
	}
	// After the cooldown one attempt goes through; its success closes it.
	b.now = t0.Add(21 * time.Second)
	b.sender.answer = delivery.Result{StatusCode: 200, Class: delivery.Success}
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{DeliveryID: "d10"}), b.now))
	settle(w)
	var closed streams.BreakerState
	msgs := b.pub.Published()
	for _, m := range msgs {
		if m.Subject == streams.BreakerSubject {
			_ = json.Unmarshal(m.Data, &closed)
		}
	}
	if closed.OpenUntil != 0 || closed.At != b.now.UnixMilli() {
		t.Errorf("closing report %+v", closed)
	}
}

// An agent's results go to its own subjects, with who delivered.
func TestWorkerAgentSubjects(t *testing.T) {
	b := newBundle(t)
	b.hooks.hooks["w1"].TargetLabels = []string{"env=prod"}
	b.deps.By, b.deps.OutcomeSubject = "agent:a1", streams.AgentOutcomeSubject("a1")
	w := b.worker(WorkerOptions{})
	w.Handle(pulled(b.msg(streams.AgentSubject([]string{"env=prod"}, "w1"), streams.Meta{}), t0))
	settle(w)
	var o streams.Outcome
	if err := json.Unmarshal(b.pub.On(t, streams.AgentOutcomeSubject("a1")).Data, &o); err != nil {
		t.Fatal(err)
	}
	if o.By != "agent:a1" || !slices.Equal(o.TargetLabels, []string{"env=prod"}) {
		t.Errorf("outcome %+v", o)
	}
}

// While an attempt runs, the worker says so when asked (the API's
// "acquired").
func TestWorkerAnswersInFlight(t *testing.T) {
	b := newBundle(t)
	b.sender.block = make(chan struct{})
	w := b.worker(WorkerOptions{})
	done := make(chan struct{})
	go func() { defer close(done); w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0)) }()
	hermodtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := string(w.runningFor("w1")); got != `["d1"]` {
			return errorf("running %s, want [\"d1\"]", got)
		}
		if w.InFlight() != 1 {
			return errorf("in flight %d", w.InFlight())
		}
		return nil
	})
	if got := string(w.runningFor("w2")); got != `[]` {
		t.Errorf("running for another webhook %s", got)
	}
	close(b.sender.block)
	<-done
	settle(w)
	if got := string(w.runningFor("w1")); got != `[]` || w.InFlight() != 0 {
		t.Errorf("after the attempt: running %s, in flight %d", got, w.InFlight())
	}
}

// A long request keeps its lease: it is renewed every third of it.
func TestKeepLease(t *testing.T) {
	j := &hermodtest.Journal{}
	m := &hermodtest.FakeMsg{J: j}
	stop := keepLease(m, time.Second, 30*time.Millisecond)
	hermodtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(j.All()); n < 2 {
			return errorf("%d renewals", n)
		}
		return nil
	})
	stop()
	// Only a request that may outlast half the lease needs it.
	for _, c := range []struct {
		timeout, ttl time.Duration
		want         bool
	}{{time.Second, 30 * time.Millisecond, true}, {10 * time.Millisecond, 30 * time.Millisecond, false},
		{30 * time.Second, 60 * time.Second, false}, {31 * time.Second, 60 * time.Second, true}} {
		if got := needsKeepalive(c.timeout, c.ttl); got != c.want {
			t.Errorf("timeout %s, lease %s: %v", c.timeout, c.ttl, got)
		}
	}
}

// A dead letter that cannot be stored leaves the message unsettled, even
// when its outcome was.
func TestWorkerDeadNotStoredLeavesTheMessage(t *testing.T) {
	b := newBundle(t)
	b.sender.answer = delivery.Result{StatusCode: 400, Class: delivery.Terminal}
	b.pub.Fail = map[string]bool{streams.DeadSubject("w1"): true}
	b.worker(WorkerOptions{}).Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	if slices.Contains(b.j.All(), "ack") || slices.Contains(b.j.All(), "term") {
		t.Errorf("settled a dead delivery whose dead letter was not stored: %v", b.j.All())
	}
}

// A webhook's format renders the body that is sent (and signed: the client
// signs what it sends); the renderer is compiled once per webhook change.
func TestWorkerRendersTheFormat(t *testing.T) {
	b := newBundle(t)
	hook := *b.hooks.hooks["w1"]
	hook.Format = formats.Template
	hook.FormatOptions = &formats.Options{Template: `{text: .id}`}
	b.hooks.hooks["w1"] = &hook
	w := b.worker(WorkerOptions{})
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	settle(w)
	if got := string(b.sender.calls[0].Body); got != `{"text":"e1"}` {
		t.Errorf("sent %s, want the rendered body", got)
	}
	r1 := w.prep.get(&hook).r
	r2 := w.prep.get(&hook).r
	same := hook // an agent's next heartbeat: a new, equal webhook
	same.FormatOptions = &formats.Options{Template: `{text: .id}`}
	r3 := w.prep.get(&same).r
	changed := hook
	changed.FormatOptions = &formats.Options{Template: `{t: .id}`}
	r4 := w.prep.get(&changed).r
	if r1 != r2 || r1 != r3 || r1 == r4 {
		t.Error("the renderer is not compiled once per change of the format")
	}
}

// A template that fails on an event makes the delivery dead, without an
// attempt and without a retry, saying why.
// A delivery older than HERMOD_MAX_HOLD that meets an open breaker is
// dead (expired), not parked again: an endpoint that keeps failing would
// otherwise keep every delivery to it on the delay subject.
func TestWorkerBreakerExpiresOldDeliveries(t *testing.T) {
	b := newBundle(t)
	b.sender.answer = delivery.Result{StatusCode: 500, Class: delivery.Retryable}
	w := b.worker(WorkerOptions{Isolation: NewIsolation(IsolationOptions{Threshold: 1, Cooldown: 20 * time.Second})})
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{DeliveryID: "d0"}), t0))
	calls := b.sender.count()
	old := t0.Add(-DefaultRules.MaxHold - time.Minute).UnixMilli()
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{DeliveryID: "d-old", EventID: "e1", EventType: "deployment.applied", CreatedAt: old}), t0))
	if b.sender.count() != calls {
		t.Error("attempted through an open breaker")
	}
	dl := b.pub.On(t, streams.DeadSubject("w1"))
	if dl.Header.Get(streams.HdrDelivery) != "d-old" || dl.Header.Get(streams.HdrReason) != string(streams.ReasonExpired) ||
		!strings.Contains(dl.Header.Get(streams.HdrError), "HERMOD_MAX_HOLD") {
		t.Errorf("dead letter %v", dl.Header)
	}
	for _, m := range b.pub.Published() {
		if meta, err := streams.ParseMeta(m.Header); err == nil && meta.DeliveryID == "d-old" && m.Subject == streams.DelaySubject("w1") {
			t.Error("the old delivery was parked again")
		}
	}
}

func TestWorkerUnrenderableIsDead(t *testing.T) {
	b := newBundle(t)
	b.hooks.hooks["w1"].Format = formats.Template
	b.hooks.hooks["w1"].FormatOptions = &formats.Options{Template: `.data.missing | tonumber`}
	b.worker(WorkerOptions{}).Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	if b.sender.count() != 0 {
		t.Error("attempted a delivery its format cannot render")
	}
	wantJournal(t, b, "publish hermod.results.out", "puback hermod.results.out",
		"publish hermod.dead.w1", "puback hermod.dead.w1", "ack")
	o := outcomeOf(t, b)
	if o.Reason != streams.ReasonUnrenderable || !strings.Contains(o.Error, "format template: template:") {
		t.Errorf("outcome %+v", o)
	}
	if got := b.pub.On(t, streams.DeadSubject("w1")).Header.Get(streams.HdrReason); got != "unrenderable" {
		t.Errorf("dead letter reason %q", got)
	}
}
