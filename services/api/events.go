package api

import (
	"bytes"
	"encoding/json"
	"fmt"
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
// on the subject named by its type, with its id as Nats-Msg-Id.
func (s *Server) publishEvent(c echo.Context) error {
	body, err := readBody(c, s.opts.MaxEventBytes)
	if err != nil {
		return err
	}
	env, err := decodeEvent(body, s.cat)
	if err != nil {
		return err
	}
	if err := publishable(env.EventType); err != nil {
		return err
	}
	payload, err := json.Marshal(env)
	if err != nil {
		return err
	}
	// The envelope adds an id and a timestamp to the body, and encoding/json
	// writes <, > and & in data as \u003c and the like: one that grew past
	// what the event stream and the router take is refused here, not
	// accepted and dropped later.
	if limit := streams.MaxEnvelopeBytes(int(s.opts.MaxEventBytes)); len(payload) > limit {
		e := apiErr(http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("the event's envelope is larger than %d bytes (<, > and & in data take 6 bytes each)", limit))
		e.Details["limit_bytes"] = limit
		return e
	}
	ack, err := s.js.PublishMsg(c.Request().Context(), &nats.Msg{Subject: streams.EventSubject(env.EventType), Data: payload,
		Header: nats.Header{streams.HdrMsgID: {env.ID}}})
	if err != nil {
		return unavailable("nats", err)
	}
	return c.JSON(http.StatusAccepted, map[string]any{"id": env.ID, "duplicate": ack.Duplicate})
}

// publishable refuses the hermod family: only Hermod publishes its
// operational events (the router drops them from platform subjects too).
func publishable(eventType string) error {
	if !catalog.IsOperational(eventType) {
		return nil
	}
	e := apiErr(http.StatusUnprocessableEntity, "reserved_event_type",
		"event_type "+eventType+" is of the hermod family: only Hermod publishes its operational events (subscribe to them with event_types [\"hermod.*\"])")
	e.Details["field"] = "event_type"
	return e
}

// decodeEvent checks an event body and makes its envelope (a new id when
// the body names none). Every refusal is an *APIError (400 or 422). It is
// long because each check answers with its own field error, in the order a
// caller fixes them.
func decodeEvent(body []byte, cat *catalog.Catalog) (matching.Envelope, error) {
	raw, err := webhooks.DecodeObject(body)
	if err != nil {
		return matching.Envelope{}, badRequest(err.Error())
	}
	for k := range raw {
		switch k {
		case "event_type", "data", "id", "labels":
		default:
			return matching.Envelope{}, invalidField(k, "unknown field")
		}
	}
	var req struct {
		EventType *string           `json:"event_type"`
		Data      json.RawMessage   `json:"data"`
		ID        *string           `json:"id"`
		Labels    map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return matching.Envelope{}, invalidField(fieldOf(err), "has the wrong type")
	}
	if req.EventType == nil {
		return matching.Envelope{}, invalidField("event_type", "is required")
	}
	if !cat.Known(*req.EventType) || *req.EventType == catalog.TestEventType {
		return matching.Envelope{}, invalidField("event_type", "is not a type of the catalogue (GET /api/v1/event-types)")
	}
	if _, ok := raw["data"]; !ok {
		return matching.Envelope{}, invalidField("data", "is required")
	}
	id := uuid.NewString()
	if req.ID != nil {
		if !eventIDRe.MatchString(*req.ID) {
			return matching.Envelope{}, invalidField("id", "must be 1 to 128 characters of [A-Za-z0-9._:-]")
		}
		id = *req.ID
	}
	if len(req.Labels) > webhooks.MaxLabels {
		return matching.Envelope{}, invalidField("labels", "at most 16 labels")
	}
	for k, v := range req.Labels {
		if _, err := webhooks.CanonicalLabels("labels", []string{k + ":" + v}); err != nil {
			return matching.Envelope{}, invalidField("labels", "label "+k+"="+v+" breaks the label rules")
		}
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, req.Data); err != nil {
		return matching.Envelope{}, badRequest("malformed JSON in data")
	}
	return matching.Envelope{ID: id, EventType: *req.EventType, Timestamp: time.Now().UTC().Format(time.RFC3339Nano),
		Data: compact.Bytes(), Labels: req.Labels}, nil
}

func fieldOf(err error) string {
	if ute, ok := err.(*json.UnmarshalTypeError); ok && ute.Field != "" {
		return ute.Field
	}
	return "body"
}
