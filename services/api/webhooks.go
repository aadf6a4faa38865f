package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/signing"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

func (s *Server) decodeWebhookBody(c echo.Context) (map[string]json.RawMessage, error) {
	body, err := readBody(c, s.opts.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	raw, err := webhooks.DecodeBody(body)
	if err != nil {
		if ae, ok := fromFieldError(err); ok {
			return nil, ae
		}
		return nil, badRequest(err.Error())
	}
	return raw, nil
}

func (s *Server) view(ctx context.Context, w *webhooks.Webhook) (WebhookView, error) {
	st, err := s.st.Stats(ctx, []string{w.ID})
	if err != nil {
		return WebhookView{}, unavailable("redis", err)
	}
	return webhookView(w, st[w.ID]), nil
}

// save writes w and tells every index about the change.
func (s *Server) save(ctx context.Context, w *webhooks.Webhook) error {
	if len(w.TargetLabels) > 0 {
		// The control plane creates the label set's consumer, never an agent.
		ttl := s.opts.AcquireTTL
		if ttl <= 0 {
			ttl = time.Minute
		}
		if _, err := s.js.CreateOrUpdateConsumer(ctx, streams.DeliveriesStream, streams.AgentConsumerConfig(w.TargetLabels, ttl)); err != nil {
			return unavailable("nats", err)
		}
	}
	if err := s.st.PutWebhook(ctx, w); err != nil {
		return unavailable("redis", err)
	}
	s.notify(ctx, w.ID)
	return nil
}

// notify tells the indexes about a change and waits (≤ 250 ms) until they applied it.
func (s *Server) notify(ctx context.Context, id string) {
	if err := s.notifier.Notify(ctx, id); err != nil {
		s.log.Warn().Err(err).Str("webhook_id", id).Msg("change notice not published; indexes catch up by version poll")
	}
}

func (s *Server) createWebhook(c echo.Context) error {
	raw, err := s.decodeWebhookBody(c)
	if err != nil {
		return err
	}
	w := newWebhook(time.Now().UTC())
	if err := webhooks.Apply(w, raw, true, s.cat); err != nil {
		if ae, ok := fromFieldError(err); ok {
			return ae
		}
		return err
	}
	if w.Secret == "" {
		if w.Secret, err = signing.Generate(); err != nil {
			return err
		}
	}
	if err := s.save(c.Request().Context(), w); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, webhookView(w, store.WebhookStats{}))
}

func (s *Server) listWebhooks(c echo.Context) error {
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ws, next, err := s.st.ListWebhooks(ctx, limit, cursor)
	if err != nil {
		return storeErr(err, "webhook")
	}
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.ID
	}
	stats, err := s.st.Stats(ctx, ids)
	if err != nil {
		return unavailable("redis", err)
	}
	out := make([]WebhookView, len(ws))
	for i, w := range ws {
		out[i] = webhookView(w, stats[w.ID])
	}
	return c.JSON(http.StatusOK, page(out, next))
}

func (s *Server) loadWebhook(c echo.Context) (*webhooks.Webhook, error) {
	id := c.Param("id")
	if _, err := uuid.Parse(id); err != nil {
		return nil, notFound("webhook")
	}
	w, err := s.st.GetWebhook(c.Request().Context(), id)
	if err != nil {
		return nil, storeErr(err, "webhook")
	}
	return w, nil
}

func (s *Server) getWebhook(c echo.Context) error {
	w, err := s.loadWebhook(c)
	if err != nil {
		return err
	}
	v, err := s.view(c.Request().Context(), w)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) updateWebhook(c echo.Context) error {
	w, err := s.loadWebhook(c)
	if err != nil {
		return err
	}
	raw, err := s.decodeWebhookBody(c)
	if err != nil {
		return err
	}
	if err := webhooks.Apply(w, raw, false, s.cat); err != nil {
		if ae, ok := fromFieldError(err); ok {
			return ae
		}
		return err
	}
	w.UpdatedAt = time.Now().UTC()
	ctx := c.Request().Context()
	if err := s.save(ctx, w); err != nil {
		return err
	}
	v, err := s.view(ctx, w)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) setEnabled(c echo.Context, enabled bool) error {
	w, err := s.loadWebhook(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if w.Enabled != enabled {
		w.Enabled = enabled
		w.UpdatedAt = time.Now().UTC()
		if err := s.save(ctx, w); err != nil {
			return err
		}
	}
	v, err := s.view(ctx, w)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) pauseWebhook(c echo.Context) error  { return s.setEnabled(c, false) }
func (s *Server) resumeWebhook(c echo.Context) error { return s.setEnabled(c, true) }

func (s *Server) deleteWebhook(c echo.Context) error {
	w, err := s.loadWebhook(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := s.st.DeleteWebhook(ctx, w.ID); err != nil {
		return storeErr(err, "webhook")
	}
	s.notify(ctx, w.ID)
	// Queued and held deliveries are dropped here; any copy in flight or
	// enqueued during the index's catch-up is dropped by the deliverer,
	// which finds the webhook gone.
	s.purge(ctx, streams.DeliveriesStream, streams.DeliverSubject(w.ID), streams.DelaySubject(w.ID),
		streams.AgentPrefix+"*."+w.ID)
	s.purge(ctx, streams.HeldStream, streams.HeldSubject(w.ID))
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) purge(ctx context.Context, stream string, subjects ...string) {
	st, err := s.js.Stream(ctx, stream)
	if err != nil {
		s.log.Warn().Err(err).Str("stream", stream).Msg("purge skipped")
		return
	}
	for _, subj := range subjects {
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			s.log.Warn().Err(err).Str("subject", subj).Msg("purge failed; the deliverer drops these deliveries")
		}
	}
}

// TestResult is the answer of the test endpoint.
type TestResult struct {
	Success         bool    `json:"success"`
	StatusCode      *int    `json:"status_code"`
	DurationMs      int64   `json:"duration_ms"`
	Error           *string `json:"error"`
	ResponseExcerpt string  `json:"response_excerpt"`
	DeliveryID      string  `json:"delivery_id"`
	By              string  `json:"by"`
}

// testThroughAgent has a matching ACTIVE agent send the test event: the
// target is only reachable from inside its cluster.
func (s *Server) testThroughAgent(c echo.Context, w *webhooks.Webhook, id string, body []byte) error {
	ctx := c.Request().Context()
	agents, _, err := s.st.ListAgents(ctx, 500, "")
	if err != nil {
		return unavailable("redis", err)
	}
	now := time.Now()
	req, _ := json.Marshal(streams.AgentTestRequest{V: streams.SchemaVersion, WebhookID: w.ID, DeliveryID: id, Body: body})
	for _, a := range agents {
		if agentView(a, now).Status != "ACTIVE" || !webhooks.Covers(a.Labels, w.TargetLabels) {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, time.Duration(w.TimeoutSeconds)*time.Second+5*time.Second)
		m, err := s.nc.RequestWithContext(rctx, streams.AgentTestPrefix+a.ID, req)
		cancel()
		if err != nil {
			s.log.Warn().Err(err).Str("agent_id", a.ID).Msg("agent did not answer the test; trying another")
			continue
		}
		var res streams.AgentTestResult
		if err := json.Unmarshal(m.Data, &res); err != nil {
			continue
		}
		out := TestResult{Success: res.Success, DurationMs: res.DurationMs, ResponseExcerpt: res.Excerpt, DeliveryID: id, By: "agent:" + a.ID}
		if res.StatusCode != 0 {
			code := res.StatusCode
			out.StatusCode = &code
		}
		if res.Error != "" {
			msg := res.Error
			out.Error = &msg
		}
		return c.JSON(http.StatusOK, out)
	}
	e := conflict("this webhook is delivered by agents (target_labels " + strings.Join(w.TargetLabels, ",") +
		"); no ACTIVE agent granted these labels is connected to run the test")
	e.Code = "no_agent"
	return e
}

func (s *Server) testWebhook(c echo.Context) error {
	w, err := s.loadWebhook(c)
	if err != nil {
		return err
	}
	id := uuid.NewString()
	data, _ := json.Marshal(map[string]string{"webhook_id": w.ID, "message": "This is a test event from Hermod."})
	body, err := json.Marshal(matching.Envelope{ID: uuid.NewString(), EventType: catalog.TestEventType,
		Timestamp: time.Now().UTC().Format(time.RFC3339Nano), Data: data})
	if err != nil {
		return err
	}
	if len(w.TargetLabels) > 0 {
		return s.testThroughAgent(c, w, id, body) // the agent renders it in the webhook's format
	}
	res := delivery.Result{Class: delivery.Terminal}
	if sent, err := webhooks.RenderOnce(c.Request().Context(), w, body); err != nil {
		res.Err = fmt.Errorf("format %s: %w", w.Format, err)
	} else {
		res = s.client.Send(c.Request().Context(), delivery.Request{URL: w.URL, AuthHeader: w.AuthHeader, Headers: w.Headers,
			Secrets: w.Secrets(time.Now()), DeliveryID: id, EventType: catalog.TestEventType, Body: sent,
			Timeout: time.Duration(w.TimeoutSeconds) * time.Second, Redact: w.FormatSecrets()})
	}
	out := TestResult{Success: res.Class == delivery.Success, DurationMs: res.Duration.Milliseconds(),
		ResponseExcerpt: res.Excerpt, DeliveryID: id, By: "broker"}
	if res.StatusCode != 0 {
		code := res.StatusCode
		out.StatusCode = &code
	}
	if res.Err != nil {
		msg := res.Err.Error()
		out.Error = &msg
	}
	s.log.Info().Str("webhook_id", w.ID).Str("delivery_id", id).Int("status_code", res.StatusCode).
		Int64("duration_ms", out.DurationMs).Bool("success", out.Success).Msg("test delivery")
	return c.JSON(http.StatusOK, out)
}

// SecretView is the answer of the secret endpoints.
type SecretView struct {
	Secret                  string  `json:"secret"`
	PreviousSecretExpiresAt *string `json:"previous_secret_expires_at"`
}

func secretView(w *webhooks.Webhook) SecretView {
	v := SecretView{Secret: w.Secret}
	if w.PrevSecret != "" && time.Now().Before(w.PrevSecretExpiresAt) {
		v.PreviousSecretExpiresAt = tsPtr(w.PrevSecretExpiresAt)
	}
	return v
}

func (s *Server) getSecret(c echo.Context) error {
	w, err := s.loadWebhook(c)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, secretView(w))
}

// MaxOverlap caps a rotation overlap.
const MaxOverlap = 7 * 24 * time.Hour

func (s *Server) rotateSecret(c echo.Context) error {
	w, err := s.loadWebhook(c)
	if err != nil {
		return err
	}
	body, err := readBody(c, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	var req struct {
		Secret         *string `json:"secret"`
		OverlapSeconds *int64  `json:"overlap_seconds"`
	}
	if len(body) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
	}
	overlap := 24 * time.Hour
	if req.OverlapSeconds != nil {
		// Compared in seconds, before any arithmetic: a huge value must
		// not wrap into a short overlap.
		if *req.OverlapSeconds < 0 || *req.OverlapSeconds > int64(MaxOverlap/time.Second) {
			return invalidField("overlap_seconds", "must be between 0 and 604800")
		}
		overlap = time.Duration(*req.OverlapSeconds) * time.Second
	}
	next := ""
	if req.Secret != nil {
		if _, err := signing.Key(*req.Secret); err != nil {
			return invalidField("secret", err.Error())
		}
		next = *req.Secret
	} else if next, err = signing.Generate(); err != nil {
		return err
	}
	now := time.Now().UTC()
	if overlap > 0 {
		w.PrevSecret, w.PrevSecretExpiresAt = w.Secret, now.Add(overlap)
	} else {
		w.PrevSecret, w.PrevSecretExpiresAt = "", time.Time{}
	}
	w.Secret = next
	w.UpdatedAt = now
	if err := s.save(c.Request().Context(), w); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, secretView(w))
}

func (s *Server) webhookStats(c echo.Context) error {
	w, err := s.loadWebhook(c)
	if err != nil {
		return err
	}
	window := time.Hour
	if v := c.QueryParam("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return badRequest("window must be a duration such as 1h or 30m")
		}
		if d < time.Minute || d > 24*time.Hour {
			return invalidField("window", "must be between 1m and 24h")
		}
		window = d.Truncate(time.Minute)
	}
	buckets, err := s.st.MinuteStats(c.Request().Context(), w.ID, window, time.Now())
	if err != nil {
		return unavailable("redis", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"webhook_id": w.ID, "window": window.String(), "data": buckets})
}

// newWebhook is a webhook with the defaults a create body starts from.
func newWebhook(now time.Time) *webhooks.Webhook {
	return &webhooks.Webhook{ID: uuid.NewString(), MaxRetries: webhooks.DefaultMaxRetries,
		TimeoutSeconds: webhooks.DefaultTimeoutSeconds, Enabled: true, CreatedAt: now, UpdatedAt: now}
}

// decodeStrict decodes a JSON object, refusing unknown fields (422).
func decodeStrict(body []byte, v any) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return badRequest("malformed JSON: body must be an object")
	}
	known := map[string]bool{}
	if err := json.Unmarshal(body, v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return invalidField(ute.Field, "has the wrong type")
		}
		return badRequest("malformed JSON")
	}
	fields, _ := json.Marshal(v)
	var out map[string]json.RawMessage
	_ = json.Unmarshal(fields, &out)
	for k := range out {
		known[k] = true
	}
	for k := range raw {
		if !known[k] {
			return invalidField(k, "unknown field")
		}
	}
	return nil
}
