// Package deliverer takes deliveries from the shared durable pull consumer,
// makes the HTTP attempt, publishes the outcome to the results stream, and
// only then acks. Everything that must wait (backoff, Retry-After, an open
// breaker, a saturated webhook, a paused webhook) is moved out of the
// consumer's ack-pending window: to the delay subjects (released by the
// scheduler when due) or the held stream (released on resume).
package deliverer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// MaxLostLeases is how many lease expiries without an outcome make a
// delivery dead ("abandoned").
const MaxLostLeases = 5

// Webhooks finds webhooks; *index.Index implements it.
type Webhooks interface {
	Get(id string) (*webhooks.Webhook, bool)
	// Refresh reloads one webhook from the store (nil, nil: it is gone).
	Refresh(ctx context.Context, id string) (*webhooks.Webhook, error)
}

// Options tune the deliverer.
type Options struct {
	Concurrency      int           // HTTP attempts at once (HERMOD_DELIVERY_CONCURRENCY)
	WebhookInflight  int           // per-webhook cap (HERMOD_WEBHOOK_MAX_INFLIGHT)
	AcquireTTL       time.Duration // lease (HERMOD_ACQUIRE_TTL)
	MaxHold          time.Duration // HERMOD_MAX_HOLD
	BreakerThreshold int           // consecutive retryable failures that open the breaker
	BreakerCooldown  time.Duration
	ReleaseInterval  time.Duration // how often held deliveries are checked
	By               string        // "broker"
	// OutcomeSubject and BreakerSubject are where results go (default the
	// broker's; an agent publishes on its own subjects).
	OutcomeSubject, BreakerSubject string
	// Allowed, when set, is asked before every delivery; false (an agent the
	// control plane refused) leaves the message unsettled: its lease expires
	// and another deliverer or agent takes it.
	Allowed func() bool
}

// Deliverer is the broker delivery stage.
type Deliverer struct {
	js     jetstream.JetStream
	hooks  Webhooks
	client *delivery.Client
	log    zerolog.Logger
	m      *metrics.Metrics
	opts   Options

	limits   sync.Map // webhook id -> *webhookState
	release  chan struct{}
	inflight atomic.Int64
	running  sync.Map // delivery id -> webhook id, while an attempt runs
	settle   chan settlement
}

// settlement is a delivered message waiting for its outcome's PubAck
// before it is acked; settling off the worker frees it for the next attempt.
type settlement struct {
	msg      jetstream.Msg
	outcome  *nats.Msg
	future   jetstream.PubAckFuture
	delivery string
}

type webhookState struct {
	inflight  atomic.Int32
	mu        sync.Mutex
	failures  int
	openUntil time.Time
	reported  bool // an open breaker was reported and not yet its closing
}

// New builds a deliverer.
func New(js jetstream.JetStream, hooks Webhooks, client *delivery.Client, log zerolog.Logger, m *metrics.Metrics, opts Options) *Deliverer {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.WebhookInflight <= 0 {
		opts.WebhookInflight = 32
	}
	if opts.AcquireTTL <= 0 {
		opts.AcquireTTL = 60 * time.Second
	}
	if opts.MaxHold <= 0 {
		opts.MaxHold = 7 * 24 * time.Hour
	}
	if opts.BreakerThreshold <= 0 {
		opts.BreakerThreshold = 10
	}
	if opts.BreakerCooldown <= 0 {
		opts.BreakerCooldown = 30 * time.Second
	}
	if opts.ReleaseInterval <= 0 {
		opts.ReleaseInterval = 500 * time.Millisecond
	}
	if opts.By == "" {
		opts.By = "broker"
	}
	if opts.OutcomeSubject == "" {
		opts.OutcomeSubject = streams.OutcomeSubject
	}
	if opts.BreakerSubject == "" {
		opts.BreakerSubject = streams.BreakerSubject
	}
	return &Deliverer{js: js, hooks: hooks, client: client, log: log, m: m, opts: opts, release: make(chan struct{}, 1),
		settle: make(chan settlement, 4*opts.Concurrency)}
}

// WebhookChanged is called by the index when a webhook changed; a resume
// releases its held deliveries at once.
func (d *Deliverer) WebhookChanged(id string, w *webhooks.Webhook) {
	if w == nil || w.Enabled {
		select {
		case d.release <- struct{}{}:
		default:
		}
	}
}

// InFlight is the number of HTTP attempts running.
func (d *Deliverer) InFlight() int64 { return d.inflight.Load() }

// Run delivers until ctx ends; then it stops taking work and waits for the
// attempts in flight (the caller bounds that with its shutdown timeout).
func (d *Deliverer) Run(ctx context.Context) error {
	cons, err := d.js.CreateOrUpdateConsumer(ctx, streams.DeliveriesStream, streams.DelivererConsumerConfig(d.opts.AcquireTTL))
	if err != nil {
		return fmt.Errorf("deliverer consumer: %w", err)
	}
	sched, err := d.js.CreateOrUpdateConsumer(ctx, streams.DeliveriesStream, streams.SchedulerConsumerConfig())
	if err != nil {
		return fmt.Errorf("scheduler consumer: %w", err)
	}
	held, err := d.js.Stream(ctx, streams.HeldStream)
	if err != nil {
		return fmt.Errorf("held stream: %w", err)
	}
	onErr := func(err error) { d.log.Warn().Err(err).Msg("pull interrupted; re-pulling") }
	work := make(chan streams.Pulled)
	drainWork, err := streams.Feed(cons, d.opts.Concurrency, work, onErr)
	if err != nil {
		return fmt.Errorf("deliverer consume: %w", err)
	}
	delayed := make(chan streams.Pulled)
	drainDelayed, err := streams.Feed(sched, 256, delayed, onErr)
	if err != nil {
		drainWork()
		return fmt.Errorf("scheduler consume: %w", err)
	}
	waitWorkers := d.startWorkers(work)
	var swg sync.WaitGroup
	for i := 0; i < 4; i++ {
		swg.Add(1)
		go func() {
			defer swg.Done()
			for m := range delayed {
				d.schedule(m)
			}
		}()
	}
	ctl, err := d.js.Conn().Subscribe(streams.InFlightSubject(nil), d.answerInFlight)
	if err != nil {
		return fmt.Errorf("in-flight subscription: %w", err)
	}
	defer func() { _ = ctl.Unsubscribe() }()
	relCtx, relCancel := context.WithCancel(context.Background())
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		d.releaseLoop(relCtx, held)
	}()

	<-ctx.Done()
	// Stop taking work first, then let the attempts in hand finish.
	relCancel()
	rwg.Wait()
	drainDelayed()
	drainWork()
	swg.Wait()
	waitWorkers()
	return nil
}

// startWorkers runs the delivery workers on work and the settlers; the
// returned function waits until work is closed and everything is settled.
func (d *Deliverer) startWorkers(work <-chan streams.Pulled) (wait func()) {
	var settlers sync.WaitGroup
	for i := 0; i < 2; i++ {
		settlers.Add(1)
		go func() {
			defer settlers.Done()
			for s := range d.settle {
				d.settleOne(s)
			}
		}()
	}
	var wg sync.WaitGroup
	for i := 0; i < d.opts.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				d.deliver(m)
			}
		}()
	}
	return func() {
		wg.Wait()
		close(d.settle)
		settlers.Wait()
	}
}

// RunConsumers delivers from existing consumers of the deliveries stream
// (an agent's label sets), looked up, never created: names is asked every
// interval, so a label set granted or first used later is picked up and one
// no longer named is drained. No scheduler or releaser runs here: delayed
// and held deliveries are the control plane's.
func (d *Deliverer) RunConsumers(ctx context.Context, names func() []string, interval time.Duration) error {
	work := make(chan streams.Pulled)
	waitWorkers := d.startWorkers(work)
	feeds := map[string]func(){}
	onErr := func(err error) { d.log.Warn().Err(err).Msg("pull interrupted; re-pulling") }
	refresh := func() {
		want := map[string]bool{}
		for _, n := range names() {
			want[n] = true
			if feeds[n] != nil {
				continue
			}
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			cons, err := d.js.Consumer(lctx, streams.DeliveriesStream, n)
			cancel()
			if err != nil {
				d.log.Warn().Err(err).Str("consumer", n).Msg("label set consumer not available yet")
				continue
			}
			// The in-flight questions about this label set (and no other).
			ctl, err := d.js.Conn().Subscribe(streams.InFlightPrefix+n, d.answerInFlight)
			if err != nil {
				d.log.Warn().Err(err).Str("consumer", n).Msg("cannot answer in-flight questions for label set")
				continue
			}
			drain, err := streams.FeedShared(cons, d.opts.Concurrency, work, onErr)
			if err != nil {
				_ = ctl.Unsubscribe()
				d.log.Warn().Err(err).Str("consumer", n).Msg("cannot pull from label set")
				continue
			}
			feeds[n] = func() { drain(); _ = ctl.Unsubscribe() }
			d.log.Info().Str("consumer", n).Msg("taking deliveries of a label set")
		}
		for n, drain := range feeds {
			if !want[n] {
				drain()
				delete(feeds, n)
				d.log.Info().Str("consumer", n).Msg("no longer taking deliveries of a label set")
			}
		}
	}
	refresh()
	t := time.NewTicker(interval)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
			refresh()
		}
	}
	for _, drain := range feeds {
		drain()
	}
	close(work)
	waitWorkers()
	return nil
}

// subjectMatches refuses a delivery message whose Hermod-Webhook header
// names another webhook than its subject. Subjects are what NATS
// permissions guard: an agent may park deliveries only on its own
// webhooks' subjects, so a header naming another webhook is forged (or
// corrupt) and must never be delivered with that webhook's url and secret.
func (d *Deliverer) subjectMatches(subject string, meta streams.Meta) bool {
	if streams.SubjectWebhookID(subject) == meta.WebhookID {
		return true
	}
	d.log.Warn().Str("subject", subject).Str("webhook_id", meta.WebhookID).Str("delivery_id", meta.DeliveryID).
		Msg("dropping a delivery message whose webhook does not match its subject (forged or corrupt)")
	return false
}

// answerInFlight tells the API which deliveries of a webhook are being attempted.
func (d *Deliverer) answerInFlight(m *nats.Msg) {
	want := string(m.Data)
	ids := []string{}
	d.running.Range(func(k, v any) bool {
		if v.(string) == want {
			ids = append(ids, k.(string))
		}
		return true
	})
	data, _ := json.Marshal(ids)
	_ = m.Respond(data)
}

func (d *Deliverer) state(id string) *webhookState {
	if s, ok := d.limits.Load(id); ok {
		return s.(*webhookState)
	}
	s, _ := d.limits.LoadOrStore(id, &webhookState{})
	return s.(*webhookState)
}

// lookup finds a webhook, asking the store on an index miss (a webhook
// created a moment ago). gone is true when it no longer exists.
func (d *Deliverer) lookup(id string) (w *webhooks.Webhook, gone bool, err error) {
	if w, ok := d.hooks.Get(id); ok {
		return w, false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err = d.hooks.Refresh(ctx, id)
	if err != nil {
		return nil, false, err
	}
	return w, w == nil, nil
}

func (d *Deliverer) deliver(p streams.Pulled) {
	msg := jetstream.Msg(p)
	if d.opts.Allowed != nil && !d.opts.Allowed() {
		return
	}
	// The lease started when the message arrived, not now: one that waited
	// for a worker nearly the whole TTL is left to expire and be redelivered
	// (an attempt now could run beside its redelivery); one that waited over
	// half of it is renewed.
	if waited := time.Since(p.At); waited > d.opts.AcquireTTL*9/10 {
		d.log.Warn().Dur("waited", waited).Msg("delivery waited out its lease for a free worker; left to redelivery")
		return
	} else if waited > d.opts.AcquireTTL/2 {
		_ = msg.InProgress()
	}
	meta, err := streams.ParseMeta(msg.Headers())
	if err != nil {
		d.log.Error().Err(err).Str("subject", msg.Subject()).Msg("dropping an unreadable delivery message")
		_ = msg.Term()
		return
	}
	if !d.subjectMatches(msg.Subject(), meta) {
		_ = msg.Term()
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	lost := meta.Lost + int(md.NumDelivered) - 1
	w, gone, err := d.lookup(meta.WebhookID)
	if err != nil {
		// The store is unreachable and the webhook is not in the index: wait outside the window.
		d.park(msg, meta, md.Sequence.Stream, lost, time.Second, "lookup")
		return
	}
	if gone {
		d.log.Info().Str("delivery_id", meta.DeliveryID).Str("webhook_id", meta.WebhookID).Msg("webhook deleted; delivery dropped")
		_ = msg.Ack()
		return
	}
	if lost >= MaxLostLeases {
		o := d.outcome(meta, w, streams.StatusDead, meta.Attempts)
		o.Reason, o.Error = streams.ReasonAbandoned, fmt.Sprintf("lease expired %d times without an outcome", lost)
		d.finishDead(msg, meta, o)
		return
	}
	if !w.Enabled {
		d.hold(msg, meta, md.Sequence.Stream, lost)
		return
	}
	if !streams.IsReadySubject(msg.Subject(), w.ID, w.TargetLabels) {
		// Not where this webhook's deliveries go now (its target labels
		// changed while it waited, or it was put on the wrong subject): the
		// scheduler sends it to whoever delivers the webhook.
		d.log.Info().Str("delivery_id", meta.DeliveryID).Str("subject", msg.Subject()).
			Str("to", streams.SubjectFor(w.ID, w.TargetLabels, true)).Msg("delivery rerouted")
		d.park(msg, meta, md.Sequence.Stream, lost, 0, "route")
		return
	}
	st := d.state(w.ID)
	now := time.Now()
	st.mu.Lock()
	open := now.Before(st.openUntil)
	until := st.openUntil
	st.mu.Unlock()
	if open {
		d.park(msg, meta, md.Sequence.Stream, lost, until.Sub(now), "breaker")
		return
	}
	if int(st.inflight.Add(1)) > d.opts.WebhookInflight {
		st.inflight.Add(-1)
		d.park(msg, meta, md.Sequence.Stream, lost, 100*time.Millisecond, "saturated")
		return
	}
	d.attempt(msg, meta, md.Sequence.Stream, lost, w, st)
}

func (d *Deliverer) attempt(msg jetstream.Msg, meta streams.Meta, seq uint64, lost int, w *webhooks.Webhook, st *webhookState) {
	d.inflight.Add(1)
	d.running.Store(meta.DeliveryID, w.ID)
	defer d.running.Delete(meta.DeliveryID)
	if d.m != nil {
		d.m.InFlight.Inc()
	}
	stop := make(chan struct{})
	if timeout := time.Duration(w.TimeoutSeconds) * time.Second; timeout > d.opts.AcquireTTL/2 {
		go func() { // keep the lease while a long request runs
			t := time.NewTicker(d.opts.AcquireTTL / 3)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					_ = msg.InProgress()
				}
			}
		}()
	}
	started := time.Now()
	res := d.client.Send(context.Background(), delivery.Request{URL: w.URL, AuthHeader: w.AuthHeader,
		Secrets: w.Secrets(started), DeliveryID: meta.DeliveryID, EventType: meta.EventType, Body: msg.Data(),
		Timeout: time.Duration(w.TimeoutSeconds) * time.Second})
	close(stop)
	st.inflight.Add(-1)
	d.inflight.Add(-1)
	if d.m != nil {
		d.m.InFlight.Dec()
		d.m.AttemptDuration.Observe(res.Duration.Seconds())
	}
	d.breaker(w.ID, st, res.Class)

	failed := meta.Attempts
	if res.Class != delivery.Success {
		failed++
	}
	dec := delivery.Decide(res.Class, res.StatusCode, failed, w.MaxAttempts(), res.RetryAfter, delivery.Jitter())
	o := d.outcome(meta, w, "", meta.Attempts+1)
	o.PayloadSize = len(msg.Data())
	o.StartedAt, o.FinishedAt = started.UnixMilli(), started.Add(res.Duration).UnixMilli()
	o.StatusCode, o.DurationMs = res.StatusCode, res.Duration.Milliseconds()
	o.AttemptStatus = streams.StatusFailed
	if res.Class == delivery.Success {
		o.AttemptStatus = streams.StatusSuccess
	}
	if res.Err != nil {
		o.Error = res.Err.Error()
	}
	ev := d.log.Info()
	if res.Class != delivery.Success {
		ev = d.log.Warn()
	}
	ev.Str("delivery_id", meta.DeliveryID).Str("webhook_id", w.ID).Int("attempt", o.Attempt).
		Int("status_code", res.StatusCode).Int64("duration_ms", o.DurationMs).Str("outcome", dec.Action.String()).
		Str("error", o.Error).Msg("delivery attempt")

	switch dec.Action {
	case delivery.Ack:
		o.Status = streams.StatusSuccess
		om := d.outcomeMsg(&o)
		f, err := d.js.PublishMsgAsync(om)
		if err != nil {
			f = nil // settleOne publishes it again with retries
		}
		d.settle <- settlement{msg: msg, outcome: om, future: f, delivery: meta.DeliveryID}
		if d.m != nil {
			d.m.Attempts.WithLabelValues("success").Inc()
			if meta.CreatedAt > 0 {
				d.m.EndToEnd.Observe(time.Since(time.UnixMilli(meta.CreatedAt)).Seconds())
			}
		}
	case delivery.Retry:
		o.Status = streams.StatusFailed
		due := time.Now().Add(dec.Delay)
		o.NextRetryAt = due.UnixMilli()
		next := meta
		next.Attempts, next.Lost, next.Due = failed, lost, due.UnixMilli()
		copyMsg := streams.NewMsg(streams.DelaySubject(w.ID), streams.RetryMsgID(meta, seq), next, msg.Data())
		if err := d.publishAll(d.outcomeMsg(&o), copyMsg); err != nil {
			d.log.Error().Err(err).Str("delivery_id", meta.DeliveryID).Msg("retry not scheduled; the lease will expire and the delivery is retried")
			return
		}
		_ = msg.Ack()
		if d.m != nil {
			d.m.Attempts.WithLabelValues("retry").Inc()
		}
	case delivery.DeadLetter:
		o.Status = streams.StatusDead
		o.Reason = dec.Reason
		d.finishDead(msg, meta, o)
	}
}

// settleOne acks a delivered message once its outcome is in the results
// stream (retrying the publish for up to 15 s); if that fails the lease
// expires and the delivery is attempted again (at-least-once).
func (d *Deliverer) settleOne(s settlement) {
	if s.future != nil {
		select {
		case <-s.future.Ok():
			_ = s.msg.Ack()
			return
		case <-s.future.Err():
		}
	}
	if err := d.publishAll(s.outcome); err != nil {
		d.log.Error().Err(err).Str("delivery_id", s.delivery).Msg("outcome not recorded; the lease will expire and the delivery is retried")
		return
	}
	_ = s.msg.Ack()
}

// breaker counts consecutive retryable failures; at the threshold it opens
// for the cooldown, after which one success closes it.
// Changes are reported to the recorder, so the webhook shows as degraded
// while its breaker is open.
func (d *Deliverer) breaker(webhookID string, st *webhookState, c delivery.Class) {
	st.mu.Lock()
	var report *streams.BreakerState
	switch c {
	case delivery.Success:
		st.failures = 0
		st.openUntil = time.Time{}
		if st.reported {
			st.reported = false
			report = &streams.BreakerState{V: streams.SchemaVersion, WebhookID: webhookID, At: time.Now().UnixMilli()}
		}
	case delivery.Retryable:
		st.failures++
		if st.failures >= d.opts.BreakerThreshold {
			st.openUntil = time.Now().Add(d.opts.BreakerCooldown)
			st.failures = d.opts.BreakerThreshold - 1 // half-open: one more failure reopens
			st.reported = true
			report = &streams.BreakerState{V: streams.SchemaVersion, WebhookID: webhookID,
				OpenUntil: st.openUntil.UnixMilli(), At: time.Now().UnixMilli()}
			d.log.Warn().Str("webhook_id", webhookID).Time("open_until", st.openUntil).Msg("failure breaker open")
		}
	}
	st.mu.Unlock()
	if report != nil {
		data, _ := json.Marshal(report)
		if _, err := d.js.PublishMsgAsync(&nats.Msg{Subject: d.opts.BreakerSubject, Data: data}); err != nil {
			d.log.Warn().Err(err).Str("webhook_id", webhookID).Msg("breaker report not published")
		}
	}
}

func (d *Deliverer) outcome(meta streams.Meta, w *webhooks.Webhook, status string, attempt int) streams.Outcome {
	return streams.Outcome{V: streams.SchemaVersion, DeliveryID: meta.DeliveryID, WebhookID: meta.WebhookID,
		EventID: meta.EventID, EventType: meta.EventType, Epoch: meta.Epoch, Attempt: attempt, Status: status,
		By: d.opts.By, CreatedAt: meta.CreatedAt, PayloadSize: 0, TargetLabels: targetLabels(w)}
}

func targetLabels(w *webhooks.Webhook) []string {
	if w == nil {
		return nil
	}
	return w.TargetLabels
}

func (d *Deliverer) outcomeMsg(o *streams.Outcome) *nats.Msg {
	data, _ := json.Marshal(o)
	return &nats.Msg{Subject: d.opts.OutcomeSubject, Data: data}
}

// finishDead publishes the dead outcome and the dead letter, then acks.
func (d *Deliverer) finishDead(msg jetstream.Msg, meta streams.Meta, o streams.Outcome) {
	o.Status = streams.StatusDead
	o.PayloadSize = len(msg.Data())
	if o.FinishedAt == 0 {
		o.FinishedAt = time.Now().UnixMilli()
	}
	if err := d.publishAll(d.outcomeMsg(&o), deadLetter(meta, msg.Data(), &o)); err != nil {
		d.log.Error().Err(err).Str("delivery_id", meta.DeliveryID).Msg("dead letter not recorded; the lease will expire and it is retried")
		return
	}
	_ = msg.Ack()
	d.log.Warn().Str("delivery_id", meta.DeliveryID).Str("webhook_id", meta.WebhookID).Str("reason", o.Reason).Msg("delivery dead")
	if d.m != nil {
		d.m.Attempts.WithLabelValues("dead").Inc()
		d.m.DeadLetters.Inc()
	}
}

// move republishes next (a copy of msg's delivery) on subject and acks
// msg; when the publish fails it leaves msg unsettled and returns false.
func (d *Deliverer) move(msg jetstream.Msg, next streams.Meta, subject, msgID string) bool {
	if err := d.publishAll(streams.NewMsg(subject, msgID, next, msg.Data())); err != nil {
		d.log.Warn().Err(err).Str("delivery_id", next.DeliveryID).Str("subject", subject).Msg("move failed; the delivery stays where it is")
		return false
	}
	_ = msg.Ack()
	return true
}

// park moves a delivery out of the window for delay, without spending an
// attempt; lost carries the leases lost so far.
func (d *Deliverer) park(msg jetstream.Msg, meta streams.Meta, seq uint64, lost int, delay time.Duration, reason string) {
	next := meta
	next.Lost = lost
	next.Due = time.Now().Add(delay).UnixMilli()
	if d.move(msg, next, streams.DelaySubject(meta.WebhookID), streams.RetryMsgID(meta, seq)+":p") && d.m != nil {
		d.m.Parked.WithLabelValues(reason).Inc()
	}
}

// hold parks a delivery of a paused webhook in the held stream.
func (d *Deliverer) hold(msg jetstream.Msg, meta streams.Meta, seq uint64, lost int) bool {
	next := meta
	next.Lost, next.Due = lost, 0
	if next.HeldSince == 0 {
		next.HeldSince = time.Now().UnixMilli()
	}
	ok := d.move(msg, next, streams.HeldSubject(meta.WebhookID), streams.RetryMsgID(meta, seq)+":h")
	if ok && d.m != nil {
		d.m.Parked.WithLabelValues("paused").Inc()
	}
	return ok
}

// deadLetter is the dead-letter copy of a delivery.
func deadLetter(meta streams.Meta, body []byte, o *streams.Outcome) *nats.Msg {
	m := streams.NewMsg(streams.DeadSubject(meta.WebhookID), "", meta, body)
	delete(m.Header, streams.HdrMsgID)
	m.Header.Set("Hermod-Reason", o.Reason)
	m.Header.Set("Hermod-Error", o.Error)
	return m
}

// publishAll publishes msgs and waits for every acknowledgement, retrying
// for up to 15 s (a JetStream leader election takes seconds).
func (d *Deliverer) publishAll(msgs ...*nats.Msg) error {
	deadline := time.Now().Add(15 * time.Second)
	pending := msgs
	for {
		var failed []*nats.Msg
		futures := make([]jetstream.PubAckFuture, 0, len(pending))
		var lastErr error
		for _, m := range pending {
			f, err := d.js.PublishMsgAsync(m)
			if err != nil {
				failed = append(failed, m)
				lastErr = err
				continue
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				failed = append(failed, f.Msg())
				lastErr = err
			}
		}
		if len(failed) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("publish: %w", lastErr)
		}
		time.Sleep(200 * time.Millisecond)
		pending = failed
	}
}

// schedule handles one delayed delivery: release it when due.
func (d *Deliverer) schedule(msg jetstream.Msg) {
	meta, err := streams.ParseMeta(msg.Headers())
	if err != nil {
		d.log.Error().Err(err).Msg("dropping an unreadable delayed delivery")
		_ = msg.Term()
		return
	}
	if !d.subjectMatches(msg.Subject(), meta) {
		_ = msg.Term()
		return
	}
	if wait := time.Until(time.UnixMilli(meta.Due)); wait > 0 {
		_ = msg.NakWithDelay(wait)
		return
	}
	w, gone, err := d.lookup(meta.WebhookID)
	if err != nil {
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if gone {
		_ = msg.Ack()
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if !w.Enabled {
		if !d.hold(msg, meta, md.Sequence.Stream, meta.Lost) {
			_ = msg.NakWithDelay(time.Second)
		}
		return
	}
	next := meta
	next.Due = 0
	// Back to whoever delivers this webhook: broker deliverers or its label set's agents.
	ready := streams.SubjectFor(w.ID, w.TargetLabels, true)
	if err := d.publishAll(streams.NewMsg(ready, streams.RetryMsgID(meta, md.Sequence.Stream)+":r", next, msg.Data())); err != nil {
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.Ack()
}

func (d *Deliverer) releaseLoop(ctx context.Context, held jetstream.Stream) {
	t := time.NewTicker(d.opts.ReleaseInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.release:
		}
		if err := d.releaseHeld(ctx, held); err != nil && ctx.Err() == nil {
			d.log.Warn().Err(err).Msg("releasing held deliveries failed")
		}
	}
}

// releaseHeld moves the held deliveries of enabled webhooks back to the
// deliver subjects, drops those of deleted webhooks, and kills those held
// longer than MaxHold. Several deliverers may do this at once: republishes
// are deduplicated by Nats-Msg-Id.
func (d *Deliverer) releaseHeld(ctx context.Context, held jetstream.Stream) error {
	info, err := held.Info(ctx, jetstream.WithSubjectFilter(streams.HeldPrefix+">"))
	if err != nil {
		return err
	}
	for subject := range info.State.Subjects {
		id := subject[len(streams.HeldPrefix):]
		w, gone, err := d.lookup(id)
		if err != nil {
			continue
		}
		if gone {
			_ = held.Purge(ctx, jetstream.WithPurgeSubject(subject))
			continue
		}
		if err := d.drainSubject(ctx, held, subject, w); err != nil {
			return err
		}
	}
	return nil
}

func (d *Deliverer) drainSubject(ctx context.Context, held jetstream.Stream, subject string, w *webhooks.Webhook) error {
	var seq uint64 = 1
	for ctx.Err() == nil {
		raw, err := held.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		seq = raw.Sequence + 1
		meta, err := streams.ParseMeta(raw.Header)
		if err != nil || !d.subjectMatches(raw.Subject, meta) {
			_ = held.DeleteMsg(ctx, raw.Sequence)
			continue
		}
		if !w.Enabled {
			if meta.HeldSince == 0 || time.Since(time.UnixMilli(meta.HeldSince)) < d.opts.MaxHold {
				return nil // oldest first: nothing further has expired
			}
			o := d.outcome(meta, w, streams.StatusDead, meta.Attempts)
			o.Reason = streams.ReasonExpired
			o.Error = "held longer than HERMOD_MAX_HOLD (" + d.opts.MaxHold.String() + ") while paused"
			o.FinishedAt, o.PayloadSize = time.Now().UnixMilli(), len(raw.Data)
			if err := d.publishAll(d.outcomeMsg(&o), deadLetter(meta, raw.Data, &o)); err != nil {
				return err
			}
			_ = held.DeleteMsg(ctx, raw.Sequence)
			continue
		}
		next := meta
		next.HeldSince = 0
		id := meta.DeliveryID + ":held:" + strconv.FormatUint(raw.Sequence, 10)
		if err := d.publishAll(streams.NewMsg(streams.SubjectFor(w.ID, w.TargetLabels, true), id, next, raw.Data)); err != nil {
			return err
		}
		if err := held.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			d.log.Debug().Err(err).Uint64("seq", raw.Sequence).Msg("held message already gone")
		}
	}
	return nil
}
