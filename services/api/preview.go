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
	"github.com/hermodhq/hermod/shared/opsevents"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// Preview is what a webhook's format makes of an event, sent nowhere.
// Matches says whether the router would send the webhook this event (its
// event types, filters and filter expression), and FilterError why the
// expression gave no answer for it.
type Preview struct {
	Format      formats.Name    `json:"format"`
	ContentType string          `json:"content_type"`
	Event       json.RawMessage `json:"event"`
	Body        json.RawMessage `json:"body"`
	Matches     bool            `json:"matches"`
	FilterError *FilterError    `json:"filter_error"`
}

// FilterError is a filter expression that gave no answer for an event.
type FilterError struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// previewMatches matches env against w alone, as the router would.
func previewMatches(w *webhooks.Webhook, env []byte) (bool, *FilterError) {
	_, ev, err := matching.ParseEnvelope(env)
	if err != nil {
		return false, nil
	}
	var fe *FilterError
	ev.OnFilterError = func(_ *webhooks.Webhook, reason string, err error) {
		fe = &FilterError{Reason: reason, Message: err.Error()}
	}
	return len(matching.Build([]*webhooks.Webhook{w}).Match(ev, nil)) == 1, fe
}

// previewRequest names the event to preview: a given one, or a sample of
// an event type (default: the webhook's first subscribed type). For an
// unsaved webhook, webhook is its create body. Event is a body of POST
// /api/v1/events, held to the same rules (decodeEvent).
type previewRequest struct {
	Webhook   json.RawMessage `json:"webhook"`
	EventType string          `json:"event_type"`
	Event     json.RawMessage `json:"event"`
}

// given says whether a raw field of the request was given (not absent,
// not null).
func given(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

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
	if given(req.Webhook) {
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
	if !given(req.Webhook) {
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

// previewBody reads a preview request. Its body may carry an event as
// large as POST /api/v1/events takes beside a webhook body as large as the
// create route takes; each part is held to its own limit.
func (s *Server) previewBody(c echo.Context) (previewRequest, error) {
	var req previewRequest
	body, err := readBody(c, s.opts.MaxEventBytes+s.opts.MaxBodyBytes)
	if err != nil || len(bytes.TrimSpace(body)) == 0 {
		return req, err
	}
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	if int64(len(req.Webhook)) > s.opts.MaxBodyBytes {
		return req, tooLarge("webhook", s.opts.MaxBodyBytes)
	}
	if int64(len(req.Event)) > s.opts.MaxEventBytes {
		return req, tooLarge("event", s.opts.MaxEventBytes)
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
			// This host could not render now (busy, or the runner could
			// not start): not the format's fault, and worth trying again.
			return unavailable("template runner", err)
		}
		return renderRefused(w, given(req.Event), err)
	}
	for _, secret := range w.FormatSecrets() {
		body = bytes.ReplaceAll(body, []byte(secret), []byte("<routing_key>"))
	}
	matches, fe := previewMatches(w, env)
	return c.JSON(http.StatusOK, Preview{Format: r.Name(), ContentType: "application/json", Event: env, Body: body,
		Matches: matches, FilterError: fe})
}

// renderRefused is the 422 of a failed render, on the field to fix: the
// given event's data field when the event lacks one the format needs (a
// resolving event without the field its opener is known by), else the
// format's option. A template's failure is the template's even when one
// event provokes it: deliveries of such events would fail the same way.
func renderRefused(w *webhooks.Webhook, eventGiven bool, err error) error {
	var mf *formats.MissingFieldError
	switch {
	case errors.As(err, &mf) && eventGiven:
		return invalidField("event.data."+mf.Field, "is required by the format: "+mf.Message)
	case errors.As(err, &mf) && mf.Option != "":
		return invalidField(mf.Option, "names a field the sample event lacks ("+mf.Message+"): preview with an event that carries it")
	case w.Format == formats.Template:
		return invalidField("format_options.template", err.Error())
	}
	return invalidField("format_options", err.Error())
}

// previewEvent is the envelope to preview: the given event, checked as
// POST /api/v1/events checks it (refusals name event.<field>), or a sample
// of the given (or the webhook's first) event type.
func previewEvent(w *webhooks.Webhook, req previewRequest, cat *catalog.Catalog) ([]byte, error) {
	if given(req.Event) {
		env, err := decodeEvent(req.Event, cat)
		if err != nil {
			return nil, nestedIn("event", err)
		}
		return json.Marshal(env)
	}
	t := req.EventType
	if t == "" {
		t = firstType(w.EventTypes, cat)
	}
	if !cat.Known(t) {
		return nil, invalidField("event_type", "must be an event type of the catalogue")
	}
	return json.Marshal(matching.Envelope{ID: uuid.NewString(), EventType: t,
		Timestamp: time.Now().UTC().Format(time.RFC3339Nano), Data: sampleData(t)})
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
	if ex := opsevents.Example(t); ex != nil {
		b, _ := json.Marshal(ex) // plain fields: cannot fail
		return b
	}
	b, _ := json.Marshal(data) // strings only: cannot fail
	return b
}
