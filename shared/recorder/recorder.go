// Package recorder is the one writer of delivery outcomes: it consumes the
// results stream and writes records, attempt history and statistics to Redis
// in batches. A batch is acked only after Redis took it; while Redis is down
// the outcomes wait in the stream, so none is lost.
//
// A results message on an outcome subject carries one outcome, or several
// when it has the streams.HdrBatch header (deliverers and agents publish
// their success outcomes in batches). A batch message is acked once all its
// outcomes are written. A broken entry of a batch is logged and dropped;
// the batch's other outcomes are written. A batch holding an agent's
// outcome for a delivery not known yet has its other outcomes written at
// once and comes back later (nakked) for that one: its outcomes are then
// written again, which changes nothing (the merge moves a record only
// forward, and keeps an attempt and counts it once).
package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// Writer applies batches; *store.Store implements it.
type Writer interface {
	ApplyBatch(ctx context.Context, b store.Batch, lim store.Limits) error
	SweepIndexes(ctx context.Context, retention time.Duration) error
}

// Options tune the recorder.
type Options struct {
	Limits    store.Limits
	BatchSize int           // outcomes per write (default 1000; a batch message counts as its outcomes)
	MaxDelay  time.Duration // how long a partial batch may wait (default 5ms)
	Sweep     time.Duration // index sweep interval (default 1m)
	// OnError is called with each failed write (metrics).
	OnError func(error)
	// Agents checks the results agents publish on their own subjects;
	// without it such results are refused.
	Agents AgentChecker
	// Recorded, when set, is given each batch once Redis took it, before
	// its messages are acked (the operational events' watcher's Enqueue).
	// It must not block: the acks wait for it.
	Recorded func(b store.Batch)
}

// AgentChecker answers what the recorder needs to know before it believes
// an agent's result: the agent's grant, the webhook's target labels, and
// which webhook a delivery belongs to. ok false: unknown (or revoked).
type AgentChecker interface {
	AgentLabels(ctx context.Context, agentID string) (labels []string, ok bool, err error)
	WebhookLabels(ctx context.Context, webhookID string) (labels []string, ok bool, err error)
	DeliveryWebhook(ctx context.Context, deliveryID string) (webhookID string, ok bool, err error)
}

// Recorder consumes the results stream.
type Recorder struct {
	js   jetstream.JetStream
	w    Writer
	log  zerolog.Logger
	opts Options
}

// New builds a recorder.
func New(js jetstream.JetStream, w Writer, log zerolog.Logger, opts Options) *Recorder {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 5 * time.Millisecond
	}
	if opts.Sweep <= 0 {
		opts.Sweep = time.Minute
	}
	return &Recorder{js: js, w: w, log: log, opts: opts}
}

// sweep removes expired ids from the delivery indexes every opts.Sweep.
func (r *Recorder) sweep(ctx context.Context) {
	t := time.NewTicker(r.opts.Sweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.w.SweepIndexes(ctx, r.opts.Limits.Retention); err != nil && ctx.Err() == nil {
				r.log.Warn().Err(err).Msg("sweep of delivery indexes failed")
			}
		}
	}
}

// Run consumes until ctx ends, then writes what it holds and returns.
func (r *Recorder) Run(ctx context.Context) error {
	cons, err := r.js.CreateOrUpdateConsumer(ctx, streams.ResultsStream, streams.RecorderConsumerConfig())
	if err != nil {
		return fmt.Errorf("recorder consumer: %w", err)
	}
	msgs := make(chan streams.Pulled, r.opts.BatchSize)
	drain, err := streams.Feed(cons, r.opts.BatchSize, msgs, func(err error) { r.log.Warn().Err(err).Msg("pull interrupted; re-pulling") })
	if err != nil {
		return fmt.Errorf("recorder consume: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.sweep(ctx) }()
	batch := make([]jetstream.Msg, 0, r.opts.BatchSize)
	outcomes := 0 // in batch: a batch message counts as its outcomes
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		if len(batch) > 0 {
			r.write(ctx, batch)
			batch, outcomes = batch[:0], 0
		}
	}
	stopping := ctx.Done()
	for {
		select {
		case <-stopping:
			// Stop pulling; the buffered messages still arrive on msgs,
			// which is closed at the end.
			stopping = nil
			go drain()
		case m, ok := <-msgs:
			if !ok {
				timer.Stop()
				flush()
				wg.Wait()
				return nil
			}
			if len(batch) == 0 {
				timer.Reset(r.opts.MaxDelay)
			}
			batch = append(batch, m)
			outcomes += streams.EntryCount(m.Headers())
			if outcomes >= r.opts.BatchSize {
				timer.Stop()
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

func (r *Recorder) write(stop context.Context, batch []jetstream.Msg) {
	b, later, err := r.readBatch(batch)
	if err != nil {
		r.retryLater(batch, err)
		return
	}
	if !r.apply(stop, batch, b) {
		return
	}
	if r.opts.Recorded != nil {
		r.opts.Recorded(b)
	}
	for _, m := range batch {
		if !slices.Contains(later, m) {
			_ = m.Ack()
		}
	}
	for _, m := range later {
		_ = m.NakWithDelay(unknownDeliveryWait)
	}
}

// readBatch reads a batch into what is to be written; later are the
// messages holding an agent's outcome for a delivery not known yet, to be
// asked about again (a batch message's other outcomes are written now, and
// again, harmlessly, when it comes back). An error (the store cannot be
// asked about an agent) means the whole batch waits.
func (r *Recorder) readBatch(batch []jetstream.Msg) (b store.Batch, later []jetstream.Msg, err error) {
	// Deliveries enqueued earlier in this batch, for checking an agent's
	// outcome before its record is written. Filled as they pass.
	var enqueued map[string]string
	// newest is the stream time of the batch's newest message, looked up
	// only when an agent's outcome names an unknown delivery.
	var newest time.Time
	streamNow := func() time.Time {
		if newest.IsZero() {
			for _, m := range batch {
				if md, err := m.Metadata(); err == nil && md.Timestamp.After(newest) {
					newest = md.Timestamp
				}
			}
		}
		return newest
	}
	for _, m := range batch {
		subject := m.Subject()
		agentID, kind, fromAgent := streams.ParseAgentResultSubject(subject)
		if fromAgent {
			subject = streams.OutcomeSubject
			if kind == "breaker" {
				subject = streams.BreakerSubject
			}
		}
		switch subject {
		case streams.BreakerSubject:
			bs, ok, err := r.breakerReport(m, agentID, fromAgent, enqueued)
			if err != nil {
				return b, nil, err
			}
			if ok {
				b.Breakers = append(b.Breakers, bs)
			}
		case streams.EnqueuedSubject:
			entries, err := streams.Entries(m.Headers(), m.Data())
			if err != nil {
				r.log.Error().Err(err).Msg("dropping an unreadable enqueue batch")
				continue
			}
			for _, data := range entries {
				var e streams.Enqueued
				if err := json.Unmarshal(data, &e); err != nil || e.V > streams.SchemaVersion {
					r.log.Error().Err(err).Int("v", e.V).Msg("dropping an unreadable enqueue record")
					continue
				}
				b.Enqueued = append(b.Enqueued, e)
				if enqueued == nil {
					enqueued = make(map[string]string, len(e.Deliveries))
				}
				for _, it := range e.Deliveries {
					if len(it.TargetLabels) > 0 { // only agents' deliveries are ever checked
						enqueued[it.DeliveryID] = it.WebhookID
					}
				}
			}
		default:
			entries, err := streams.Entries(m.Headers(), m.Data())
			if err != nil {
				r.log.Error().Err(err).Str("subject", m.Subject()).Msg("dropping an unreadable outcome batch")
				continue
			}
			wait := false
			for _, data := range entries {
				o, v, err := r.outcome(m, data, agentID, fromAgent, enqueued, streamNow)
				if err != nil {
					return b, nil, err
				}
				switch v {
				case allowed:
					b.Outcomes = append(b.Outcomes, o)
				case unknownYet:
					wait = true
				}
			}
			if wait {
				later = append(later, m)
			}
		}
	}
	return b, later, nil
}

// breakerReport reads a breaker report; ok false drops it.
func (r *Recorder) breakerReport(m jetstream.Msg, agentID string, fromAgent bool, enqueued map[string]string) (streams.BreakerState, bool, error) {
	var bs streams.BreakerState
	if err := json.Unmarshal(m.Data(), &bs); err != nil || bs.V > streams.SchemaVersion || bs.WebhookID == "" {
		r.log.Error().Err(err).Msg("dropping an unreadable breaker report")
		return bs, false, nil
	}
	if !fromAgent {
		return bs, true, nil
	}
	v, err := r.agentMay(agentID, bs.WebhookID, "", enqueued)
	return bs, v == allowed, err
}

// outcome reads an outcome (data: message m, or one entry of batch message
// m) and says whether it is written (allowed), dropped (refused) or asked
// about again later (unknownYet).
func (r *Recorder) outcome(m jetstream.Msg, data []byte, agentID string, fromAgent bool, enqueued map[string]string,
	streamNow func() time.Time) (streams.Outcome, verdict, error) {
	// An agent's outcome for a delivery not known yet waits: the router
	// publishes a delivery's enqueue record only after the delivery itself
	// was stored, so a fast agent's outcome can come first.
	var o streams.Outcome
	if err := json.Unmarshal(data, &o); err != nil || o.V > streams.SchemaVersion || o.DeliveryID == "" {
		r.log.Error().Err(err).Int("v", o.V).Msg("dropping an unreadable outcome")
		return o, refused, nil
	}
	if !fromAgent {
		if strings.HasPrefix(o.By, "agent:") {
			r.log.Warn().Str("delivery_id", o.DeliveryID).Msg("refusing an agent's outcome published on the broker's subject")
			return o, refused, nil
		}
		return o, allowed, nil
	}
	v, err := r.agentMay(agentID, o.WebhookID, o.DeliveryID, enqueued)
	if err != nil {
		return o, refused, err
	}
	if v == unknownYet && r.waitedEnough(m, streamNow(), agentID, o.DeliveryID) {
		v = refused
	}
	o.By = "agent:" + agentID // who sent it, whatever it says
	return o, v, nil
}

// apply writes b, retrying while Redis is down (never dropping: the stream
// keeps the messages meanwhile, in progress); false when the recorder is
// stopping, with the batch nakked for the next recorder.
func (r *Recorder) apply(stop context.Context, batch []jetstream.Msg, b store.Batch) bool {
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.w.ApplyBatch(ctx, b, r.opts.Limits)
		cancel()
		if err == nil {
			return true
		}
		if r.opts.OnError != nil {
			r.opts.OnError(err)
		}
		r.log.Warn().Err(err).Int("batch", len(batch)).Msg("recording outcomes failed; retrying")
		if stop.Err() != nil {
			for _, m := range batch {
				_ = m.Nak() // shutting down: the next recorder takes them
			}
			return false
		}
		for _, m := range batch {
			_ = m.InProgress()
		}
		select {
		case <-stop.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// An agent's outcome for a delivery the recorder does not know yet is
// asked about again every unknownDeliveryWait, and refused once results
// stored unknownDeliveryMaxAge after it have been read (stream time, not
// the clock: a recorder that fell behind, Redis down or a restart, still
// reads the enqueue record first), or once it is unknownDeliveryMaxWait
// old by the clock (nothing newer arrives). The router stores a delivery's
// enqueue record once every delivery of the event is acknowledged, which
// takes at most its acknowledgement timeout (30 s) and a retry.
const (
	unknownDeliveryWait    = time.Second
	unknownDeliveryMaxAge  = 2 * time.Minute
	unknownDeliveryMaxWait = 30 * time.Minute
)

// waitedEnough says whether an agent's outcome for an unknown delivery was
// given its time (streamNow: the newest result read with it); then it is
// refused (and logged).
func (r *Recorder) waitedEnough(m jetstream.Msg, streamNow time.Time, agentID, deliveryID string) bool {
	md, err := m.Metadata()
	if err != nil || (streamNow.Sub(md.Timestamp) < unknownDeliveryMaxAge && time.Since(md.Timestamp) < unknownDeliveryMaxWait) {
		return false
	}
	r.log.Warn().Str("agent_id", agentID).Str("delivery_id", deliveryID).
		Msg("refusing an agent's result: the delivery does not exist")
	return true
}

// verdict is what agentMay says of an agent's result.
type verdict int

const (
	allowed    verdict = iota
	refused            // forged or not the agent's to report: dropped
	unknownYet         // the delivery is not known (yet): asked about again later
)

// agentMay says whether agentID may report on webhookID (and deliveryID,
// when given): the agent is known, the webhook has target labels its grant
// covers, and the delivery belongs to that webhook. A refusal is logged; an
// error (the store unreachable) means ask again later.
func (r *Recorder) agentMay(agentID, webhookID, deliveryID string, enqueued map[string]string) (verdict, error) {
	refuse := func(why string) (verdict, error) {
		r.log.Warn().Str("agent_id", agentID).Str("webhook_id", webhookID).Str("delivery_id", deliveryID).
			Msg("refusing an agent's result: " + why)
		return refused, nil
	}
	if r.opts.Agents == nil {
		return refuse("no agent checker configured")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	granted, ok, err := r.opts.Agents.AgentLabels(ctx, agentID)
	if err != nil {
		return refused, err
	}
	if !ok {
		return refuse("unknown or revoked agent")
	}
	target, ok, err := r.opts.Agents.WebhookLabels(ctx, webhookID)
	if err != nil {
		return refused, err
	}
	if !ok || len(target) == 0 || !webhooks.Covers(granted, target) {
		return refuse("the webhook is not one its grant covers")
	}
	if deliveryID == "" {
		return allowed, nil
	}
	owner, ok := enqueued[deliveryID]
	if !ok {
		owner, ok, err = r.opts.Agents.DeliveryWebhook(ctx, deliveryID)
		if err != nil {
			return refused, err
		}
	}
	switch {
	case !ok:
		return unknownYet, nil
	case owner != webhookID:
		return refuse("the delivery does not belong to that webhook")
	}
	return allowed, nil
}

// retryLater gives a batch back (the store could not be asked): it comes
// again after a second.
func (r *Recorder) retryLater(batch []jetstream.Msg, err error) {
	r.log.Warn().Err(err).Int("batch", len(batch)).Msg("cannot check agents' results now; retrying")
	if r.opts.OnError != nil {
		r.opts.OnError(err)
	}
	for _, m := range batch {
		_ = m.NakWithDelay(time.Second)
	}
}

// StoreAgents is the AgentChecker over the store, with webhookLabels for a
// webhook's target labels (the index, which falls back to the store).
func StoreAgents(st *store.Store, webhookLabels func(ctx context.Context, id string) ([]string, bool, error)) AgentChecker {
	return storeAgents{st: st, labels: webhookLabels}
}

type storeAgents struct {
	st     *store.Store
	labels func(ctx context.Context, id string) ([]string, bool, error)
}

func (s storeAgents) AgentLabels(ctx context.Context, id string) ([]string, bool, error) {
	a, err := s.st.GetAgent(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return a.Labels, true, nil
}

func (s storeAgents) WebhookLabels(ctx context.Context, id string) ([]string, bool, error) {
	return s.labels(ctx, id)
}

func (s storeAgents) DeliveryWebhook(ctx context.Context, id string) (string, bool, error) {
	return s.st.DeliveryWebhook(ctx, id)
}

// WebhookSource finds webhooks (an *index.Index: its memory, then the store).
type WebhookSource interface {
	Get(id string) (*webhooks.Webhook, bool)
	Refresh(ctx context.Context, id string) (*webhooks.Webhook, error)
}

// IndexLabels reads a webhook's target labels from src.
func IndexLabels(src WebhookSource) func(ctx context.Context, id string) ([]string, bool, error) {
	return func(ctx context.Context, id string) ([]string, bool, error) {
		if w, ok := src.Get(id); ok {
			return w.TargetLabels, true, nil
		}
		w, err := src.Refresh(ctx, id)
		if err != nil || w == nil {
			return nil, false, err
		}
		return w.TargetLabels, true, nil
	}
}
