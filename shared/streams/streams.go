// Package streams names Hermod's JetStream streams, subjects and consumers,
// creates them, and encodes the delivery messages that travel through them.
//
// Hermod's own subjects all live under "hermod.>" so they never collide with
// platform subjects. See docs/architecture.md for why each setting is what it is.
package streams

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	EventsStream     = "HERMOD_EVENTS"
	DeliveriesStream = "HERMOD_DELIVERIES"
	HeldStream       = "HERMOD_HELD"
	ResultsStream    = "HERMOD_RESULTS"
	DeadStream       = "HERMOD_DEAD"
)

// Consumer names (all durable, all created by the control plane).
const (
	RouterConsumer    = "router"
	DelivererConsumer = "deliverer"
	SchedulerConsumer = "scheduler"
	RecorderConsumer  = "recorder"
)

// Subject prefixes. A webhook's id is the last token.
const (
	DeliverPrefix = "hermod.dlv."    // ready for a broker deliverer
	DelayPrefix   = "hermod.delay."  // waiting for a due time (backoff, Retry-After, breaker, saturation)
	AgentPrefix   = "hermod.agentq." // + <label-set hash>.<webhook id>: for agents
	HeldPrefix    = "hermod.held."   // parked while the webhook is paused
	ResultsPrefix = "hermod.results."
	DeadPrefix    = "hermod.dead."
	// ChangesSubject carries webhook change notices (core NATS) to the indexes.
	ChangesSubject = "hermod.changes.webhooks"
	// OpsEventPrefix + <event type>: Hermod's own operational events
	// (family "hermod"), captured by the event stream beside the platform's
	// subjects. Only Hermod publishes here; the router trusts the
	// operational family, and HdrAboutWebhook, on these subjects alone.
	OpsEventPrefix = "hermod.opsevt."
)

// OpsEventSubject is where Hermod publishes its operational event of
// eventType ("hermod.webhook.degraded" → "hermod.opsevt.hermod.webhook.degraded").
func OpsEventSubject(eventType string) string { return OpsEventPrefix + eventType }

// IsOpsEventSubject says whether subject is one of Hermod's operational
// event subjects.
func IsOpsEventSubject(subject string) bool { return strings.HasPrefix(subject, OpsEventPrefix) }

// Headers of a delivery message.
const (
	HdrMsgID     = "Nats-Msg-Id"
	HdrVersion   = "Hermod-V"
	HdrDelivery  = "Hermod-Delivery"
	HdrWebhook   = "Hermod-Webhook"
	HdrEvent     = "Hermod-Event"
	HdrType      = "Hermod-Type"
	HdrEpoch     = "Hermod-Epoch"
	HdrAttempts  = "Hermod-Attempts" // failed attempts so far in this epoch
	HdrLost      = "Hermod-Lost"     // leases expired on earlier copies
	HdrCreated   = "Hermod-Created"  // unix ms, first enqueue
	HdrDue       = "Hermod-Due"      // unix ms, for delayed messages
	HdrHeldSince = "Hermod-Held-Since"
	// Headers of a dead letter.
	HdrReason = "Hermod-Reason" // why it died (a streams.Reason)
	HdrError  = "Hermod-Error"  // the last error
	// HdrAboutWebhook, on an operational event (an OpsEventSubject only),
	// names the webhook the event is about: the router never delivers the
	// event to that webhook.
	HdrAboutWebhook = "Hermod-About-Webhook"
)

// Settings of the streams and consumers that depend on configuration.
type Settings struct {
	DedupWindow time.Duration // Nats-Msg-Id window of events and deliveries
	AcquireTTL  time.Duration // ack wait of the deliverer consumer
	Retention   time.Duration // how long dead letters are kept
	Subjects    []string      // event stream subjects (catalogue families)
	Replicas    int
	// MaxEventBytes is HERMOD_MAX_EVENT_BYTES (256 KiB when zero): the
	// event stream refuses a message larger than MaxEnvelopeBytes of it
	// plus EventHeaderAllowance.
	MaxEventBytes int
	// EnsureFor bounds how long EnsureStreams keeps trying a stream the
	// server does not answer for (2 min when zero); OnRetry, when set,
	// hears of each failed try before the wait.
	EnsureFor time.Duration
	OnRetry   func(stream string, err error, wait time.Duration)
}

func (s Settings) withDefaults() Settings {
	if s.DedupWindow <= 0 {
		s.DedupWindow = 30 * time.Minute
	}
	if s.AcquireTTL <= 0 {
		s.AcquireTTL = 60 * time.Second
	}
	if s.Retention <= 0 {
		s.Retention = 72 * time.Hour
	}
	if s.Replicas <= 0 {
		s.Replicas = 1
	}
	if s.MaxEventBytes <= 0 {
		s.MaxEventBytes = 256 << 10
	}
	if s.EnsureFor <= 0 {
		s.EnsureFor = 2 * time.Minute
	}
	return s
}

// RouterConsumerConfig is the router's durable consumer on the event stream.
func RouterConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{Durable: RouterConsumer, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxAckPending: 4096, MaxDeliver: -1,
		Description: "fans events out to deliveries"}
}

// DelivererConsumerConfig is the deliverers' shared pull consumer. AckWait
// is the acquire TTL; no BackOff (it would replace AckWait). MaxDeliver is a
// safety cap above the 5 lease losses after which Hermod itself dead-letters.
func DelivererConsumerConfig(ttl time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{Durable: DelivererConsumer, AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubject: DeliverPrefix + ">", AckWait: ttl, MaxAckPending: 20000, MaxDeliver: 10,
		Description: "broker deliveries"}
}

// SchedulerConsumerConfig takes delayed deliveries and republishes them when
// due; it never makes an HTTP call, so its large ack-pending window blocks nobody.
func SchedulerConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{Durable: SchedulerConsumer, AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubject: DelayPrefix + ">", AckWait: 30 * time.Second, MaxAckPending: 1_000_000, MaxDeliver: -1,
		Description: "releases delayed deliveries when due"}
}

// RecorderConsumerConfig is the recorder's consumer on the results stream.
func RecorderConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{Durable: RecorderConsumer, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxAckPending: 50000, MaxDeliver: -1,
		Description: "writes outcomes to Redis"}
}

// EventHeaderAllowance is the room for headers (Nats-Msg-Id, a tracing
// header or two) that the event stream's message size limit allows above
// the largest event: JetStream counts headers and body together.
const EventHeaderAllowance = 4 << 10

// EnvelopeRoom is what the API may add to an event body of
// HERMOD_MAX_EVENT_BYTES when it makes the envelope: a generated id and
// the timestamp, with their keys.
const EnvelopeRoom = 512

// MaxEnvelopeBytes is the largest event envelope for HERMOD_MAX_EVENT_BYTES
// maxEvent: the API refuses to publish a larger one, and the router refuses
// a larger one published straight to JetStream.
func MaxEnvelopeBytes(maxEvent int) int { return maxEvent + EnvelopeRoom }

// Meta is what a delivery message says about its delivery.
type Meta struct {
	DeliveryID string
	WebhookID  string
	EventID    string
	EventType  string
	Epoch      int
	Attempts   int   // failed attempts so far in this epoch
	Lost       int   // leases lost on earlier copies
	CreatedAt  int64 // unix ms
	Due        int64 // unix ms; 0 = now
	HeldSince  int64 // unix ms; 0 = not held
}

// NewMsg builds a delivery message on subject with msgID as Nats-Msg-Id.
func NewMsg(subject, msgID string, m Meta, body []byte) *nats.Msg {
	h := nats.Header{
		HdrMsgID:    {msgID},
		HdrVersion:  {"1"},
		HdrDelivery: {m.DeliveryID},
		HdrWebhook:  {m.WebhookID},
		HdrEvent:    {m.EventID},
		HdrType:     {m.EventType},
		HdrCreated:  {strconv.FormatInt(m.CreatedAt, 10)},
	}
	if m.Epoch != 0 {
		h[HdrEpoch] = []string{strconv.Itoa(m.Epoch)}
	}
	if m.Attempts != 0 {
		h[HdrAttempts] = []string{strconv.Itoa(m.Attempts)}
	}
	if m.Lost != 0 {
		h[HdrLost] = []string{strconv.Itoa(m.Lost)}
	}
	if m.Due != 0 {
		h[HdrDue] = []string{strconv.FormatInt(m.Due, 10)}
	}
	if m.HeldSince != 0 {
		h[HdrHeldSince] = []string{strconv.FormatInt(m.HeldSince, 10)}
	}
	return &nats.Msg{Subject: subject, Header: h, Data: body}
}

// ParseMeta reads the delivery headers of a message.
func ParseMeta(h nats.Header) (Meta, error) {
	var m Meta
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	num := func(k string) (int64, error) {
		s := get(k)
		if s == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("header %s: %w", k, err)
		}
		return n, nil
	}
	if v := get(HdrVersion); v != "1" {
		return m, fmt.Errorf("unsupported delivery schema version %q", v)
	}
	m.DeliveryID, m.WebhookID, m.EventID, m.EventType = get(HdrDelivery), get(HdrWebhook), get(HdrEvent), get(HdrType)
	if m.DeliveryID == "" || m.WebhookID == "" {
		return m, errors.New("delivery message without delivery or webhook id")
	}
	var err error
	var n int64
	if n, err = num(HdrEpoch); err != nil {
		return m, err
	}
	m.Epoch = int(n)
	if n, err = num(HdrAttempts); err != nil {
		return m, err
	}
	m.Attempts = int(n)
	if n, err = num(HdrLost); err != nil {
		return m, err
	}
	m.Lost = int(n)
	if m.CreatedAt, err = num(HdrCreated); err != nil {
		return m, err
	}
	if m.Due, err = num(HdrDue); err != nil {
		return m, err
	}
	if m.HeldSince, err = num(HdrHeldSince); err != nil {
		return m, err
	}
	return m, nil
}

// RetryMsgID is the Nats-Msg-Id of a copy of a delivery republished for a new
// attempt: distinct per (epoch, attempts, lost, seq) so the dedup window never
// swallows a legitimate retry, and equal for a replayed republish of one copy.
func RetryMsgID(m Meta, seq uint64) string {
	return m.DeliveryID + ":" + strconv.Itoa(m.Epoch) + ":" + strconv.Itoa(m.Attempts) + ":" +
		strconv.Itoa(m.Lost) + ":" + strconv.FormatUint(seq, 10)
}

// Subjects of the results stream.
const (
	EnqueuedSubject = ResultsPrefix + "enq"     // streams.Enqueued
	OutcomeSubject  = ResultsPrefix + "out"     // streams.Outcome
	BreakerSubject  = ResultsPrefix + "breaker" // streams.BreakerState
	// AgentResultsPrefix + <agent id> + ".out" | ".breaker": an agent's own
	// results subjects (its permissions allow only its own), so the
	// recorder knows which agent sent a result and checks its grant.
	AgentResultsPrefix = ResultsPrefix + "agent."
)

// EventSubject is the subject an event of eventType is published on: the
// type itself, which the event stream captures by its family ("family.>",
// see catalog.StreamSubjects). Publishers set the event id as Nats-Msg-Id.
func EventSubject(eventType string) string { return eventType }

// DeliverSubject is where a broker delivery for webhookID waits.
func DeliverSubject(webhookID string) string { return DeliverPrefix + webhookID }

// DelaySubject is where a delayed delivery for webhookID waits.
func DelaySubject(webhookID string) string { return DelayPrefix + webhookID }

// HeldSubject is where a delivery for a paused webhookID is parked.
func HeldSubject(webhookID string) string { return HeldPrefix + webhookID }

// DeadSubject is the dead-letter subject of webhookID.
func DeadSubject(webhookID string) string { return DeadPrefix + webhookID }

// LabelSetHash names a canonical (sorted) target label set in subjects, so
// label text never has to be subject-safe.
func LabelSetHash(labels []string) string {
	sum := sha256.Sum256([]byte(strings.Join(labels, "\n")))
	return hex.EncodeToString(sum[:8])
}

// AgentSubject is where a delivery for an agent-delivered webhook waits.
func AgentSubject(labels []string, webhookID string) string {
	return AgentPrefix + LabelSetHash(labels) + "." + webhookID
}

// SubjectFor picks the subject of a fresh delivery to w: agents for a
// webhook with target labels, held while paused, else the broker deliverers.
func SubjectFor(webhookID string, targetLabels []string, enabled bool) string {
	switch {
	case len(targetLabels) > 0:
		return AgentSubject(targetLabels, webhookID)
	case !enabled:
		return HeldSubject(webhookID)
	default:
		return DeliverSubject(webhookID)
	}
}

// IsReadySubject says whether subject is SubjectFor(id, labels, true),
// without building it (broker deliveries check it on every attempt).
func IsReadySubject(subject, id string, labels []string) bool {
	head, ok := strings.CutSuffix(subject, id)
	if !ok {
		return false
	}
	if len(labels) == 0 {
		return head == DeliverPrefix
	}
	return strings.HasPrefix(head, AgentPrefix) && head == AgentPrefix+LabelSetHash(labels)+"."
}

// Pull options every consumer uses: short pull requests with frequent
// heartbeats, so a pull lost under load (a starved process, a reconnect) is
// replaced within seconds instead of after the 30 s default expiry.
var (
	PullExpiry    = jetstream.PullExpiry(5 * time.Second)
	PullHeartbeat = jetstream.PullHeartbeat(1 * time.Second)
)

// InFlightPrefix + "broker", or + the label set's consumer name for an
// agent-delivered webhook, is asked (core NATS request, data = webhook id)
// which of a webhook's deliveries have an attempt running now; every
// deliverer that may hold them answers with the ids it holds (JSON array),
// so "acquired" is derived, never stored. Agents hear only the questions
// about their own label sets.
const InFlightPrefix = "hermod.ctl.inflight."

// InFlightSubject is where the in-flight question about a webhook with
// these target labels goes.
func InFlightSubject(targetLabels []string) string {
	if len(targetLabels) == 0 {
		return InFlightPrefix + "broker"
	}
	return InFlightPrefix + AgentConsumerName(targetLabels)
}

// SubjectWebhookID is the webhook id a delivery subject names: its last
// token (every delivery, delay, held and dead subject ends with it). A
// message whose Hermod-Webhook header names another webhook is forged or
// corrupt.
func SubjectWebhookID(subject string) string {
	return subject[strings.LastIndexByte(subject, '.')+1:]
}

// Pulled is a message with the time it arrived from the server: its lease
// (the consumer's ack wait) started then, not when a worker took it.
type Pulled struct {
	jetstream.Msg
	At time.Time
}

// Feed pulls messages from cons into out, so the pulling never waits for
// the workers (heartbeats keep flowing while every worker is busy). drain
// stops pulling, hands the buffered messages to out, closes out and returns.
func Feed(cons jetstream.Consumer, max int, out chan<- Pulled, onErr func(error)) (drain func(), err error) {
	return feed(cons, max, out, onErr, true)
}

// FeedShared is Feed for several consumers feeding one channel: drain does
// not close out.
func FeedShared(cons jetstream.Consumer, max int, out chan<- Pulled, onErr func(error)) (drain func(), err error) {
	return feed(cons, max, out, onErr, false)
}

func feed(cons jetstream.Consumer, max int, out chan<- Pulled, onErr func(error), closeOut bool) (drain func(), err error) {
	it, err := cons.Messages(jetstream.PullMaxMessages(max), PullExpiry, PullHeartbeat)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if closeOut {
			defer close(out)
		}
		for {
			m, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				if onErr != nil {
					onErr(err)
				}
				time.Sleep(50 * time.Millisecond) // e.g. a missed heartbeat: the iterator re-pulls
				continue
			}
			out <- Pulled{Msg: m, At: time.Now()}
		}
	}()
	var once sync.Once
	return func() { once.Do(it.Drain); <-done }, nil
}

// AgentConsumerName is the durable consumer of one target label set.
func AgentConsumerName(labels []string) string { return "agent_" + LabelSetHash(labels) }

// AgentConsumerConfig is the consumer of one label set, created by the
// control plane (never by agents): agents granted a superset of the set take
// its deliveries. Ack wait is the acquire TTL, as for broker deliverers.
func AgentConsumerConfig(labels []string, ttl time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{Durable: AgentConsumerName(labels), AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubject: AgentPrefix + LabelSetHash(labels) + ".>", AckWait: ttl, MaxAckPending: 20000, MaxDeliver: 10,
		Description: AgentConsumerDescription + strings.Join(labels, ",")}
}

// AgentConsumerDescription + the label set, comma-separated, describes a
// label set's consumer: the control plane reads the set back from it.
const AgentConsumerDescription = "agent deliveries for "

// AgentOutcomeSubject is where agent id publishes its outcomes.
func AgentOutcomeSubject(id string) string { return AgentResultsPrefix + id + ".out" }

// AgentBreakerSubject is where agent id publishes its breaker reports.
func AgentBreakerSubject(id string) string { return AgentResultsPrefix + id + ".breaker" }

// ParseAgentResultSubject splits an agent's results subject into the agent
// id and the kind ("out" or "breaker"); ok is false for any other subject.
func ParseAgentResultSubject(subject string) (id, kind string, ok bool) {
	rest, found := strings.CutPrefix(subject, AgentResultsPrefix)
	if !found {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return "", "", false
	}
	id, kind = rest[:i], rest[i+1:]
	if strings.Contains(id, ".") || (kind != "out" && kind != "breaker") {
		return "", "", false
	}
	return id, kind, true
}
