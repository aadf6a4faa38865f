// Package router fans events out to deliveries: it consumes the event
// stream, matches each event against the in-memory webhook index, enqueues
// one delivery per matching webhook (idempotently: the delivery id is derived
// from the event id and webhook id and travels as Nats-Msg-Id), tells the
// recorder which deliveries exist, and acks the event only after every
// enqueue was acknowledged.
package router

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// Namespace derives delivery ids: uuid5(Namespace, eventID + "/" + webhookID).
var Namespace = uuid.MustParse("6f1f4c8e-3a53-4e0e-9a5f-1b9b1c2d7e01")

// DeliveryID is the id of the delivery of event eventID to webhook webhookID.
func DeliveryID(eventID, webhookID string) string {
	return uuid.NewSHA1(Namespace, []byte(eventID+"/"+webhookID)).String()
}

// EventIDFromSeq names an event published without an id, stably.
func EventIDFromSeq(seq uint64) string {
	return uuid.NewSHA1(Namespace, []byte("seq/"+strconv.FormatUint(seq, 10))).String()
}

// Matcher returns the current webhook set; *index.Index implements it.
type Matcher interface {
	Set() *matching.Set
}

// Options tune the router.
type Options struct {
	Workers int // events processed at once (default 8)
	// MaxEventBytes is HERMOD_MAX_EVENT_BYTES (256 KiB when zero): an
	// envelope larger than streams.MaxEnvelopeBytes of it is refused. The
	// connection's max payload lowers that when it leaves less room.
	MaxEventBytes int
}

// headerRoom is what a delivery message's headers may take of the NATS
// max payload, so an event body of the router's limit always fits one.
const headerRoom = streams.EventHeaderAllowance

// limits returns the largest event the router fans out and the largest
// enqueue record message, given the configured limit and the connection's
// max payload (0: unknown).
func limits(maxEvent int, maxPayload int64) (event, record int) {
	if maxEvent <= 0 {
		maxEvent = 256 << 10
	}
	event = streams.MaxEnvelopeBytes(maxEvent)
	if maxPayload <= 0 {
		return event, 0
	}
	return min(event, int(maxPayload)-headerRoom), int(maxPayload) - headerRoom
}

// Publisher publishes to JetStream without waiting; jetstream.JetStream
// implements it.
type Publisher interface {
	PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// Router is the fan-out stage.
type Router struct {
	js      jetstream.JetStream
	pub     Publisher
	records *records // set by Run
	ix      Matcher
	log     zerolog.Logger
	m       *metrics.Routing
	opts    Options
	// eventLimit is the largest event fanned out; recordLimit the largest
	// enqueue record message (0: no limit). See limits.
	eventLimit, recordLimit int
	filterLog               filterLog
	// onFilterError is filterError as a func value, made once: a method
	// value taken per event would allocate per event.
	onFilterError func(*webhooks.Webhook, string, error)
}

// filterLogInterval is the least time between two log lines about filter
// expressions that gave no answer; those in between are only counted.
const filterLogInterval = 10 * time.Second

// filterLog limits the log lines about filter expression failures: a
// hostile or careless expression fails on every event, and the metric
// counts each failure already.
type filterLog struct {
	next       atomic.Int64 // unix nanoseconds before which nothing is logged
	suppressed atomic.Int64 // failures not logged since the last line
}

// allow says whether a line may be logged at now, and how many failures
// went unlogged before it.
func (l *filterLog) allow(now time.Time) (bool, int64) {
	n := l.next.Load()
	if now.UnixNano() < n || !l.next.CompareAndSwap(n, now.Add(filterLogInterval).UnixNano()) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}

// filterError hears of a filter expression that gave no answer for an
// event: counted always, logged at most once per filterLogInterval.
func (r *Router) filterError(w *webhooks.Webhook, reason string, err error) {
	r.m.FilterError(reason)
	if ok, skipped := r.filterLog.allow(time.Now()); ok {
		r.log.Warn().Str("webhook_id", w.ID).Str("reason", reason).Str("error", err.Error()).Int64("unlogged_before", skipped).
			Msg("filter expression gave no answer; the event does not match the webhook (counted in hermod_filter_errors_total)")
	}
}

// New builds a router.
func New(js jetstream.JetStream, ix Matcher, log zerolog.Logger, m *metrics.Routing, opts Options) *Router {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	r := &Router{js: js, pub: js, ix: ix, log: log, m: m, opts: opts}
	r.onFilterError = r.filterError
	var maxPayload int64
	if nc := js.Conn(); nc != nil {
		maxPayload = nc.MaxPayload()
	}
	r.eventLimit, r.recordLimit = limits(opts.MaxEventBytes, maxPayload)
	return r
}

// Run consumes events until ctx ends, then finishes the events in hand.
func (r *Router) Run(ctx context.Context) error {
	cons, err := r.js.CreateOrUpdateConsumer(ctx, streams.EventsStream, streams.RouterConsumerConfig())
	if err != nil {
		return fmt.Errorf("router consumer: %w", err)
	}
	work := make(chan streams.Pulled)
	drain, err := streams.Feed(cons, 4*r.opts.Workers, work, func(err error) { r.log.Warn().Err(err).Msg("pull interrupted; re-pulling") })
	if err != nil {
		return fmt.Errorf("router consume: %w", err)
	}
	r.records = newRecords(r.pub, r.recordLimit)
	defer r.records.close() // after the workers: their records are published first
	var wg sync.WaitGroup
	for i := 0; i < r.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []*webhooks.Webhook
			for m := range work {
				buf = r.handle(m, buf[:0])
			}
		}()
	}
	<-ctx.Done()
	drain()
	wg.Wait()
	return nil
}

func (r *Router) handle(msg jetstream.Msg, buf []*webhooks.Webhook) []*webhooks.Webhook {
	// A message with a delivery's headers is a copy of a delivery, not a
	// platform event: an agent can have JetStream deliver one of its pulled
	// messages to any subject (the reply subject of its pull request), and
	// its body is an envelope. Fanning it out would replay the event.
	if h := msg.Headers(); h.Get(streams.HdrDelivery) != "" || h.Get(streams.HdrVersion) != "" {
		r.log.Warn().Str("subject", msg.Subject()).Str("delivery_id", h.Get(streams.HdrDelivery)).
			Msg("dropping a copy of a delivery message published as an event")
		r.m.Refused("delivery_copy")
		_ = msg.Term()
		return buf
	}
	body := msg.Data()
	env, ev, err := matching.ParseEnvelope(body)
	if err != nil {
		r.log.Error().Err(err).Str("subject", msg.Subject()).Msg("dropping an event that is not an envelope")
		r.m.Refused("not_an_envelope")
		_ = msg.Term()
		return buf
	}
	if ev.ID == "" {
		if id := msg.Headers().Get(streams.HdrMsgID); id != "" {
			ev.ID = id
		} else if md, err := msg.Metadata(); err == nil {
			ev.ID = EventIDFromSeq(md.Sequence.Stream)
		}
		env.ID = ev.ID
		if body, err = json.Marshal(env); err != nil {
			_ = msg.Term()
			return buf
		}
	}
	// An event published straight to JetStream passed no API check. One
	// over the limit is refused for good: terminated, never redelivered
	// (its deliveries might not fit a NATS message, and a failed publish
	// would bring the event back every second).
	if r.eventLimit > 0 && len(body) > r.eventLimit {
		r.log.Error().Str("event_id", ev.ID).Str("subject", msg.Subject()).Int("bytes", len(body)).
			Int("limit_bytes", r.eventLimit).Msg("refusing an event larger than HERMOD_MAX_EVENT_BYTES")
		r.m.Refused("too_large")
		_ = msg.Term()
		return buf
	}
	ev.OnFilterError = r.onFilterError
	about, ok := r.opsCheck(msg, ev.Type)
	if !ok {
		_ = msg.Term()
		return buf
	}
	matched := r.ix.Set().Match(ev, buf)
	if about != "" {
		matched = slices.DeleteFunc(matched, func(w *webhooks.Webhook) bool { return w.ID == about })
	}
	enq, err := r.enqueue(ev, body, matched)
	if err != nil {
		r.log.Warn().Err(err).Str("event_id", ev.ID).Msg("enqueue failed; the event will be redelivered")
		_ = msg.NakWithDelay(time.Second)
		return matched
	}
	if len(enq.Deliveries) > 0 {
		if err := r.publishEnqueued(&enq); err != nil {
			r.log.Warn().Err(err).Str("event_id", ev.ID).Msg("enqueue record not acknowledged; the event will be redelivered")
			_ = msg.NakWithDelay(time.Second)
			return matched
		}
	}
	if err := msg.Ack(); err != nil {
		r.log.Warn().Err(err).Str("event_id", ev.ID).Msg("event ack failed (redelivery is deduplicated)")
	}
	r.m.Routed(len(enq.Deliveries))
	return matched
}

// opsCheck keeps the operational family Hermod's own: an event of it is
// taken only from streams.OpsEventSubject of its type, and such a subject
// carries nothing else. It returns the webhook the operational event is
// about (streams.HdrAboutWebhook, trusted on those subjects only), which
// never receives it; ok false refuses the event (logged and counted).
func (r *Router) opsCheck(msg jetstream.Msg, eventType string) (about string, ok bool) {
	subject := msg.Subject()
	onOps := streams.IsOpsEventSubject(subject)
	switch {
	case !onOps && catalog.IsOperational(eventType):
		r.log.Warn().Str("subject", subject).Str("event_type", eventType).
			Msg("dropping an operational event (hermod.*) published on a platform subject: only Hermod publishes that family")
		r.m.Refused("reserved_family")
		return "", false
	case onOps && (!catalog.IsOperational(eventType) || subject != streams.OpsEventSubject(eventType)):
		r.log.Warn().Str("subject", subject).Str("event_type", eventType).
			Msg("dropping an event whose type does not match its operational subject")
		r.m.Refused("not_operational")
		return "", false
	case onOps:
		return msg.Headers().Get(streams.HdrAboutWebhook), true
	}
	return "", true
}

// enqueue publishes one delivery of the event per matched webhook, on the
// subject its state picks (its label set's, held while paused, else the
// broker's), with the delivery id as Nats-Msg-Id, and waits for every
// acknowledgement; it returns the enqueue record of what it enqueued.
func (r *Router) enqueue(ev *matching.Event, body []byte, matched []*webhooks.Webhook) (streams.Enqueued, error) {
	created := time.Now().UnixMilli()
	enq := streams.Enqueued{V: streams.SchemaVersion, EventID: ev.ID, EventType: ev.Type, CreatedAt: created,
		Payload: body, Deliveries: make([]streams.EnqueuedItem, 0, len(matched))}
	futures := make([]jetstream.PubAckFuture, 0, len(matched))
	for _, w := range matched {
		did := DeliveryID(ev.ID, w.ID)
		meta := streams.Meta{DeliveryID: did, WebhookID: w.ID, EventID: ev.ID, EventType: ev.Type, CreatedAt: created}
		if len(w.TargetLabels) == 0 && !w.Enabled {
			meta.HeldSince = created
		}
		f, err := r.pub.PublishMsgAsync(streams.NewMsg(streams.SubjectFor(w.ID, w.TargetLabels, w.Enabled), did, meta, body))
		if err != nil {
			return enq, fmt.Errorf("enqueue: %w", err)
		}
		futures = append(futures, f)
		enq.Deliveries = append(enq.Deliveries, streams.EnqueuedItem{DeliveryID: did, WebhookID: w.ID, TargetLabels: w.TargetLabels})
	}
	if err := waitAll(futures); err != nil {
		return enq, fmt.Errorf("enqueue not acknowledged: %w", err)
	}
	return enq, nil
}

// maxEnqueuedItems keeps one enqueue record well under the NATS payload limit.
const maxEnqueuedItems = 2000

// publishEnqueued hands the event's enqueue record (in parts of at most
// maxEnqueuedItems deliveries, the payload in the first) to the record
// publishers and waits until it is stored. When the payload and the first
// part's deliveries together would not fit a NATS message, the payload
// travels alone, in a part without deliveries.
func (r *Router) publishEnqueued(enq *streams.Enqueued) error {
	all := enq.Deliveries
	var data [][]byte
	var ids []string
	for start := 0; start < len(all); start += maxEnqueuedItems {
		part := *enq
		part.Deliveries = all[start:min(start+maxEnqueuedItems, len(all))]
		if start > 0 {
			part.Payload = nil // stored once
		}
		b, err := json.Marshal(&part)
		if err != nil {
			return err
		}
		if start == 0 && r.recordLimit > 0 && len(b) > r.recordLimit {
			alone := *enq
			alone.Deliveries = []streams.EnqueuedItem{}
			pb, err := json.Marshal(&alone)
			if err != nil {
				return err
			}
			data, ids = append(data, pb), append(ids, "enq:"+enq.EventID+":payload")
			part.Payload = nil
			if b, err = json.Marshal(&part); err != nil {
				return err
			}
		}
		data, ids = append(data, b), append(ids, "enq:"+enq.EventID+":"+strconv.Itoa(start))
	}
	return r.records.publish(data, ids)
}

// ackTimeout bounds the wait for the acknowledgements of one event's
// publishes: a backstop, as each publish fails on its own after
// connect.PubAckTimeout (5 s) without an acknowledgement, and the event is
// then redelivered a second later.
const ackTimeout = 30 * time.Second

func waitAll(fs []jetstream.PubAckFuture) error {
	timeout := time.After(ackTimeout)
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-timeout:
			return fmt.Errorf("publish acknowledgement timed out")
		}
	}
	return nil
}
