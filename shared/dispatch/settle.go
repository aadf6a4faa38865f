package dispatch

import (
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/streams"
)

// Message ids of the copies a worker republishes: distinct per decision so
// the dedup window never swallows a legitimate move, and equal for a
// replayed republish of one copy.
const (
	suffixPark    = ":p"
	suffixHold    = ":h"
	suffixRelease = ":r"
)

// carry carries a worker's decision out. Whatever must be stored (an
// outcome, a copy, a dead letter) is acknowledged by JetStream before the
// message is acked; when that fails the message is left unsettled, so its
// lease expires and it is redelivered (at-least-once).
func (w *Worker) carry(t ticket, dec Decision, att *attempted) {
	d, meta := &w.deps, t.f.Meta
	switch dec.Kind {
	case Leave:
		if t.f.Refused {
			return
		}
		d.Log.Warn().Dur("waited", t.f.Waited).Str("delivery_id", meta.DeliveryID).
			Msg("delivery waited out its lease for a free worker; left to redelivery")
	case Reject:
		_ = t.msg.Term()
	case Drop:
		d.Log.Info().Str("delivery_id", meta.DeliveryID).Str("webhook_id", meta.WebhookID).Msg("webhook deleted; delivery dropped")
		_ = t.msg.Ack()
	case Park:
		if dec.Cause == CauseRoute {
			d.Log.Info().Str("delivery_id", meta.DeliveryID).Str("subject", t.msg.Subject()).Msg("delivery rerouted")
		}
		if d.move(t.msg, next(meta, dec), streams.DelaySubject(meta.WebhookID), streams.RetryMsgID(meta, t.seq)+suffixPark) {
			d.Metrics.Park(string(dec.Cause))
		}
	case Hold:
		if d.hold(t.msg, meta, dec, t.seq) {
			d.Metrics.Park(string(CausePaused))
		}
	case Dead:
		o := d.outcome(meta, t.hook, streams.StatusDead, meta.Attempts)
		if att != nil {
			o.Attempt = meta.Attempts + 1
			o = attemptOutcome(o, att, t.msg.Data())
		}
		o.Reason = dec.Reason
		if dec.Error != "" {
			o.Error = dec.Error
		}
		if d.finishDead(meta, t.msg.Data(), o) {
			_ = t.msg.Ack()
		}
	case Deliver:
		w.deliver(t, att)
	case Retry:
		w.retry(t, dec, att)
	}
}

// deliver hands the message with its success outcome to the settlers,
// which publish the outcome (in a batch with others: batch.go) and ack the
// message once it is acknowledged.
func (w *Worker) deliver(t ticket, att *attempted) {
	d, meta := &w.deps, t.f.Meta
	o := attemptOutcome(d.outcome(meta, t.hook, streams.StatusSuccess, meta.Attempts+1), att, t.msg.Data())
	data, _ := json.Marshal(&o) // a struct of strings and numbers: cannot fail
	w.settle <- settlement{msg: t.msg, outcome: data, delivery: meta.DeliveryID}
	d.Metrics.Attempt("success")
	if meta.CreatedAt > 0 {
		d.Metrics.Delivered(d.Now().Sub(time.UnixMilli(meta.CreatedAt)).Seconds())
	}
}

// retry stores the failed outcome and the copy due at dec.At, then acks.
func (w *Worker) retry(t ticket, dec Decision, att *attempted) {
	d, meta := &w.deps, t.f.Meta
	o := attemptOutcome(d.outcome(meta, t.hook, streams.StatusFailed, meta.Attempts+1), att, t.msg.Data())
	o.NextRetryAt = dec.At.UnixMilli()
	cp := streams.NewMsg(streams.DelaySubject(meta.WebhookID), streams.RetryMsgID(meta, t.seq), next(meta, dec), t.msg.Data())
	if err := d.publishAll(d.outcomeMsg(&o), cp); err != nil {
		d.Log.Error().Err(err).Str("delivery_id", meta.DeliveryID).Msg("retry not scheduled; the lease will expire and the delivery is retried")
		return
	}
	_ = t.msg.Ack()
	d.Metrics.Attempt("retry")
}

// attemptOutcome adds an attempt's result to its outcome record.
func attemptOutcome(o streams.Outcome, att *attempted, body []byte) streams.Outcome {
	res := att.res
	o.PayloadSize = len(body)
	o.StartedAt, o.FinishedAt = att.started.UnixMilli(), att.started.Add(res.Duration).UnixMilli()
	o.StatusCode, o.DurationMs = res.StatusCode, res.Duration.Milliseconds()
	o.Response, o.ResponseType = res.Excerpt, res.ContentType
	o.AttemptStatus = streams.StatusFailed
	if res.Class == delivery.Success {
		o.AttemptStatus = streams.StatusSuccess
	}
	if res.Err != nil {
		o.Error = res.Err.Error()
	}
	return o
}

// logAttempt writes the one log line of an attempt.
func (d *Deps) logAttempt(t ticket, att *attempted, dec Decision) {
	res := att.res
	ev := d.Log.Info()
	if res.Class != delivery.Success {
		ev = d.Log.Warn()
	}
	errText := ""
	if res.Err != nil {
		errText = res.Err.Error()
	}
	ev.Str("delivery_id", t.f.Meta.DeliveryID).Str("webhook_id", t.hook.ID).Int("attempt", t.f.Meta.Attempts+1).
		Int("status_code", res.StatusCode).Int64("duration_ms", res.Duration.Milliseconds()).Str("outcome", dec.Kind.String()).
		Str("error", errText).Msg("delivery attempt")
}

// finishDead publishes the dead outcome and the dead letter and waits for
// both acknowledgements; false when they could not be stored.
func (d *Deps) finishDead(meta streams.Meta, body []byte, o streams.Outcome) bool {
	o.Status = streams.StatusDead
	o.PayloadSize = len(body)
	if o.FinishedAt == 0 {
		o.FinishedAt = d.Now().UnixMilli()
	}
	if err := d.publishAll(d.outcomeMsg(&o), deadLetter(meta, body, &o)); err != nil {
		d.Log.Error().Err(err).Str("delivery_id", meta.DeliveryID).Msg("dead letter not recorded; the delivery stays where it is")
		return false
	}
	d.Log.Warn().Str("delivery_id", meta.DeliveryID).Str("webhook_id", meta.WebhookID).Str("reason", string(o.Reason)).Msg("delivery dead")
	d.Metrics.Dead()
	return true
}

// settler is the part of a message that is acked.
type settler interface {
	Data() []byte
	Ack() error
}

// move republishes a copy of msg's delivery with meta on subject and acks
// msg; when the publish fails it leaves msg unsettled and returns false.
func (d *Deps) move(msg settler, meta streams.Meta, subject, msgID string) bool {
	if err := d.publishAll(streams.NewMsg(subject, msgID, meta, msg.Data())); err != nil {
		d.Log.Warn().Err(err).Str("delivery_id", meta.DeliveryID).Str("subject", subject).Msg("move failed; the delivery stays where it is")
		return false
	}
	_ = msg.Ack()
	return true
}

// hold moves a delivery of a paused webhook to the held stream.
func (d *Deps) hold(msg settler, meta streams.Meta, dec Decision, seq uint64) bool {
	n := next(meta, dec)
	n.Due = 0
	if n.HeldSince == 0 {
		n.HeldSince = d.Now().UnixMilli()
	}
	return d.move(msg, n, streams.HeldSubject(meta.WebhookID), streams.RetryMsgID(meta, seq)+suffixHold)
}

func breakerMsg(subject string, rep *streams.BreakerState) *nats.Msg {
	data, _ := json.Marshal(rep) // numbers and a string: cannot fail
	return &nats.Msg{Subject: subject, Data: data}
}
