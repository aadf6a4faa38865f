package streams

import (
	"encoding/json"

	"github.com/hermodhq/hermod/shared/formats"
)

// SchemaVersion is the version of the messages below. A reader accepts this
// version and the previous one, so agents of the previous release keep working.
const SchemaVersion = 1

// Status is a delivery's status. The values below are the only ones: the
// engine writes them, the recorder stores them, the API and the Webhooks
// page show and filter by them.
type Status string

// Delivery statuses, as the API shows them.
const (
	StatusPending  Status = "pending"
	StatusAcquired Status = "acquired" // never stored: an attempt is running (derived by the API)
	StatusSuccess  Status = "success"
	StatusFailed   Status = "failed"
	StatusDead     Status = "dead"
)

// Statuses lists every status, in the order the API documents them.
var Statuses = []Status{StatusPending, StatusAcquired, StatusSuccess, StatusFailed, StatusDead}

// Final says whether a delivery in status s will not be attempted again
// (unless an operator retries it).
func (s Status) Final() bool { return s == StatusSuccess || s == StatusDead }

// Reason is why a delivery died.
type Reason string

// Reasons a delivery died, in Outcome.Reason.
const (
	ReasonExhausted Reason = "exhausted" // max(max_retries,1) failed attempts
	ReasonTerminal  Reason = "terminal"  // a non-retryable answer (4xx)
	ReasonAbandoned Reason = "abandoned" // its lease expired 5 times without an outcome
	ReasonExpired   Reason = "expired"   // held longer than HERMOD_MAX_HOLD
	// ReasonUnrenderable: the webhook's format could not render the event
	// (its template failed); another attempt would fail the same way.
	ReasonUnrenderable Reason = "unrenderable"
)

// Reasons lists every dead reason.
var Reasons = []Reason{ReasonExhausted, ReasonTerminal, ReasonAbandoned, ReasonExpired, ReasonUnrenderable}

// Outcome is one state change of a delivery, published to the results stream
// by whoever made it (a deliverer, an agent, the scheduler) and written to
// Redis by the recorder.
type Outcome struct {
	V          int    `json:"v"`
	DeliveryID string `json:"delivery_id"`
	WebhookID  string `json:"webhook_id"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	// Epoch counts manual retries of a dead delivery (0 for the first life).
	Epoch int `json:"epoch"`
	// Attempt is the number of attempts made in this epoch, this one included.
	Attempt int `json:"attempt"`
	// Status is the delivery's status after this outcome.
	Status Status `json:"status"`
	// AttemptStatus is success or failed when an HTTP attempt was made, else "".
	AttemptStatus Status `json:"attempt_status,omitempty"`
	StatusCode    int    `json:"status_code,omitempty"`
	// Response is the start of the receiver's answer (delivery.ExcerptLen
	// bytes at most) and ResponseType its media type; never a header.
	Response     string   `json:"response,omitempty"`
	ResponseType string   `json:"response_type,omitempty"`
	DurationMs   int64    `json:"duration_ms,omitempty"`
	Error        string   `json:"error,omitempty"`
	Reason       Reason   `json:"reason,omitempty"`
	By           string   `json:"by,omitempty"`
	StartedAt    int64    `json:"started_at,omitempty"`  // unix ms
	FinishedAt   int64    `json:"finished_at,omitempty"` // unix ms
	NextRetryAt  int64    `json:"next_retry_at,omitempty"`
	CreatedAt    int64    `json:"created_at"` // unix ms, when the delivery was enqueued
	PayloadSize  int      `json:"payload_size"`
	TargetLabels []string `json:"target_labels,omitempty"`
}

// Enqueued tells the recorder which deliveries one event produced. The
// event's envelope travels once, not once per delivery.
type Enqueued struct {
	V          int             `json:"v"`
	EventID    string          `json:"event_id"`
	EventType  string          `json:"event_type"`
	CreatedAt  int64           `json:"created_at"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	Deliveries []EnqueuedItem  `json:"deliveries"`
}

// BreakerState reports that a deliverer's failure breaker for a webhook
// opened (OpenUntil set) or closed (OpenUntil 0); a webhook with an open
// breaker shows as degraded.
type BreakerState struct {
	V         int    `json:"v"`
	WebhookID string `json:"webhook_id"`
	OpenUntil int64  `json:"open_until"` // unix ms; 0 = closed
	At        int64  `json:"at"`         // unix ms of the change
}

// EnqueuedItem is one delivery of an Enqueued message.
type EnqueuedItem struct {
	DeliveryID   string   `json:"delivery_id"`
	WebhookID    string   `json:"webhook_id"`
	TargetLabels []string `json:"target_labels,omitempty"`
}

// Agent control subjects (core NATS request/reply), one pair per agent:
// hermod.agentctl.<agent id>.hello and .heartbeat.
const AgentControlPrefix = "hermod.agentctl."

// AgentRequest is what an agent sends on hello and heartbeat.
type AgentRequest struct {
	V        int    `json:"v"`
	Token    string `json:"token"`
	Version  string `json:"version"`
	InFlight int    `json:"in_flight"`
}

// AgentConfig is the control plane's answer: the agent's grant, the label
// set consumers it may take, and the webhooks of those sets with their
// secrets (in memory only on the agent; TLS on the wire in production).
type AgentConfig struct {
	V            int            `json:"v"`
	Error        string         `json:"error,omitempty"`
	AgentID      string         `json:"agent_id"`
	Labels       []string       `json:"labels"`
	AcquireTTLms int64          `json:"acquire_ttl_ms"`
	HeartbeatMs  int64          `json:"heartbeat_ms"`
	Consumers    []string       `json:"consumers"`
	Webhooks     []AgentWebhook `json:"webhooks"`
}

// AgentWebhook is one webhook an agent may deliver.
type AgentWebhook struct {
	ID                  string            `json:"id"`
	URL                 string            `json:"url"`
	AuthHeader          string            `json:"auth_header,omitempty"`
	Headers             map[string]string `json:"headers,omitempty"`
	Secret              string            `json:"secret"`
	PrevSecret          string            `json:"prev_secret,omitempty"`
	PrevSecretExpiresAt int64             `json:"prev_secret_expires_at,omitempty"` // unix ms
	TargetLabels        []string          `json:"target_labels"`
	MaxRetries          int               `json:"max_retries"`
	TimeoutSeconds      int               `json:"timeout_seconds"`
	Enabled             bool              `json:"enabled"`
	UpdatedAt           int64             `json:"updated_at"` // unix ms
	// Format and FormatOptions: the agent renders the body itself (the
	// options may hold a routing key: in memory only on the agent). The
	// options are the webhook's own, shared and read only: they are
	// marshalled with the answer, never copied or marshalled apart.
	Format        string           `json:"format,omitempty"`
	FormatOptions *formats.Options `json:"format_options,omitempty"`
}

// AgentTestPrefix + agent id: the API asks an agent to send a test event
// (core NATS request/reply).
const AgentTestPrefix = "hermod.agenttest."

// AgentTestRequest asks an agent to send Body to a webhook now.
type AgentTestRequest struct {
	V          int    `json:"v"`
	WebhookID  string `json:"webhook_id"`
	DeliveryID string `json:"delivery_id"`
	Body       []byte `json:"body"`
}

// AgentTestResult is the agent's answer.
type AgentTestResult struct {
	StatusCode int    `json:"status_code"`
	Success    bool   `json:"success"`
	DurationMs int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
	Excerpt    string `json:"excerpt"`
}
