package opsevents

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/streams"
)

// JetStream publishes and waits for the acknowledgement; jetstream.JetStream
// implements it.
type JetStream interface {
	PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Publisher publishes operational events on their own subjects.
type Publisher struct {
	js  JetStream
	m   *metrics.Ops
	log zerolog.Logger
	now func() time.Time
}

// NewPublisher makes a publisher on js, counting on m (nil: not counted).
func NewPublisher(js JetStream, m *metrics.Ops, log zerolog.Logger) *Publisher {
	return &Publisher{js: js, m: m, log: log, now: time.Now}
}

// publishTimeout bounds one publish.
const publishTimeout = 5 * time.Second

// envelope is the event as webhooks receive it.
type envelope struct {
	ID        string `json:"id"`
	EventType string `json:"event_type"`
	Timestamp string `json:"timestamp"`
	Data      Event  `json:"data"`
}

// NewMsg is ev's message: the envelope on streams.OpsEventSubject of its
// type, the event id as Nats-Msg-Id (the same event told twice is stored
// once) and the webhook it is about in streams.HdrAboutWebhook.
func NewMsg(ev Event, at time.Time) (*nats.Msg, error) {
	body, err := json.Marshal(envelope{ID: ev.OpsEventID(), EventType: ev.Type(), Timestamp: at.UTC().Format(time.RFC3339Nano), Data: ev})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", ev.Type(), err)
	}
	h := nats.Header{streams.HdrMsgID: {ev.OpsEventID()}}
	if w := ev.AboutWebhook(); w != "" {
		h[streams.HdrAboutWebhook] = []string{w}
	}
	return &nats.Msg{Subject: streams.OpsEventSubject(ev.Type()), Header: h, Data: body}, nil
}

// Publish publishes ev and waits for JetStream to store it. A failure is
// counted (suppressed, publish_failed), logged and returned.
func (p *Publisher) Publish(ctx context.Context, ev Event) error {
	msg, err := NewMsg(ev, p.now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		p.m.Suppress(ev.Type(), "publish_failed")
		p.log.Warn().Err(err).Str("type", ev.Type()).Str("event_id", ev.OpsEventID()).Msg("operational event not published")
		return fmt.Errorf("publish %s: %w", ev.Type(), err)
	}
	p.m.Publish(ev.Type())
	p.log.Info().Str("type", ev.Type()).Str("event_id", ev.OpsEventID()).Str("about_webhook", ev.AboutWebhook()).
		Msg("operational event published")
	return nil
}
