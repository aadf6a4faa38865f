package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

var eventIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func (s *Server) eventTypes(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"data": s.cat.Types()})
}

// publishEvent validates an event, wraps it in the envelope and publishes it
// on the subject named by its type, with its id as Nats-Msg-Id. It is long
// because each check of the request answers with its own field error, in
// the order a caller fixes them.
func (s *Server) publishEvent(c echo.Context) error {
	body, err := readBody(c, s.opts.MaxEventBytes)
	if err != nil {
		return err
	}
	raw, err := webhooks.DecodeObject(body)
	if err != nil {
		return badRequest(err.Error())
	}
	for k := range raw {
		switch k {
		case "event_type", "data", "id", "labels":
		default:
			return invalidField(k, "unknown field")
		}
	}
	var req struct {
		EventType *string           `json:"event_type"`
		Data      json.RawMessage   `json:"data"`
		ID        *string           `json:"id"`
		Labels    map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return invalidField(fieldOf(err), "has the wrong type")
	}
	if req.EventType == nil {
		return invalidField("event_type", "is required")
	}
	if !s.cat.Known(*req.EventType) || *req.EventType == catalog.TestEventType {
		return invalidField("event_type", "is not a type of the catalogue (GET /api/v1/event-types)")
	}
	if _, ok := raw["data"]; !ok {
		return invalidField("data", "is required")
	}
	id := uuid.NewString()
	if req.ID != nil {
		if !eventIDRe.MatchString(*req.ID) {
			return invalidField("id", "must be 1 to 128 characters of [A-Za-z0-9._:-]")
		}
		id = *req.ID
	}
	if len(req.Labels) > webhooks.MaxLabels {
		return invalidField("labels", "at most 16 labels")
	}
	for k, v := range req.Labels {
		if _, err := webhooks.CanonicalLabels("labels", []string{k + ":" + v}); err != nil {
			return invalidField("labels", "label "+k+"="+v+" breaks the label rules")
		}
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, req.Data); err != nil {
		return badRequest("malformed JSON in data")
	}
	env := matching.Envelope{ID: id, EventType: *req.EventType, Timestamp: time.Now().UTC().Format(time.RFC3339Nano),
		Data: compact.Bytes(), Labels: req.Labels}
	payload, err := json.Marshal(env)
	if err != nil {
		return err
	}
	ack, err := s.js.PublishMsg(c.Request().Context(), &nats.Msg{Subject: streams.EventSubject(env.EventType), Data: payload,
		Header: nats.Header{streams.HdrMsgID: {id}}})
	if err != nil {
		return unavailable("nats", err)
	}
	return c.JSON(http.StatusAccepted, map[string]any{"id": id, "duplicate": ack.Duplicate})
}

func fieldOf(err error) string {
	if ute, ok := err.(*json.UnmarshalTypeError); ok && ute.Field != "" {
		return ute.Field
	}
	return "body"
}
