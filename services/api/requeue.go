package api

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// requeuer gives a dead delivery a fresh attempt budget: the manual retry
// of one delivery and the bulk replay both go through it.
type requeuer struct {
	js  jetstream.JetStream
	st  *store.Store
	lim store.Limits
}

// requeueError says which dependency a requeue failed on ("nats": nothing
// changed; "redis": the message is out, its record not yet pending).
type requeueError struct {
	dep string
	err error
}

func (e *requeueError) Error() string { return e.dep + ": " + e.err.Error() }
func (e *requeueError) Unwrap() error { return e.err }

// requeue publishes dead delivery d again to webhook w with payload, in
// the next epoch, under the same delivery id (so the same webhook-id
// header), then marks its record pending.
//
// Publish first, then record. The other order (record pending, then
// publish) leaves a record that says pending with no message behind it
// when the publish fails, and every later retry is refused (409: not
// dead). Publishing first needs no rollback:
//   - the publish fails: nothing changed, the record is still dead and a
//     later retry starts over;
//   - the publish succeeds but the record is not written (Redis down):
//     the error says redis, the message is delivered anyway and its outcome
//     (epoch+1, a later order than this pending) is recorded by the
//     recorder; a retry before that republishes with the same message id,
//     which the deliveries stream drops as a duplicate within
//     HERMOD_DEDUP_WINDOW, then records;
//   - an outcome of the new epoch recorded before this pending is never
//     overwritten by it (records only move forward).
//
// The message id names the delivery and the epoch, so two requeues of the
// same dead record (a retry and a replay, or a replay taken over by
// another process after a crash between the publish and the record) are
// one message.
func (q requeuer) requeue(ctx context.Context, d *store.Delivery, w *webhooks.Webhook, payload []byte) error {
	meta := streams.Meta{DeliveryID: d.ID, WebhookID: d.WebhookID, EventID: d.EventID, EventType: d.EventType,
		Epoch: d.Epoch + 1, CreatedAt: d.CreatedAt.UnixMilli()}
	subject := streams.SubjectFor(w.ID, w.TargetLabels, w.Enabled)
	if len(w.TargetLabels) == 0 && !w.Enabled {
		meta.HeldSince = meta.CreatedAt
	}
	msgID := d.ID + ":retry:" + strconv.Itoa(meta.Epoch)
	if _, err := q.js.PublishMsg(ctx, streams.NewMsg(subject, msgID, meta, payload)); err != nil {
		return &requeueError{dep: "nats", err: fmt.Errorf("publish retry of delivery %s: %w", d.ID, err)}
	}
	if err := q.st.Requeue(ctx, d, q.lim); err != nil {
		return &requeueError{dep: "redis", err: err}
	}
	return nil
}

func (s *Server) requeuer() requeuer { return requeuer{js: s.js, st: s.st, lim: s.opts.Limits} }
