package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// HeldStream is the part of the held stream the releaser uses;
// jetstream.Stream implements it.
type HeldStream interface {
	Info(ctx context.Context, opts ...jetstream.StreamInfoOpt) (*jetstream.StreamInfo, error)
	Purge(ctx context.Context, opts ...jetstream.StreamPurgeOpt) error
	GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error)
	DeleteMsg(ctx context.Context, seq uint64) error
}

// Releaser moves the held deliveries of resumed webhooks back to where
// their deliveries go, drops those of deleted webhooks, and kills those
// held longer than Rules.MaxHold. Held deliveries never occupy a consumer's
// window: they are read by direct gets, oldest first, and deleted one by
// one. Several releasers may run at once: republishes are deduplicated by
// their Nats-Msg-Id.
type Releaser struct {
	deps     Deps
	interval time.Duration
	wake     chan struct{}
}

// NewReleaser builds a releaser that looks at the held stream every
// interval (500 ms when <= 0) and at once after WebhookChanged.
func NewReleaser(deps Deps, interval time.Duration) *Releaser {
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	return &Releaser{deps: deps.withDefaults(), interval: interval, wake: make(chan struct{}, 1)}
}

// WebhookChanged is called by the index when a webhook changed (w nil:
// deleted); a resume releases its held deliveries at once.
func (r *Releaser) WebhookChanged(_ string, w *webhooks.Webhook) {
	if w == nil || w.Enabled {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Run releases until ctx ends.
func (r *Releaser) Run(ctx context.Context, js JetStream) error {
	held, err := js.Stream(ctx, streams.HeldStream)
	if err != nil {
		return fmt.Errorf("held stream: %w", err)
	}
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-r.wake:
		}
		if err := r.Pass(ctx, held); err != nil && ctx.Err() == nil {
			r.deps.Log.Warn().Err(err).Msg("releasing held deliveries failed")
		}
	}
}

// Pass looks at every webhook's held deliveries once.
func (r *Releaser) Pass(ctx context.Context, held HeldStream) error {
	info, err := held.Info(ctx, jetstream.WithSubjectFilter(streams.HeldPrefix+">"))
	if err != nil {
		return fmt.Errorf("held stream info: %w", err)
	}
	for subject := range info.State.Subjects {
		if err := r.drainSubject(ctx, held, subject); err != nil {
			return err
		}
	}
	return nil
}

// drainSubject decides about a webhook's held deliveries, oldest first,
// until one is to be kept (the newer ones are kept too).
func (r *Releaser) drainSubject(ctx context.Context, held HeldStream, subject string) error {
	d := &r.deps
	w, l := d.lookup(streams.SubjectWebhookID(subject))
	var seq uint64 = 1
	for ctx.Err() == nil {
		raw, err := held.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("held get: %w", err)
		}
		seq = raw.Sequence + 1
		f := withWebhook(d.facts(Held, raw.Subject, raw.Header), w, l)
		dec := Decide(f)
		switch dec.Kind {
		case Keep:
			return nil
		case Drop:
			if err := held.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
				d.Log.Warn().Err(err).Str("subject", subject).Msg("purging a deleted webhook's held deliveries failed; tried again next pass")
			}
			return nil
		case Reject:
		case Dead:
			o := d.outcome(f.Meta, w, streams.StatusDead, f.Meta.Attempts)
			o.Reason, o.Error = dec.Reason, dec.Error
			if !d.finishDead(f.Meta, raw.Data, o) {
				return errors.New("dead letter of an expired held delivery not stored")
			}
		case Release:
			n := next(f.Meta, dec)
			n.HeldSince = 0
			id := f.Meta.DeliveryID + ":held:" + strconv.FormatUint(raw.Sequence, 10)
			if err := d.publishAll(streams.NewMsg(streams.SubjectFor(w.ID, w.TargetLabels, true), id, n, raw.Data)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("the releaser cannot carry out %s", dec.Kind)
		}
		if err := held.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			d.Log.Debug().Err(err).Uint64("seq", raw.Sequence).Msg("held message already gone")
		}
	}
	return nil
}
