package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
)

var listableStatuses = map[string]bool{
	streams.StatusPending: true, streams.StatusSuccess: true, streams.StatusFailed: true, streams.StatusDead: true,
	streams.StatusAcquired: true,
}

func (s *Server) listDeliveries(c echo.Context) error {
	w, err := s.loadWebhook(c)
	if err != nil {
		return err
	}
	status := c.QueryParam("status")
	if status != "" && !listableStatuses[status] {
		return invalidField("status", "must be one of pending, acquired, success, failed, dead")
	}
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	ds, next, err := s.st.ListDeliveries(c.Request().Context(), w.ID, status, limit, cursor)
	if err != nil {
		return storeErr(err, "delivery")
	}
	out := make([]DeliveryView, len(ds))
	for i, d := range ds {
		out[i] = deliveryView(d)
	}
	return c.JSON(http.StatusOK, page(out, next))
}

func (s *Server) getDelivery(c echo.Context) error {
	id := c.Param("id")
	if _, err := uuid.Parse(id); err != nil {
		return notFound("delivery")
	}
	d, hist, payload, err := s.st.GetDelivery(c.Request().Context(), id)
	if err != nil {
		return storeErr(err, "delivery")
	}
	v := deliveryView(d)
	v.AttemptHistory = hist
	if v.AttemptHistory == nil {
		v.AttemptHistory = []store.AttemptEntry{}
	}
	v.Payload = payload
	return c.JSON(http.StatusOK, v)
}

func (s *Server) retryDelivery(c echo.Context) error {
	id := c.Param("id")
	if _, err := uuid.Parse(id); err != nil {
		return notFound("delivery")
	}
	ctx := c.Request().Context()
	d, _, payload, err := s.st.GetDelivery(ctx, id)
	if err != nil {
		return storeErr(err, "delivery")
	}
	if d.Status != streams.StatusDead {
		return conflict("only a dead delivery can be retried; this one is " + d.Status)
	}
	if len(payload) == 0 {
		return conflict("the event payload of this delivery has expired")
	}
	w, err := s.st.GetWebhook(ctx, d.WebhookID)
	if errors.Is(err, store.ErrNotFound) {
		return conflict("the webhook of this delivery was deleted")
	}
	if err != nil {
		return unavailable("redis", err)
	}
	if err := s.st.Requeue(ctx, d, s.opts.Limits); err != nil {
		return unavailable("redis", err)
	}
	meta := streams.Meta{DeliveryID: d.ID, WebhookID: d.WebhookID, EventID: d.EventID, EventType: d.EventType,
		Epoch: d.Epoch + 1, CreatedAt: d.CreatedAt.UnixMilli()}
	subject := streams.SubjectFor(w.ID, w.TargetLabels, w.Enabled)
	if len(w.TargetLabels) == 0 && !w.Enabled {
		meta.HeldSince = meta.CreatedAt
	}
	msgID := d.ID + ":retry:" + strconv.Itoa(meta.Epoch)
	if _, err := s.js.PublishMsg(ctx, streams.NewMsg(subject, msgID, meta, payload)); err != nil {
		return unavailable("nats", err)
	}
	return c.JSON(http.StatusAccepted, map[string]any{"id": d.ID, "status": streams.StatusPending})
}
