package api

import (
	"encoding/json"
	"math"
	"time"

	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// WebhookView is the webhook object of the API: never the url, auth header,
// custom header values or secret.
type WebhookView struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	Description   string            `json:"description"`
	URLRedacted   string            `json:"url_redacted"`
	HasURL        bool              `json:"has_url"`
	HasAuthHeader bool              `json:"has_auth_header"`
	HasHeaders    bool              `json:"has_headers"`
	HeaderNames   []string          `json:"header_names"`
	EventTypes    []string          `json:"event_types"`
	TargetLabels  []string          `json:"target_labels"`
	Filters       *webhooks.Filters `json:"filters"`
	// Filter is the CEL filter expression, null when none.
	Filter         *string `json:"filter"`
	Enabled        bool    `json:"enabled"`
	Status         string  `json:"status"`
	MaxRetries     int     `json:"max_retries"`
	TimeoutSeconds int     `json:"timeout_seconds"`
	// Format is the body's format; FormatOptions its options without the
	// routing key, which shows only as HasRoutingKey.
	Format         formats.Name     `json:"format"`
	FormatOptions  *formats.Options `json:"format_options"`
	HasRoutingKey  bool             `json:"has_routing_key"`
	TotalDelivered int64            `json:"total_delivered"`
	TotalFailed    int64            `json:"total_failed"`
	SuccessRate    *float64         `json:"success_rate"`
	LastDeliveryAt *string          `json:"last_delivery_at"`
	CreatedAt      string           `json:"created_at"`
	UpdatedAt      string           `json:"updated_at"`
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func tsPtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := ts(t)
	return &s
}

func webhookView(w *webhooks.Webhook, st store.WebhookStats) WebhookView {
	v := WebhookView{ID: w.ID, Name: w.Name, Description: w.Description, URLRedacted: webhooks.RedactURL(w.URL),
		HasURL: w.URL != "", HasAuthHeader: w.AuthHeader != "", HasHeaders: len(w.Headers) > 0,
		HeaderNames: webhooks.HeaderNames(w.Headers), EventTypes: w.EventTypes, TargetLabels: w.TargetLabels,
		Filters: w.Filters, Enabled: w.Enabled, MaxRetries: w.MaxRetries, TimeoutSeconds: w.TimeoutSeconds,
		Format: w.Format.OrStandard(), TotalDelivered: st.Delivered, TotalFailed: st.Failed, LastDeliveryAt: tsPtr(st.LastDeliveryAt),
		CreatedAt: ts(w.CreatedAt), UpdatedAt: ts(w.UpdatedAt)}
	if v.TargetLabels == nil {
		v.TargetLabels = []string{}
	}
	if w.Filter != "" {
		f := w.Filter
		v.Filter = &f
	}
	if w.FormatOptions != nil {
		o := w.FormatOptions.Redacted()
		v.FormatOptions, v.HasRoutingKey = &o, w.FormatOptions.RoutingKey != ""
	}
	switch {
	case !w.Enabled:
		v.Status = "paused"
	case st.Degraded(time.Now()):
		v.Status = "degraded"
	default:
		v.Status = "active"
	}
	if n := st.Delivered + st.Failed; n > 0 {
		r := math.Round(float64(st.Delivered)/float64(n)*10000) / 100
		v.SuccessRate = &r
	}
	return v
}

// DeliveryView is the delivery object of the API.
type DeliveryView struct {
	ID             string                `json:"id"`
	WebhookID      string                `json:"webhook_id"`
	EventID        string                `json:"event_id"`
	EventType      string                `json:"event_type"`
	Status         streams.Status        `json:"status"`
	Attempts       int                   `json:"attempts"`
	NextRetryAt    *string               `json:"next_retry_at"`
	LastStatusCode *int                  `json:"last_status_code"`
	LastError      *string               `json:"last_error"`
	DeadReason     *streams.Reason       `json:"dead_reason,omitempty"`
	TargetLabels   []string              `json:"target_labels"`
	DeliveredBy    *string               `json:"delivered_by"`
	CreatedAt      string                `json:"created_at"`
	UpdatedAt      string                `json:"updated_at"`
	CompletedAt    *string               `json:"completed_at"`
	PayloadSize    int                   `json:"payload_size"`
	Payload        *json.RawMessage      `json:"payload,omitempty"`         // single view only (null once expired)
	AttemptHistory *[]store.AttemptEntry `json:"attempt_history,omitempty"` // single view only (always, [] before any attempt)
}

func deliveryView(d *store.Delivery) DeliveryView {
	v := DeliveryView{ID: d.ID, WebhookID: d.WebhookID, EventID: d.EventID, EventType: d.EventType, Status: d.Status,
		Attempts: d.Attempts, NextRetryAt: tsPtr(d.NextRetryAt), TargetLabels: d.TargetLabels,
		CreatedAt: ts(d.CreatedAt), UpdatedAt: ts(d.UpdatedAt), CompletedAt: tsPtr(d.CompletedAt), PayloadSize: d.PayloadSize}
	if v.TargetLabels == nil {
		v.TargetLabels = []string{}
	}
	if d.LastStatusCode != 0 {
		c := d.LastStatusCode
		v.LastStatusCode = &c
	}
	if d.LastError != "" {
		e := d.LastError
		v.LastError = &e
	}
	if d.Reason != "" && d.Status == streams.StatusDead {
		r := d.Reason
		v.DeadReason = &r
	}
	if d.DeliveredBy != "" {
		b := d.DeliveredBy
		v.DeliveredBy = &b
	}
	return v
}

// Page is the shape of every list response.
type Page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func page[T any](data []T, next string) Page[T] {
	if data == nil {
		data = []T{}
	}
	p := Page[T]{Data: data}
	if next != "" {
		p.NextCursor = &next
	}
	return p
}
