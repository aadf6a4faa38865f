package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// Preview is what a webhook's format makes of an event, sent nowhere.
type Preview struct {
	Format      formats.Name    `json:"format"`
	ContentType string          `json:"content_type"`
	Event       json.RawMessage `json:"event"`
	Body        json.RawMessage `json:"body"`
}

// previewRequest names the event to preview: a given one, or a sample of
// an event type (default: the webhook's first subscribed type). For an
// unsaved webhook, webhook is its create body.
type previewRequest struct {
	Webhook   json.RawMessage `json:"webhook,omitempty"`
	EventType string          `json:"event_type,omitempty"`
	Event     *struct {
		EventType string            `json:"event_type"`
		Data      json.RawMessage   `json:"data"`
		Labels    map[string]string `json:"labels,omitempty"`
	} `json:"event,omitempty"`
}

// previewWebhook renders an event in a saved webhook's format.
func (s *Server) previewWebhook(c echo.Context) error {
	w, err := s.loadWebhook(c)
	if err != nil {
		return err
	}
	req, err := s.previewBody(c)
	if err != nil {
		return err
	}
	return s.preview(c, w, req)
}

// previewUnsaved renders an event in the format of a webhook body not
// saved yet (the page's form previews before saving).
func (s *Server) previewUnsaved(c echo.Context) error {
	req, err := s.previewBody(c)
	if err != nil {
		return err
	}
	if len(req.Webhook) == 0 {
		return invalidField("webhook", "is required: the webhook's create body (at least format and format_options)")
	}
	raw, err := webhooks.DecodeBody(req.Webhook)
	if err == nil {
		w := &webhooks.Webhook{MaxRetries: webhooks.DefaultMaxRetries, TimeoutSeconds: webhooks.DefaultTimeoutSeconds, Enabled: true}
		if err = webhooks.Apply(w, raw, false, s.cat); err == nil {
			return s.preview(c, w, req)
		}
	}
	var fe *webhooks.FieldError
	if errors.As(err, &fe) {
		return invalidField("webhook."+fe.Field, fe.Message)
	}
	return invalidField("webhook", err.Error())
}

func (s *Server) previewBody(c echo.Context) (previewRequest, error) {
	var req previewRequest
	body, err := readBody(c, s.opts.MaxBodyBytes)
	if err != nil {
		return req, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return req, nil
	}
	raw, err := webhooks.DecodeObject(body)
	if err != nil {
		return req, badRequest(err.Error())
	}
	for k := range raw {
		if k != "webhook" && k != "event_type" && k != "event" {
			return req, invalidField(k, "unknown field (the body is {webhook?, event_type?, event?})")
		}
	}
	req.Webhook = raw["webhook"]
	if r, ok := raw["event_type"]; ok {
		if err := json.Unmarshal(r, &req.EventType); err != nil {
			return req, invalidField("event_type", "must be a string")
		}
	}
	if r, ok := raw["event"]; ok {
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req.Event); err != nil || req.Event == nil {
			return req, invalidField("event", "must be {event_type, data?, labels?}")
		}
	}
	return req, nil
}

// preview renders the event req names in w's format. A secret of the
// format (the PagerDuty routing key) never appears in a preview.
func (s *Server) preview(c echo.Context, w *webhooks.Webhook, req previewRequest) error {
	env, err := previewEvent(w, req, s.cat)
	if err != nil {
		return err
	}
	body, err := w.Render(c.Request().Context(), env, time.Now())
	if err != nil {
		field := "format_options"
		if w.Format == formats.Template {
			field = "format_options.template"
		}
		return invalidField(field, err.Error())
	}
	if w.FormatOptions != nil && w.FormatOptions.RoutingKey != "" {
		body = bytes.ReplaceAll(body, []byte(w.FormatOptions.RoutingKey), []byte("<routing_key>"))
	}
	format := w.Format
	if format == "" {
		format = formats.Standard
	}
	return c.JSON(http.StatusOK, Preview{Format: format, ContentType: "application/json", Event: env, Body: body})
}

// previewEvent is the envelope to preview: the given event, or a sample of
// the given (or the webhook's first) event type.
func previewEvent(w *webhooks.Webhook, req previewRequest, cat *catalog.Catalog) ([]byte, error) {
	env := matching.Envelope{ID: uuid.NewString(), Timestamp: time.Now().UTC().Format(time.RFC3339Nano)}
	switch {
	case req.Event != nil:
		if !cat.Known(req.Event.EventType) {
			return nil, invalidField("event.event_type", "must be an event type of the catalogue")
		}
		env.EventType, env.Data, env.Labels = req.Event.EventType, req.Event.Data, req.Event.Labels
		if len(bytes.TrimSpace(env.Data)) == 0 {
			env.Data = json.RawMessage(`{}`)
		}
	default:
		t := req.EventType
		if t == "" {
			t = firstType(w.EventTypes, cat)
		}
		if !cat.Known(t) {
			return nil, invalidField("event_type", "must be an event type of the catalogue")
		}
		env.EventType, env.Data = t, sampleData(t)
	}
	return json.Marshal(env)
}

// firstType is the first catalogue type one of patterns matches.
func firstType(patterns []string, cat *catalog.Catalog) string {
	for _, p := range patterns {
		for _, t := range cat.Types() {
			if t.Type != catalog.TestEventType && matching.TypeMatches(p, t.Type) {
				return t.Type
			}
		}
	}
	return catalog.TestEventType
}

// sampleData is an example event's data for type t.
func sampleData(t string) json.RawMessage {
	family, _, _ := strings.Cut(t, ".")
	data := map[string]any{family + "_id": family + "-123", "name": "example-" + family, "message": "This is a sample " + t + " event."}
	if t == catalog.TestEventType {
		data = map[string]any{"message": "This is a test event from Hermod."}
	}
	b, _ := json.Marshal(data) // strings only: cannot fail
	return b
}
