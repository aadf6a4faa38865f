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
	Webhook   json.RawMessage `json:"webhook"`
	EventType string          `json:"event_type"`
	Event     *struct {
		EventType string            `json:"event_type"`
		Data      json.RawMessage   `json:"data"`
		Labels    map[string]string `json:"labels,omitempty"`
	} `json:"event"`
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
	if len(req.Webhook) > 0 {
		return invalidField("webhook", "belongs to POST /api/v1/webhooks/preview: this route previews the saved webhook")
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
	if err != nil {
		if ae, ok := fieldErrorIn("webhook.", err); ok {
			return ae
		}
		return invalidField("webhook", err.Error())
	}
	w := newWebhook(time.Now().UTC())
	if err := webhooks.Apply(w, raw, false, s.cat); err != nil {
		if ae, ok := fieldErrorIn("webhook.", err); ok {
			return ae
		}
		return err
	}
	return s.preview(c, w, req)
}

func (s *Server) previewBody(c echo.Context) (previewRequest, error) {
	var req previewRequest
	body, err := readBody(c, s.opts.MaxBodyBytes)
	if err != nil || len(bytes.TrimSpace(body)) == 0 {
		return req, err
	}
	return req, decodeStrict(body, &req)
}

// preview renders the event req names in w's format. A secret of the
// format (the PagerDuty routing key) never appears in a preview.
func (s *Server) preview(c echo.Context, w *webhooks.Webhook, req previewRequest) error {
	env, err := previewEvent(w, req, s.cat)
	if err != nil {
		return err
	}
	r, err := webhooks.CompileFormat(w)
	if err != nil {
		if ae, ok := fromFieldError(err); ok {
			return ae
		}
		return err
	}
	body, err := r.Render(c.Request().Context(), env, time.Now())
	if err != nil {
		if errors.Is(err, formats.ErrRunner) {
			return err // the server's failure, not the format's: 500
		}
		field := "format_options"
		if w.Format == formats.Template {
			field = "format_options.template"
		}
		return invalidField(field, err.Error())
	}
	for _, secret := range w.FormatSecrets() {
		body = bytes.ReplaceAll(body, []byte(secret), []byte("<routing_key>"))
	}
	return c.JSON(http.StatusOK, Preview{Format: r.Name(), ContentType: "application/json", Event: env, Body: body})
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
