package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// Sender makes one HTTP attempt; *delivery.Client implements it.
type Sender interface {
	Send(ctx context.Context, r delivery.Request) delivery.Result
}

// WorkerOptions tune a Worker.
type WorkerOptions struct {
	Concurrency int // HTTP attempts at once (64 when <= 0)
	// Isolation is the per-webhook in-flight limit and breaker (defaults,
	// with DefaultSlotWait, when nil).
	Isolation *Isolation
	// Refused, when set, is asked before every delivery; true (an agent
	// the control plane refused) leaves the message unsettled: its lease
	// expires and another deliverer or agent takes it.
	Refused func() bool
}

// Worker takes ready deliveries, attempts them and settles them.
type Worker struct {
	deps    Deps
	send    Sender
	iso     *Isolation
	conc    int
	refused func() bool

	inflight atomic.Int64
	waiting  atomic.Int32 // workers in Handle's acquire
	running  sync.Map     // delivery id -> webhook id, while an attempt runs
	settle   chan settlement
	prep     preparations
	batch    batchLimits // of the outcome batches the settlers publish
}

// NewWorker builds a worker.
func NewWorker(deps Deps, send Sender, opts WorkerOptions) *Worker {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.Isolation == nil {
		opts.Isolation = NewIsolation(IsolationOptions{SlotWait: DefaultSlotWait})
	}
	opts.Isolation.m = deps.Metrics
	opts.Isolation.setWorkers(opts.Concurrency)
	return &Worker{deps: deps.withDefaults(), send: send, iso: opts.Isolation, conc: opts.Concurrency,
		refused: opts.Refused, settle: make(chan settlement, 4*opts.Concurrency), batch: defaultBatchLimits}
}

// InFlight is the number of HTTP attempts running.
func (w *Worker) InFlight() int64 { return w.inflight.Load() }

// JetStream is what the components' Run methods need of JetStream:
// jetstream.JetStream implements it.
type JetStream interface {
	Publisher
	CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error)
	Consumer(ctx context.Context, stream, name string) (jetstream.Consumer, error)
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
	Conn() *nats.Conn
}

// Run delivers from the broker deliverers' shared consumer until ctx ends;
// then it stops taking work and waits for the attempts in flight (the
// caller bounds that with its shutdown timeout).
func (w *Worker) Run(ctx context.Context, js JetStream, ttl time.Duration) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, streams.DeliveriesStream, streams.DelivererConsumerConfig(ttl))
	if err != nil {
		return fmt.Errorf("deliverer consumer: %w", err)
	}
	ctl, err := js.Conn().Subscribe(streams.InFlightSubject(nil), w.answerInFlight)
	if err != nil {
		return fmt.Errorf("in-flight subscription: %w", err)
	}
	defer func() { _ = ctl.Unsubscribe() }()
	work := make(chan streams.Pulled)
	drain, err := streams.Feed(cons, w.conc, work, w.pullInterrupted)
	if err != nil {
		return fmt.Errorf("deliverer consume: %w", err)
	}
	wait := w.start(work)
	<-ctx.Done()
	// Stop taking work first, then let the attempts in hand finish.
	drain()
	wait()
	return nil
}

func (w *Worker) pullInterrupted(err error) {
	w.deps.Log.Warn().Err(err).Msg("pull interrupted; re-pulling")
}

// start runs the workers on work and the settlers; the returned function
// waits until work is closed and everything is settled.
func (w *Worker) start(work <-chan streams.Pulled) (wait func()) {
	var settlers sync.WaitGroup
	for range 2 {
		settlers.Add(1)
		go func() {
			defer settlers.Done()
			w.settleBatches()
		}()
	}
	var wg sync.WaitGroup
	for range w.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				w.Handle(p)
			}
		}()
	}
	return func() {
		wg.Wait()
		close(w.settle)
		settlers.Wait()
	}
}

// ticket is one message in a worker's hands: the facts about it and what
// carrying its decisions out needs.
type ticket struct {
	msg  jetstream.Msg
	seq  uint64 // its stream sequence
	hook *webhooks.Webhook
	f    Facts
}

// Handle decides what becomes of one ready delivery message and carries the
// decision out; when the decision is to attempt it, it attempts it and
// decides again with the result.
func (w *Worker) Handle(p streams.Pulled) {
	t := w.gather(p)
	dec := Decide(t.f)
	if dec.Kind == Attempt && !w.acquire(t) {
		// Every slot is taken and none came free in time (slots.go).
		now := w.deps.Now()
		t.f.Waited += now.Sub(t.f.Now)
		t.f.Now, t.f.Saturated, t.f.SlotLatency = now, true, w.iso.AttemptEstimate(t.hook.ID)
		dec = Decide(t.f)
	}
	if dec.RenewLease {
		_ = t.msg.InProgress()
	}
	if dec.Kind != Attempt {
		w.carry(t, dec, nil)
		return
	}
	prep := w.prep.get(t.hook)
	body, err := w.render(t, prep)
	if err != nil {
		w.iso.Release(t.hook.ID)
		if errors.Is(err, formats.ErrRunner) {
			t.f.RendererDown = true // this host's failure, not the format's
		} else {
			t.f.RenderErr = "format " + string(t.hook.Format) + ": " + err.Error()
		}
		w.carry(t, Decide(t.f), nil)
		return
	}
	w.running.Store(t.f.Meta.DeliveryID, t.hook.ID)
	defer w.running.Delete(t.f.Meta.DeliveryID) // "acquired" until its outcome is stored
	res, att := w.attempt(t, prep, body)
	w.iso.Release(t.hook.ID)
	w.breaker(t.hook.ID, res)
	t.f.Result = &Result{Class: res.Class, StatusCode: res.StatusCode, RetryAfter: res.RetryAfter}
	t.f.Now, t.f.Jitter = w.deps.Now(), delivery.Jitter()
	dec = Decide(t.f)
	w.deps.logAttempt(t, att, dec)
	w.carry(t, dec, att)
}

// gather collects the facts about a pulled message. The webhook is looked
// up only for a message that may be attempted; a slot is taken (Handle)
// only when the decision is to attempt.
func (w *Worker) gather(p streams.Pulled) ticket {
	msg := p.Msg
	t := ticket{msg: msg, f: w.deps.facts(Ready, msg.Subject(), msg.Headers())}
	t.f.Waited = t.f.Now.Sub(p.At)
	t.f.Refused = w.refused != nil && w.refused()
	if md, err := msg.Metadata(); err != nil {
		t.f.Unreadable = true
	} else {
		t.seq, t.f.Delivered = md.Sequence.Stream, md.NumDelivered
	}
	if t.f.Refused || t.f.Unreadable || t.f.Forged || t.f.Waited > t.f.Rules.AcquireTTL*9/10 {
		return t
	}
	var l Lookup
	t.hook, l = w.deps.lookup(t.f.Meta.WebhookID)
	t.f = withWebhook(t.f, t.hook, l)
	if t.hook == nil {
		return t
	}
	t.f.Routed = streams.IsReadySubject(msg.Subject(), t.hook.ID, t.hook.TargetLabels)
	t.f.BreakerOpenUntil = w.iso.OpenUntil(t.hook.ID)
	return t
}

// slotWait is how long a delivery may wait for a slot of its webhook: its
// lease stays safe (under the half that Decide renews at) without renewing.
func slotWait(f Facts) time.Duration {
	return max(f.Rules.AcquireTTL*2/5-f.Waited, 0)
}

// acquire takes a slot of t's webhook, waiting for one only while this
// worker has room to wait: at most a quarter of its workers wait at once,
// whatever their webhooks, so the others keep taking the deliveries of
// other webhooks (a busy webhook's waiters cannot hold every worker).
func (w *Worker) acquire(t ticket) bool {
	wait := slotWait(t.f)
	if w.waiting.Add(1) > int32(max(w.conc/4, 1)) {
		wait = 0
	}
	defer w.waiting.Add(-1)
	return w.iso.Acquire(t.hook.ID, wait)
}

// attempted is what an attempt adds to its outcome record.
type attempted struct {
	started time.Time
	res     delivery.Result
}

// attempt sends body (the rendered envelope), signed with the webhook's
// prepared signer, keeping the lease while it runs.
func (w *Worker) attempt(t ticket, prep *prepared, body []byte) (delivery.Result, *attempted) {
	w.inflight.Add(1)
	w.deps.Metrics.Started()
	timeout := time.Duration(t.hook.TimeoutSeconds) * time.Second
	stop := keepLease(t.msg, timeout, t.f.Rules.AcquireTTL)
	started := w.deps.Now()
	req := delivery.Request{URL: t.hook.URL, AuthHeader: t.hook.AuthHeader, Headers: t.hook.Headers,
		Signer: prep.signer(started), DeliveryID: t.f.Meta.DeliveryID, EventType: t.f.Meta.EventType,
		Body: body, Timeout: timeout, Redact: t.hook.FormatSecrets()}
	if req.Signer == nil {
		req.Secrets = t.hook.Secrets(started) // the client says what is wrong with them
	}
	res := w.send.Send(context.Background(), req)
	stop()
	w.inflight.Add(-1)
	w.deps.Metrics.Finished(res.Duration.Seconds())
	return res, &attempted{started: started, res: res}
}

// breaker feeds an attempt's class to the webhook's breaker and publishes
// a change (the recorder shows the webhook as degraded while it is open).
func (w *Worker) breaker(id string, res delivery.Result) {
	rep := w.iso.Record(id, res.Class, res.Duration, w.deps.Now())
	if rep == nil {
		return
	}
	open := rep.OpenUntil != 0
	w.deps.Metrics.Breaker(id, open)
	if open {
		w.deps.Log.Warn().Str("webhook_id", id).Time("open_until", time.UnixMilli(rep.OpenUntil)).Msg("failure breaker open")
	}
	if _, err := w.deps.Pub.PublishMsgAsync(breakerMsg(w.deps.BreakerSubject, rep)); err != nil {
		w.deps.Log.Warn().Err(err).Str("webhook_id", id).Msg("breaker report not published")
	}
}
