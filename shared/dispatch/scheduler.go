package dispatch

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/streams"
)

// schedulerWorkers is how many delayed deliveries the scheduler handles at
// once; it makes no HTTP call, so a few are plenty.
const schedulerWorkers = 4

// Scheduler brings delayed deliveries (backoff, Retry-After, an open
// breaker, a saturated webhook, a reroute) back when they are due: it holds
// each one in its consumer with a delayed nak until then, and then
// republishes it where its webhook's deliveries go now.
type Scheduler struct {
	deps Deps
}

// NewScheduler builds a scheduler.
func NewScheduler(deps Deps) *Scheduler { return &Scheduler{deps: deps.withDefaults()} }

// Run schedules until ctx ends, then finishes the messages in hand.
func (s *Scheduler) Run(ctx context.Context, js JetStream) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, streams.DeliveriesStream, streams.SchedulerConsumerConfig())
	if err != nil {
		return fmt.Errorf("scheduler consumer: %w", err)
	}
	delayed := make(chan streams.Pulled)
	drain, err := streams.Feed(cons, 256, delayed, func(err error) {
		s.deps.Log.Warn().Err(err).Msg("pull interrupted; re-pulling")
	})
	if err != nil {
		return fmt.Errorf("scheduler consume: %w", err)
	}
	var wg sync.WaitGroup
	for range schedulerWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range delayed {
				s.Handle(m.Msg)
			}
		}()
	}
	<-ctx.Done()
	drain()
	wg.Wait()
	return nil
}

// Handle decides what becomes of one delayed delivery and carries it out.
// When a move cannot be stored, the message is nakked to be tried again
// after Rules.LookupWait.
func (s *Scheduler) Handle(msg jetstream.Msg) {
	d := &s.deps
	f := d.facts(Delayed, msg.Subject(), msg.Headers())
	md, err := msg.Metadata()
	if err != nil {
		// Its stream position (part of its copies' message ids) cannot be
		// read now: it stays in the scheduler and is tried again.
		d.Log.Warn().Err(err).Str("subject", msg.Subject()).Msg("delayed delivery without metadata; retried later")
		_ = msg.NakWithDelay(d.Rules.LookupWait)
		return
	}
	seq := md.Sequence.Stream
	f.Delivered = md.NumDelivered
	ready := ""
	if !f.Unreadable && !f.Forged && !f.Now.Before(timeOf(f.Meta.Due)) {
		w, l := d.lookup(f.Meta.WebhookID)
		f = withWebhook(f, w, l)
		if w != nil {
			// Back to whoever delivers this webhook: broker deliverers or
			// its label set's agents.
			ready = streams.SubjectFor(w.ID, w.TargetLabels, true)
		}
	}
	dec := Decide(f)
	retry := func() { _ = msg.NakWithDelay(d.Rules.LookupWait) }
	switch dec.Kind {
	case Reject:
		_ = msg.Term()
	case Wait:
		_ = msg.NakWithDelay(dec.At.Sub(f.Now))
	case Drop:
		_ = msg.Ack()
	case Hold:
		if !d.hold(msg, f.Meta, dec, seq) {
			retry()
		}
	case Release:
		if !d.move(msg, next(f.Meta, dec), ready, streams.RetryMsgID(f.Meta, seq)+suffixRelease) {
			retry()
		}
	default:
		d.Log.Error().Str("decision", dec.Kind.String()).Msg("the scheduler cannot carry out this decision; retried later")
		retry()
	}
}
