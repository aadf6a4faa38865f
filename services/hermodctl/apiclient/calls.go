package apiclient

import (
	"context"
	"net/http"
	"net/url"
)

// Webhooks

// ListWebhooks returns one page of webhooks.
func (c *Client) ListWebhooks(ctx context.Context, o PageOptions) (Page[Webhook], Raw, error) {
	return call[Page[Webhook]](ctx, c, http.MethodGet, "/api/v1/webhooks", o.query(), nil)
}

// GetWebhook returns a webhook.
func (c *Client) GetWebhook(ctx context.Context, id string) (Webhook, Raw, error) {
	return call[Webhook](ctx, c, http.MethodGet, "/api/v1/webhooks/"+seg(id), nil, nil)
}

// CreateWebhook creates a webhook from body (the API's create body).
func (c *Client) CreateWebhook(ctx context.Context, body any) (Webhook, Raw, error) {
	return call[Webhook](ctx, c, http.MethodPost, "/api/v1/webhooks", nil, body)
}

// UpdateWebhook changes the fields body names (PATCH: the others stay).
func (c *Client) UpdateWebhook(ctx context.Context, id string, body any) (Webhook, Raw, error) {
	return call[Webhook](ctx, c, http.MethodPatch, "/api/v1/webhooks/"+seg(id), nil, body)
}

// DeleteWebhook deletes a webhook.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/api/v1/webhooks/"+seg(id), nil, nil)
	return err
}

// PauseWebhook stops a webhook's deliveries (they are held).
func (c *Client) PauseWebhook(ctx context.Context, id string) (Webhook, Raw, error) {
	return call[Webhook](ctx, c, http.MethodPost, "/api/v1/webhooks/"+seg(id)+"/pause", nil, nil)
}

// ResumeWebhook starts a paused webhook's deliveries again.
func (c *Client) ResumeWebhook(ctx context.Context, id string) (Webhook, Raw, error) {
	return call[Webhook](ctx, c, http.MethodPost, "/api/v1/webhooks/"+seg(id)+"/resume", nil, nil)
}

// TestWebhook sends a signed webhook.test event to the webhook now.
func (c *Client) TestWebhook(ctx context.Context, id string) (TestResult, Raw, error) {
	return call[TestResult](ctx, c, http.MethodPost, "/api/v1/webhooks/"+seg(id)+"/test", nil, nil)
}

// PreviewWebhook renders what the webhook would send; body is the API's
// preview body (nil: a sample of its first event type).
func (c *Client) PreviewWebhook(ctx context.Context, id string, body any) (Preview, Raw, error) {
	return call[Preview](ctx, c, http.MethodPost, "/api/v1/webhooks/"+seg(id)+"/preview", nil, body)
}

// PreviewUnsaved renders what a webhook body not saved yet would send.
func (c *Client) PreviewUnsaved(ctx context.Context, body any) (Preview, Raw, error) {
	return call[Preview](ctx, c, http.MethodPost, "/api/v1/webhooks/preview", nil, body)
}

// GetSecret returns a webhook's signing secret.
func (c *Client) GetSecret(ctx context.Context, id string) (Secret, Raw, error) {
	return call[Secret](ctx, c, http.MethodGet, "/api/v1/webhooks/"+seg(id)+"/secret", nil, nil)
}

// RotateRequest is the optional body of a secret rotation.
type RotateRequest struct {
	Secret         string `json:"secret,omitempty"`
	OverlapSeconds *int   `json:"overlap_seconds,omitempty"`
}

// RotateSecret replaces a webhook's secret.
func (c *Client) RotateSecret(ctx context.Context, id string, r RotateRequest) (Secret, Raw, error) {
	return call[Secret](ctx, c, http.MethodPost, "/api/v1/webhooks/"+seg(id)+"/secret/rotate", nil, r)
}

// WebhookStats returns per-minute statistics over window ("" = the API's 1h).
func (c *Client) WebhookStats(ctx context.Context, id, window string) (Stats, Raw, error) {
	q := url.Values{}
	if window != "" {
		q.Set("window", window)
	}
	return call[Stats](ctx, c, http.MethodGet, "/api/v1/webhooks/"+seg(id)+"/stats", q, nil)
}

// Deliveries

// ListDeliveries returns one page of a webhook's deliveries, only those in
// status when it is not "".
func (c *Client) ListDeliveries(ctx context.Context, webhookID, status string, o PageOptions) (Page[Delivery], Raw, error) {
	q := o.query()
	if status != "" {
		q.Set("status", status)
	}
	return call[Page[Delivery]](ctx, c, http.MethodGet, "/api/v1/webhooks/"+seg(webhookID)+"/deliveries", q, nil)
}

// GetDelivery returns a delivery with its payload and attempt history.
func (c *Client) GetDelivery(ctx context.Context, id string) (Delivery, Raw, error) {
	return call[Delivery](ctx, c, http.MethodGet, "/api/v1/deliveries/"+seg(id), nil, nil)
}

// RetryDelivery sends a dead delivery again.
func (c *Client) RetryDelivery(ctx context.Context, id string) (Retried, Raw, error) {
	return call[Retried](ctx, c, http.MethodPost, "/api/v1/deliveries/"+seg(id)+"/retry", nil, nil)
}

// Events

// EventTypes returns the catalogue of event types.
func (c *Client) EventTypes(ctx context.Context) (Page[EventType], Raw, error) {
	return call[Page[EventType]](ctx, c, http.MethodGet, "/api/v1/event-types", nil, nil)
}

// SendEvent publishes an event.
func (c *Client) SendEvent(ctx context.Context, e Event) (EventAccepted, Raw, error) {
	return call[EventAccepted](ctx, c, http.MethodPost, "/api/v1/events", nil, e)
}

// Agents

// ListAgents returns one page of agents.
func (c *Client) ListAgents(ctx context.Context, o PageOptions) (Page[Agent], Raw, error) {
	return call[Page[Agent]](ctx, c, http.MethodGet, "/api/v1/agents", o.query(), nil)
}

// GetAgent returns an agent.
func (c *Client) GetAgent(ctx context.Context, id string) (Agent, Raw, error) {
	return call[Agent](ctx, c, http.MethodGet, "/api/v1/agents/"+seg(id), nil, nil)
}

// CreateAgent registers an agent with a grant of labels; the answer holds
// its credentials, shown once.
func (c *Client) CreateAgent(ctx context.Context, id string, labels []string) (Agent, Raw, error) {
	return call[Agent](ctx, c, http.MethodPost, "/api/v1/agents", nil, map[string]any{"id": id, "labels": labels})
}

// UpdateAgent replaces an agent's grant.
func (c *Client) UpdateAgent(ctx context.Context, id string, labels []string) (Agent, Raw, error) {
	return call[Agent](ctx, c, http.MethodPut, "/api/v1/agents/"+seg(id), nil, map[string]any{"labels": labels})
}

// DeleteAgent revokes an agent.
func (c *Client) DeleteAgent(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/api/v1/agents/"+seg(id), nil, nil)
	return err
}

// Replays

// StartReplay starts a replay of a webhook's past deliveries.
func (c *Client) StartReplay(ctx context.Context, webhookID string, r ReplayRequest) (Replay, Raw, error) {
	return call[Replay](ctx, c, http.MethodPost, "/api/v1/webhooks/"+seg(webhookID)+"/replay", nil, r)
}

// GetReplay returns a replay.
func (c *Client) GetReplay(ctx context.Context, id string) (Replay, Raw, error) {
	return call[Replay](ctx, c, http.MethodGet, "/api/v1/replays/"+seg(id), nil, nil)
}

// ListReplays returns one page of replays, of one webhook when webhookID is
// not "".
func (c *Client) ListReplays(ctx context.Context, webhookID string, o PageOptions) (Page[Replay], Raw, error) {
	q := o.query()
	if webhookID != "" {
		q.Set("webhook_id", webhookID)
	}
	return call[Page[Replay]](ctx, c, http.MethodGet, "/api/v1/replays", q, nil)
}

// CancelReplay stops a running replay.
func (c *Client) CancelReplay(ctx context.Context, id string) (Replay, Raw, error) {
	return call[Replay](ctx, c, http.MethodPost, "/api/v1/replays/"+seg(id)+"/cancel", nil, nil)
}
