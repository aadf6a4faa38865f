package apiclient

import "encoding/json"

// Page is the shape of every list answer.
type Page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// Webhook is the webhook object (never its URL, headers or secret).
type Webhook struct {
	ID             string          `json:"id"`
	Name           string          `json:"name"`
	Description    string          `json:"description"`
	URLRedacted    string          `json:"url_redacted"`
	HasAuthHeader  bool            `json:"has_auth_header"`
	HeaderNames    []string        `json:"header_names"`
	EventTypes     []string        `json:"event_types"`
	TargetLabels   []string        `json:"target_labels"`
	Filters        json.RawMessage `json:"filters"`
	Enabled        bool            `json:"enabled"`
	Status         string          `json:"status"`
	MaxRetries     int             `json:"max_retries"`
	TimeoutSeconds int             `json:"timeout_seconds"`
	Format         string          `json:"format"`
	TotalDelivered int64           `json:"total_delivered"`
	TotalFailed    int64           `json:"total_failed"`
	SuccessRate    *float64        `json:"success_rate"`
	LastDeliveryAt *string         `json:"last_delivery_at"`
	CreatedAt      string          `json:"created_at"`
	UpdatedAt      string          `json:"updated_at"`
}

// Delivery is the delivery object; Payload and AttemptHistory come with a
// single delivery only.
type Delivery struct {
	ID             string          `json:"id"`
	WebhookID      string          `json:"webhook_id"`
	EventID        string          `json:"event_id"`
	EventType      string          `json:"event_type"`
	Status         string          `json:"status"`
	Attempts       int             `json:"attempts"`
	NextRetryAt    *string         `json:"next_retry_at"`
	LastStatusCode *int            `json:"last_status_code"`
	LastError      *string         `json:"last_error"`
	DeadReason     *string         `json:"dead_reason"`
	TargetLabels   []string        `json:"target_labels"`
	DeliveredBy    *string         `json:"delivered_by"`
	CreatedAt      string          `json:"created_at"`
	UpdatedAt      string          `json:"updated_at"`
	CompletedAt    *string         `json:"completed_at"`
	PayloadSize    int             `json:"payload_size"`
	Payload        json.RawMessage `json:"payload"`
	AttemptHistory []Attempt       `json:"attempt_history"`
}

// Attempt is one HTTP attempt of a delivery.
type Attempt struct {
	Attempt     int    `json:"attempt"`
	Epoch       int    `json:"epoch"`
	StartedAt   string `json:"started_at"`
	Status      string `json:"status"`
	StatusCode  int    `json:"status_code"`
	DurationMS  int64  `json:"duration_ms"`
	PayloadSize int    `json:"payload_size"`
	Error       string `json:"error"`
	By          string `json:"by"`
	Response    string `json:"response"`
}

// Retried is the answer to a manual retry.
type Retried struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// TestResult is the outcome of a test delivery.
type TestResult struct {
	Success         bool    `json:"success"`
	StatusCode      *int    `json:"status_code"`
	DurationMS      int64   `json:"duration_ms"`
	Error           *string `json:"error"`
	ResponseExcerpt string  `json:"response_excerpt"`
	DeliveryID      string  `json:"delivery_id"`
	By              string  `json:"by"`
}

// Secret is a webhook's signing secret.
type Secret struct {
	Secret                  string  `json:"secret"`
	PreviousSecretExpiresAt *string `json:"previous_secret_expires_at"`
}

// Stats are a webhook's per-minute statistics.
type Stats struct {
	WebhookID string        `json:"webhook_id"`
	Window    string        `json:"window"`
	Data      []StatsBucket `json:"data"`
}

// StatsBucket is one minute of statistics.
type StatsBucket struct {
	Minute  string `json:"minute"`
	Success int64  `json:"success"`
	Failed  int64  `json:"failed"`
	Dead    int64  `json:"dead"`
	P50MS   *int64 `json:"p50_ms"`
	P99MS   *int64 `json:"p99_ms"`
}

// Preview is what a webhook would send for an event.
type Preview struct {
	Format      string          `json:"format"`
	ContentType string          `json:"content_type"`
	Event       json.RawMessage `json:"event"`
	Body        json.RawMessage `json:"body"`
}

// EventType is a catalogue entry.
type EventType struct {
	Type        string `json:"type"`
	Description string `json:"description"`
}

// Event is the body of POST /api/v1/events.
type Event struct {
	EventType string            `json:"event_type"`
	Data      json.RawMessage   `json:"data"`
	ID        string            `json:"id,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// EventAccepted is the answer to a published event.
type EventAccepted struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// Agent is an agent and its grant; Credentials come only from create.
type Agent struct {
	ID          string            `json:"id"`
	Labels      []string          `json:"labels"`
	Status      string            `json:"status"`
	Version     *string           `json:"version"`
	LastSeenAt  *string           `json:"last_seen_at"`
	InFlight    int               `json:"in_flight"`
	CreatedAt   string            `json:"created_at"`
	UpdatedAt   string            `json:"updated_at"`
	Credentials *AgentCredentials `json:"credentials,omitempty"`
}

// AgentCredentials are shown once, when the agent is created.
type AgentCredentials struct {
	AgentID string `json:"agent_id"`
	Token   string `json:"token"`
}

// Replay states.
const (
	ReplayRunning   = "running"
	ReplayDone      = "done"
	ReplayCancelled = "cancelled"
	ReplayFailed    = "failed"
)

// Replay is a replay of a webhook's past deliveries.
type Replay struct {
	ID         string   `json:"id"`
	WebhookID  string   `json:"webhook_id"`
	Statuses   []string `json:"statuses"`
	Since      *string  `json:"since"`
	Until      *string  `json:"until"`
	State      string   `json:"state"`
	Matched    int64    `json:"matched"`
	Requeued   int64    `json:"requeued"`
	Skipped    int64    `json:"skipped"`
	Error      *string  `json:"error"`
	CreatedAt  string   `json:"created_at"`
	FinishedAt *string  `json:"finished_at"`
}

// Finished reports whether the replay will change no more.
func (r Replay) Finished() bool { return r.State != ReplayRunning }

// ReplayRequest is the body that starts a replay.
type ReplayRequest struct {
	Statuses []string `json:"statuses,omitempty"`
	Since    string   `json:"since,omitempty"`
	Until    string   `json:"until,omitempty"`
}
