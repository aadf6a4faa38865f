// Package opsevents publishes Hermod's own operational events (the
// "hermod" family of the catalogue: a webhook turned degraded or
// recovered, a delivery died, an agent went inactive or came back, a
// replay finished) into the event stream, where webhooks subscribe to them
// like to any other event.
//
// The rules that keep them sane, described for operators in docs/api.md
// ("Operational events"):
//
//   - Only Hermod publishes them, on its own subjects
//     (streams.OpsEventSubject); the API and the router refuse the family
//     from the platform.
//   - Each transition is told once across replicas: the state of what was
//     told lives in Redis and changes atomically (Store.UpdateOpsState).
//   - No loops: an event about webhook W is never delivered to W (the
//     router drops W from the event's matches, streams.HdrAboutWebhook),
//     and a delivery of an operational event that dies produces no
//     hermod.delivery.dead, so two failing webhooks subscribed to each
//     other's events cannot feed each other.
//   - Bounded: at most one hermod.webhook.degraded per webhook per
//     cooldown, and at most DeadLimit hermod.delivery.dead per webhook per
//     cooldown window (the next one told counts those withheld).
//
// Payloads never carry a url beyond its scheme, host and port, a header,
// a secret or a payload.
package opsevents

import (
	"time"

	"github.com/google/uuid"

	"github.com/hermodhq/hermod/shared/catalog"
)

// Event is an operational event's data: its type, the webhook it is about
// (the router never delivers it there; "" for none) and its id.
type Event interface {
	Type() string
	AboutWebhook() string
	// OpsEventID is the event's id: derived from what it tells when that can
	// be told twice (a redelivered batch), so the event stream's dedup
	// window drops the copy; else new.
	OpsEventID() string
}

// namespace derives the ids of operational events.
var namespace = uuid.MustParse("0d7c6f7a-9a0b-4f57-8a3e-4c2b7d1e5f60")

func derivedID(parts string) string { return uuid.NewSHA1(namespace, []byte(parts)).String() }

// WebhookDegraded: a webhook turned degraded.
type WebhookDegraded struct {
	WebhookID   string `json:"webhook_id"`
	Name        string `json:"name"`
	URLRedacted string `json:"url_redacted"`
	// Reason is dead_streak (its last 3 finished deliveries died) or
	// breaker_open (its failure breaker opened).
	Reason           string     `json:"reason"`
	Message          string     `json:"message"`
	BreakerOpenUntil *time.Time `json:"breaker_open_until,omitempty"`
	DegradedAt       time.Time  `json:"degraded_at"`
}

func (WebhookDegraded) Type() string           { return catalog.WebhookDegraded }
func (e WebhookDegraded) AboutWebhook() string { return e.WebhookID }
func (e WebhookDegraded) OpsEventID() string {
	return derivedID("degraded/" + e.WebhookID + "/" + e.DegradedAt.Format(time.RFC3339Nano))
}

// WebhookRecovered: a webhook told degraded delivered again.
type WebhookRecovered struct {
	WebhookID   string     `json:"webhook_id"`
	Name        string     `json:"name"`
	URLRedacted string     `json:"url_redacted"`
	Message     string     `json:"message"`
	DegradedAt  *time.Time `json:"degraded_at"`
	RecoveredAt time.Time  `json:"recovered_at"`
}

func (WebhookRecovered) Type() string           { return catalog.WebhookRecovered }
func (e WebhookRecovered) AboutWebhook() string { return e.WebhookID }
func (e WebhookRecovered) OpsEventID() string {
	return derivedID("recovered/" + e.WebhookID + "/" + e.RecoveredAt.Format(time.RFC3339Nano))
}

// DeliveryDead: a delivery died.
type DeliveryDead struct {
	WebhookID   string `json:"webhook_id"`
	Name        string `json:"name"`
	URLRedacted string `json:"url_redacted"`
	DeliveryID  string `json:"delivery_id"`
	EventID     string `json:"event_id"`
	EventType   string `json:"event_type"`
	// Reason is the dead reason (exhausted, terminal, abandoned, expired,
	// unrenderable).
	Reason         string `json:"reason"`
	Attempts       int    `json:"attempts"`
	LastStatusCode int    `json:"last_status_code,omitempty"`
	// Error is the last attempt's error, as the API shows it (secrets
	// already replaced), cut to 300 bytes.
	Error   string `json:"error,omitempty"`
	Message string `json:"message"`
	// Suppressed is how many deliveries of the webhook died since the
	// previous hermod.delivery.dead about it without an event of their own
	// (over HERMOD_OPS_EVENTS_DEAD_LIMIT in a window).
	Suppressed int       `json:"suppressed"`
	Epoch      int       `json:"-"`
	DiedAt     time.Time `json:"died_at"`
}

func (DeliveryDead) Type() string           { return catalog.DeliveryDead }
func (e DeliveryDead) AboutWebhook() string { return e.WebhookID }
func (e DeliveryDead) OpsEventID() string {
	return derivedID("dead/" + e.DeliveryID + "/" + itoa(e.Epoch))
}

// AgentInactive: an agent stopped sending heartbeats.
type AgentInactive struct {
	AgentID    string     `json:"agent_id"`
	Labels     []string   `json:"labels"`
	Message    string     `json:"message"`
	LastSeenAt *time.Time `json:"last_seen_at"`
	InactiveAt time.Time  `json:"inactive_at"`
}

func (AgentInactive) Type() string         { return catalog.AgentInactive }
func (AgentInactive) AboutWebhook() string { return "" }
func (e AgentInactive) OpsEventID() string {
	return derivedID("inactive/" + e.AgentID + "/" + e.InactiveAt.Format(time.RFC3339Nano))
}

// AgentActive: an agent told inactive sends heartbeats again.
type AgentActive struct {
	AgentID       string     `json:"agent_id"`
	Labels        []string   `json:"labels"`
	Message       string     `json:"message"`
	LastSeenAt    *time.Time `json:"last_seen_at"`
	InactiveSince *time.Time `json:"inactive_since"`
}

func (AgentActive) Type() string         { return catalog.AgentActive }
func (AgentActive) AboutWebhook() string { return "" }
func (e AgentActive) OpsEventID() string {
	at := ""
	if e.LastSeenAt != nil {
		at = e.LastSeenAt.Format(time.RFC3339Nano)
	}
	return derivedID("active/" + e.AgentID + "/" + at)
}

// ReplayFinished: a bulk replay of a webhook's deliveries finished.
// Matched deliveries were found by the replay's selection; Requeued of
// them were sent again, Skipped were not (already pending, gone).
type ReplayFinished struct {
	ID        string `json:"id"`
	WebhookID string `json:"webhook_id"`
	// State is how the replay ended (done, cancelled or failed, as the replay object says).
	State    string `json:"state"`
	Matched  int    `json:"matched"`
	Requeued int    `json:"requeued"`
	Skipped  int    `json:"skipped"`
	Message  string `json:"message"`
}

func (ReplayFinished) Type() string { return catalog.ReplayFinished }

// AboutWebhook is "": a replay's own webhook may subscribe to hear that
// its replay finished (the event tells of an operator's action, not of a
// failure, and its delivery dying produces no event).
func (ReplayFinished) AboutWebhook() string { return "" }
func (e ReplayFinished) OpsEventID() string { return derivedID("replay/" + e.ID + "/" + e.State) }
