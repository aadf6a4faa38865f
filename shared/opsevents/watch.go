package opsevents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// StateStore keeps what operational events told; *store.Store implements it.
type StateStore interface {
	GetOpsStates(ctx context.Context, keys []string) (map[string][]byte, error)
	UpdateOpsState(ctx context.Context, key string, change func(old []byte) ([]byte, error)) error
}

// WebhookStore is what the webhook watcher reads; *store.Store implements it.
type WebhookStore interface {
	StateStore
	Stats(ctx context.Context, ids []string) (map[string]store.WebhookStats, error)
	ClaimOps(ctx context.Context, keys []string, ttl time.Duration) ([]bool, error)
}

// Webhooks finds a webhook by id (the router's *index.Index).
type Webhooks interface {
	Get(id string) (*webhooks.Webhook, bool)
}

// WebhookWatcher tells webhooks' transitions (degraded, recovered) and
// deliveries' deaths. The recorder calls Recorded with each batch once
// Redis took it: the statistics it reads (the last 3 finished deliveries,
// the breaker) are then those the API shows.
type WebhookWatcher struct {
	st     WebhookStore
	hooks  Webhooks
	pub    *Publisher
	policy Policy
	m      *metrics.Ops
	log    zerolog.Logger
	now    func() time.Time
	queue  chan store.Batch
}

// QueueSize is how many recorded batches wait for the watcher at most;
// a batch that finds the queue full is not looked at (counted).
const QueueSize = 256

// NewWebhookWatcher makes the watcher.
func NewWebhookWatcher(st WebhookStore, hooks Webhooks, pub *Publisher, policy Policy, m *metrics.Ops, log zerolog.Logger) *WebhookWatcher {
	return &WebhookWatcher{st: st, hooks: hooks, pub: pub, policy: policy.withDefaults(), m: m, log: log, now: time.Now,
		queue: make(chan store.Batch, QueueSize)}
}

// Enqueue hands a batch the recorder wrote to Run, never waiting: the
// recorder acks its results without waiting for Redis reads or publishes
// of operational events. A batch that finds the queue full is dropped and
// counted (reason queue_full): its events are lost, the recording never is.
func (w *WebhookWatcher) Enqueue(b store.Batch) {
	select {
	case w.queue <- b:
		w.m.Queue(1)
	default:
		w.m.Suppress(QueueFullType, "queue_full")
	}
}

// QueueFullType is the type label of batches dropped whole (reason
// queue_full): they may have held any webhook event.
const QueueFullType = "hermod.webhook.*"

// Run looks at the enqueued batches, one after the other, until ctx ends.
func (w *WebhookWatcher) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-w.queue:
			w.Recorded(ctx, b)
			w.m.Queue(-1)
		}
	}
}

// observed is what one batch says of one webhook.
type observed struct {
	deaths []streams.Outcome
	// worse: a death (told or not) or a breaker report of the webhook is
	// in the batch, so it may have turned degraded.
	worse bool
}

// Recorded looks at a batch the recorder wrote: for every webhook with a
// finished delivery or a breaker report in it, whether its status changed,
// and for each delivery that died, whether to tell it. It runs beside the
// recorder (Run), never in its ack path. A batch of successes of webhooks
// not told degraded costs one Redis round trip (the state told); the
// statistics are read only where a death, a breaker report or a degraded
// state can change something. A failure is logged (the event is lost, the
// recording never is).
func (w *WebhookWatcher) Recorded(ctx context.Context, b store.Batch) {
	seen := map[string]*observed{}
	var ids []string
	touch := func(id string) *observed {
		o := seen[id]
		if o == nil {
			o = &observed{}
			seen[id] = o
			ids = append(ids, id)
		}
		return o
	}
	for _, o := range b.Outcomes {
		switch o.Status {
		case streams.StatusSuccess:
			touch(o.WebhookID)
		case streams.StatusDead:
			ob := touch(o.WebhookID)
			ob.worse = true
			if catalog.IsOperational(o.EventType) {
				// Never an event about an operational event's delivery:
				// two webhooks failing each other's events cannot loop.
				w.m.Suppress(catalog.DeliveryDead, "ops_delivery")
				continue
			}
			ob.deaths = append(ob.deaths, o)
		}
	}
	for _, br := range b.Breakers {
		touch(br.WebhookID).worse = true
	}
	if len(ids) == 0 {
		return
	}
	if err := w.claimDeaths(ctx, ids, seen); err != nil {
		w.log.Warn().Err(err).Msg("deaths of a recorded batch not counted for operational events")
		for _, id := range ids {
			seen[id].deaths = nil
		}
	}
	if err := w.check(ctx, ids, seen); err != nil {
		w.log.Warn().Err(err).Int("webhooks", len(ids)).Msg("operational events of a recorded batch not checked")
	}
}

// claimDeaths keeps of each webhook's deaths those counted now for the
// first time (a batch recorded again, or by two recorders, counts its
// deaths once).
func (w *WebhookWatcher) claimDeaths(ctx context.Context, ids []string, seen map[string]*observed) error {
	var keys []string
	for _, id := range ids {
		for _, o := range seen[id].deaths {
			keys = append(keys, store.OpsDeadKey(o.DeliveryID, o.Epoch))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	first, err := w.st.ClaimOps(ctx, keys, w.policy.DeadMarkTTL)
	if err != nil {
		return err
	}
	i := 0
	for _, id := range ids {
		kept := seen[id].deaths[:0]
		for _, o := range seen[id].deaths {
			if first[i] {
				kept = append(kept, o)
			}
			i++
		}
		seen[id].deaths = kept
	}
	return nil
}

func (w *WebhookWatcher) check(ctx context.Context, ids []string, seen map[string]*observed) error {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = store.OpsWebhookKey(id)
	}
	states, err := w.st.GetOpsStates(ctx, keys)
	if err != nil {
		return err
	}
	// Successes alone can only recover a webhook told degraded: the
	// statistics are read for the others only when the batch holds a
	// death (an operational event's too) or a breaker report of theirs
	// (the common batch, successes of healthy webhooks, costs one round
	// trip).
	told := make([]WebhookState, len(ids))
	var need []string
	for i, id := range ids {
		told[i] = decodeWebhook(states[keys[i]])
		if told[i].Degraded || seen[id].worse {
			need = append(need, id)
		}
	}
	if len(need) == 0 {
		return nil
	}
	stats, err := w.st.Stats(ctx, need)
	if err != nil {
		return err
	}
	now := w.now()
	var errs []error
	for i, id := range ids {
		st, ok := stats[id]
		if !ok {
			continue // nothing in the batch can change what was told
		}
		wh, ok := w.hooks.Get(id)
		if !ok {
			continue // deleted: nobody to tell about
		}
		told := told[i]
		// A paused webhook shows as paused, never degraded: its status
		// stays as told until it is enabled again and delivers.
		degraded := told.Degraded
		if wh.Enabled {
			degraded = st.Degraded(now)
		}
		deaths := len(seen[id].deaths)
		_, d, changed := w.policy.DecideWebhook(told, degraded, deaths, now)
		if !changed {
			if d.Transition == Coalesced {
				w.m.Suppress(catalog.WebhookDegraded, "cooldown")
			}
			continue
		}
		err := w.st.UpdateOpsState(ctx, keys[i], func(old []byte) ([]byte, error) {
			next, dd, ch := w.policy.DecideWebhook(decodeWebhook(old), degraded, deaths, now)
			d = dd
			if !ch {
				return nil, nil
			}
			return json.Marshal(next)
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w.tell(ctx, wh, st, d, seen[id].deaths, now)
	}
	return errors.Join(errs...)
}

// tell publishes what d decided about webhook wh.
func (w *WebhookWatcher) tell(ctx context.Context, wh *webhooks.Webhook, st store.WebhookStats, d WebhookDecision,
	deaths []streams.Outcome, now time.Time) {
	name, redacted := wh.Name, webhooks.RedactURL(wh.URL)
	switch d.Transition {
	case Degrade:
		ev := WebhookDegraded{WebhookID: wh.ID, Name: name, URLRedacted: redacted, DegradedAt: now.UTC(), Reason: "dead_streak",
			Message: "its last 3 finished deliveries died"}
		if now.Before(st.BreakerUntil) {
			until := st.BreakerUntil.UTC()
			ev.Reason, ev.BreakerOpenUntil = "breaker_open", &until
			ev.Message = "its failure breaker opened after repeated failures; deliveries wait until " + until.Format(time.RFC3339)
		}
		_ = w.pub.Publish(ctx, ev)
	case Recover:
		ev := WebhookRecovered{WebhookID: wh.ID, Name: name, URLRedacted: redacted, RecoveredAt: now.UTC(),
			Message: "it delivers again"}
		if d.DegradedSince != 0 {
			t := time.UnixMilli(d.DegradedSince).UTC()
			ev.DegradedAt = &t
		}
		_ = w.pub.Publish(ctx, ev)
	case Coalesced:
		w.m.Suppress(catalog.WebhookDegraded, "cooldown")
	}
	for i, v := range d.Dead {
		if i >= len(deaths) {
			break
		}
		if !v.Tell {
			w.m.Suppress(catalog.DeliveryDead, "dead_limit")
			continue
		}
		o := deaths[i]
		ev := DeliveryDead{WebhookID: wh.ID, Name: name, URLRedacted: redacted, DeliveryID: o.DeliveryID, EventID: o.EventID,
			EventType: o.EventType, Reason: string(o.Reason), Attempts: o.Attempt, LastStatusCode: o.StatusCode,
			Error: cutText(o.Error, 300), Suppressed: v.Suppressed, Epoch: o.Epoch, DiedAt: diedAt(o, now)}
		ev.Message = fmt.Sprintf("a delivery of %s died (%s) after %d attempts", o.EventType, o.Reason, o.Attempt)
		_ = w.pub.Publish(ctx, ev)
	}
}

func diedAt(o streams.Outcome, now time.Time) time.Time {
	if o.FinishedAt > 0 {
		return time.UnixMilli(o.FinishedAt).UTC()
	}
	return now.UTC()
}

func decodeWebhook(b []byte) WebhookState {
	var s WebhookState
	if len(b) > 0 {
		_ = json.Unmarshal(b, &s) // unreadable: as if nothing was told
	}
	return s
}

// cutText bounds s to n bytes on a rune boundary.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
