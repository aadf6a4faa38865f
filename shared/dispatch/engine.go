package dispatch

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// Webhooks finds webhooks; *index.Index implements it, and so does an agent
// (from its grant).
type Webhooks interface {
	Get(id string) (*webhooks.Webhook, bool)
	// Refresh reloads one webhook from the store (nil, nil: it is gone).
	Refresh(ctx context.Context, id string) (*webhooks.Webhook, error)
}

// Publisher publishes to JetStream without waiting; jetstream.JetStream
// implements it.
type Publisher interface {
	PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// Deps are what every component of the engine needs.
type Deps struct {
	Pub      Publisher
	Webhooks Webhooks
	Log      zerolog.Logger
	// Metrics may be nil (no metrics).
	Metrics *metrics.Delivery
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// By names who delivers in outcomes: "broker" or "agent:<id>".
	By string
	// OutcomeSubject and BreakerSubject are where results go (the broker's
	// by default; an agent publishes on its own subjects).
	OutcomeSubject, BreakerSubject string
	// Rules are the limits decisions depend on (DefaultRules where zero).
	Rules Rules
	// PublishRetry bounds how long a publish that must be stored before a
	// message is settled is retried (15 s when zero).
	PublishRetry time.Duration
}

func (d Deps) withDefaults() Deps {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.By == "" {
		d.By = "broker"
	}
	if d.OutcomeSubject == "" {
		d.OutcomeSubject = streams.OutcomeSubject
	}
	if d.BreakerSubject == "" {
		d.BreakerSubject = streams.BreakerSubject
	}
	if d.PublishRetry <= 0 {
		d.PublishRetry = 15 * time.Second
	}
	d.Rules = d.Rules.withDefaults()
	return d
}

// lookupTimeout bounds a store read for a webhook the index does not know.
const lookupTimeout = 5 * time.Second

// lookup finds a webhook, asking the store on an index miss (a webhook
// created a moment ago).
func (d *Deps) lookup(id string) (*webhooks.Webhook, Lookup) {
	if w, ok := d.Webhooks.Get(id); ok {
		return w, Found
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	w, err := d.Webhooks.Refresh(ctx, id)
	switch {
	case err != nil:
		d.Log.Warn().Err(err).Str("webhook_id", id).Msg("webhook lookup failed")
		return nil, Unknown
	case w == nil:
		return nil, Gone
	}
	return w, Found
}

// facts starts the facts about a message of a stage from its headers.
func (d *Deps) facts(stage Stage, subject string, h nats.Header) Facts {
	f := Facts{Stage: stage, Now: d.Now(), Rules: d.Rules}
	meta, err := streams.ParseMeta(h)
	if err != nil {
		d.Log.Error().Err(err).Str("subject", subject).Msg("unreadable delivery message")
		f.Unreadable = true
		return f
	}
	f.Meta = meta
	if streams.SubjectWebhookID(subject) != meta.WebhookID {
		// Subjects are what NATS permissions guard: an agent may park
		// deliveries only on its own webhooks' subjects, so a header naming
		// another webhook is forged (or corrupt) and must never be
		// delivered with that webhook's url and secret.
		d.Log.Warn().Str("subject", subject).Str("webhook_id", meta.WebhookID).Str("delivery_id", meta.DeliveryID).
			Msg("delivery message whose webhook does not match its subject (forged or corrupt)")
		f.Forged = true
	}
	return f
}

// withWebhook adds what the lookup found to f.
func withWebhook(f Facts, w *webhooks.Webhook, l Lookup) Facts {
	f.Lookup = l
	if w != nil {
		f.Enabled, f.MaxAttempts = w.Enabled, w.MaxAttempts()
	}
	return f
}

// outcome is the outcome record of a decision about a delivery.
func (d *Deps) outcome(meta streams.Meta, w *webhooks.Webhook, status streams.Status, attempt int) streams.Outcome {
	o := streams.Outcome{V: streams.SchemaVersion, DeliveryID: meta.DeliveryID, WebhookID: meta.WebhookID,
		EventID: meta.EventID, EventType: meta.EventType, Epoch: meta.Epoch, Attempt: attempt, Status: status,
		By: d.By, CreatedAt: meta.CreatedAt}
	if w != nil {
		o.TargetLabels = w.TargetLabels
	}
	return o
}

func (d *Deps) outcomeMsg(o *streams.Outcome) *nats.Msg {
	data, _ := json.Marshal(o) // a struct of strings and numbers: cannot fail
	return &nats.Msg{Subject: d.OutcomeSubject, Data: data}
}

// deadLetter is the dead-letter copy of a delivery.
func deadLetter(meta streams.Meta, body []byte, o *streams.Outcome) *nats.Msg {
	m := streams.NewMsg(streams.DeadSubject(meta.WebhookID), "", meta, body)
	delete(m.Header, streams.HdrMsgID)
	m.Header.Set(streams.HdrReason, string(o.Reason))
	m.Header.Set(streams.HdrError, o.Error)
	return m
}

// next is the meta of the copy a decision republishes.
func next(meta streams.Meta, dec Decision) streams.Meta {
	n := meta
	n.Lost, n.Attempts = dec.Lost, dec.Failed
	n.Due = 0
	if !dec.At.IsZero() {
		n.Due = dec.At.UnixMilli()
	}
	return n
}

// timeOf is a unix-ms header value as a time; 0 is the zero time.
func timeOf(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
