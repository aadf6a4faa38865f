package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"

	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
)

func (s *Server) listDeliveries(c echo.Context) error {
	w, err := s.loadWebhook(c)
	if err != nil {
		return err
	}
	status := streams.Status(c.QueryParam("status"))
	if status != "" && !slices.Contains(streams.Statuses, status) {
		return invalidField("status", "must be one of pending, acquired, success, failed, dead")
	}
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if status == streams.StatusAcquired {
		return s.listAcquired(c, w.ID, w.TargetLabels, limit)
	}
	ds, next, err := s.st.ListDeliveries(ctx, w.ID, status, limit, cursor)
	if err != nil {
		return storeErr(err, "delivery")
	}
	var running map[string]bool
	if status == "" || status == streams.StatusPending || status == streams.StatusFailed {
		running = s.inFlight(ctx, w.ID, w.TargetLabels)
	}
	out := make([]DeliveryView, 0, len(ds))
	for _, d := range ds {
		v := deliveryView(d)
		if running[d.ID] && !d.Status.Final() {
			if status != "" {
				continue // it is acquired now, not pending or failed
			}
			v.Status = streams.StatusAcquired
		}
		out = append(out, v)
	}
	return c.JSON(http.StatusOK, page(out, next))
}

// listAcquired lists the deliveries whose attempt is running now: derived
// from the deliverers (an attempt in flight is visible there), not stored.
// The in-flight set is bounded (HERMOD_WEBHOOK_MAX_INFLIGHT per deliverer),
// so it is answered as one page.
func (s *Server) listAcquired(c echo.Context, webhookID string, labels []string, limit int) error {
	ctx := c.Request().Context()
	running := s.inFlight(ctx, webhookID, labels)
	var out []DeliveryView
	for _, st := range []streams.Status{streams.StatusPending, streams.StatusFailed} {
		if len(running) == 0 {
			break
		}
		ds, _, err := s.st.ListDeliveries(ctx, webhookID, st, 500, "")
		if err != nil {
			return storeErr(err, "delivery")
		}
		for _, d := range ds {
			if running[d.ID] {
				v := deliveryView(d)
				v.Status = streams.StatusAcquired
				out = append(out, v)
			}
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return c.JSON(http.StatusOK, page(out, ""))
}

// inFlight asks the deliverers that may hold webhookID's deliveries (the
// broker's, or the agents of its label set) which of them are running.
func (s *Server) inFlight(ctx context.Context, webhookID string, labels []string) map[string]bool {
	out := map[string]bool{}
	inbox := nats.NewInbox()
	replies := make(chan []byte, 64)
	sub, err := s.nc.Subscribe(inbox, func(m *nats.Msg) {
		select {
		case replies <- m.Data:
		default:
		}
	})
	if err != nil {
		return out
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := s.nc.PublishRequest(streams.InFlightSubject(labels), inbox, []byte(webhookID)); err != nil {
		return out
	}
	timer := time.NewTimer(InFlightWait)
	defer timer.Stop()
	for {
		select {
		case data := <-replies:
			var ids []string
			if json.Unmarshal(data, &ids) == nil {
				for _, id := range ids {
					out[id] = true
				}
			}
		case <-timer.C:
			return out
		case <-ctx.Done():
			return out
		}
	}
}

// InFlightWait is how long the API collects in-flight answers.
const InFlightWait = 25 * time.Millisecond

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
	if !d.Status.Final() && s.inFlight(c.Request().Context(), d.WebhookID, d.TargetLabels)[d.ID] {
		v.Status = streams.StatusAcquired
	}
	if hist == nil {
		hist = []store.AttemptEntry{}
	}
	v.AttemptHistory = &hist
	pl := json.RawMessage("null")
	if len(payload) > 0 {
		pl = payload
	}
	v.Payload = &pl
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
		return conflict("only a dead delivery can be retried; this one is " + string(d.Status))
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
	if err := s.requeuer().requeue(ctx, d, w, payload); err != nil {
		var re *requeueError
		if errors.As(err, &re) {
			return unavailable(re.dep, err)
		}
		return internal(err)
	}
	return c.JSON(http.StatusAccepted, map[string]any{"id": d.ID, "status": streams.StatusPending})
}
