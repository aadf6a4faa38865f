package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
)

// ReplayStatuses are the statuses a replay may select. A dead delivery is
// requeued. A failed one is not final: its next attempt already waits in
// the deliveries stream (on the delay subject, or in the held stream while
// its webhook is paused), so a replay never publishes it again (two
// messages of one delivery would both be attempted); it is counted as
// matched and skipped, and a later replay of dead deliveries takes it if
// it dies.
var ReplayStatuses = []streams.Status{streams.StatusDead, streams.StatusFailed}

// MaxReplayRange is the longest time range one replay may cover.
const MaxReplayRange = 31 * 24 * time.Hour

// ReplayView is a replay as the API shows it.
type ReplayView struct {
	ID         string           `json:"id"`
	WebhookID  string           `json:"webhook_id"`
	Statuses   []streams.Status `json:"statuses"`
	Since      time.Time        `json:"since"`
	Until      time.Time        `json:"until"`
	State      string           `json:"state"`
	Matched    int64            `json:"matched"`
	Requeued   int64            `json:"requeued"`
	Skipped    int64            `json:"skipped"`
	Error      *string          `json:"error"`
	CreatedAt  time.Time        `json:"created_at"`
	FinishedAt *time.Time       `json:"finished_at"`
}

func replayView(r *store.Replay) ReplayView {
	v := ReplayView{ID: r.ID, WebhookID: r.WebhookID, Statuses: r.Statuses, Since: r.Since, Until: r.Until,
		State: string(r.State), Matched: r.Matched, Requeued: r.Requeued, Skipped: r.Skipped, CreatedAt: r.CreatedAt}
	if v.Statuses == nil {
		v.Statuses = []streams.Status{}
	}
	if r.Error != "" {
		e := r.Error
		v.Error = &e
	}
	if !r.FinishedAt.IsZero() {
		f := r.FinishedAt
		v.FinishedAt = &f
	}
	return v
}

// replayRequest is the body of POST /webhooks/{id}/replay.
type replayRequest struct {
	Statuses *[]string `json:"statuses"`
	Since    *string   `json:"since"`
	Until    *string   `json:"until"`
}

// parseReplay validates a replay request at now: statuses a non-empty set
// of ReplayStatuses (each once), since and until RFC 3339 times with since
// before until, since not in the future, and at most MaxReplayRange apart.
// Times are kept to the millisecond (deliveries are indexed so).
func parseReplay(body []byte, now time.Time) ([]streams.Status, time.Time, time.Time, error) {
	var req replayRequest
	var zero time.Time
	if err := decodeStrict(body, &req); err != nil {
		return nil, zero, zero, err
	}
	if req.Statuses == nil || len(*req.Statuses) == 0 {
		return nil, zero, zero, invalidField("statuses", "must list at least one of dead, failed")
	}
	var statuses []streams.Status
	for _, s := range *req.Statuses {
		st := streams.Status(s)
		if !slices.Contains(ReplayStatuses, st) {
			return nil, zero, zero, invalidField("statuses", "may only hold dead and failed")
		}
		if slices.Contains(statuses, st) {
			return nil, zero, zero, invalidField("statuses", "lists "+s+" twice")
		}
		statuses = append(statuses, st)
	}
	parse := func(field string, v *string) (time.Time, error) {
		if v == nil || *v == "" {
			return zero, invalidField(field, "is required (an RFC 3339 time)")
		}
		t, err := time.Parse(time.RFC3339Nano, *v)
		if err != nil {
			return zero, invalidField(field, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		return t.UTC().Truncate(time.Millisecond), nil
	}
	since, err := parse("since", req.Since)
	if err != nil {
		return nil, zero, zero, err
	}
	until, err := parse("until", req.Until)
	if err != nil {
		return nil, zero, zero, err
	}
	switch {
	case !since.Before(until):
		return nil, zero, zero, invalidField("until", "must be after since")
	case until.Sub(since) > MaxReplayRange:
		return nil, zero, zero, invalidField("until", "must be at most 31 days after since (split a longer range into several replays)")
	case since.After(now):
		return nil, zero, zero, invalidField("since", "must not be in the future")
	}
	return statuses, since, until, nil
}

func (s *Server) createReplay(c echo.Context) error {
	w, err := s.loadWebhook(c)
	if err != nil {
		return err
	}
	body, err := readBody(c, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	statuses, since, until, err := parseReplay(body, now)
	if err != nil {
		return err
	}
	r := &store.Replay{ID: uuid.NewString(), WebhookID: w.ID, Statuses: statuses, Since: since, Until: until,
		CreatedAt: now.Truncate(time.Millisecond)}
	running, err := s.st.CreateReplay(c.Request().Context(), r, s.replayKeep())
	if errors.Is(err, store.ErrReplayRunning) {
		e := conflict("a replay of this webhook is running; cancel it or wait for it to finish")
		e.Details["replay_id"] = running
		return e
	}
	if err != nil {
		return unavailable("redis", err)
	}
	s.replayer.wake()
	return c.JSON(http.StatusAccepted, replayView(r))
}

// replayKeep is how long a finished replay is kept: the retention.
func (s *Server) replayKeep() time.Duration {
	if s.opts.Limits.Retention > 0 {
		return s.opts.Limits.Retention
	}
	return 72 * time.Hour
}

func (s *Server) loadReplay(c echo.Context) (*store.Replay, error) {
	id := c.Param("id")
	if _, err := uuid.Parse(id); err != nil {
		return nil, notFound("replay")
	}
	r, err := s.st.GetReplay(c.Request().Context(), id)
	if err != nil {
		return nil, storeErr(err, "replay")
	}
	return r, nil
}

func (s *Server) getReplay(c echo.Context) error {
	r, err := s.loadReplay(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, replayView(r))
}

func (s *Server) listReplays(c echo.Context) error {
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	wh := c.QueryParam("webhook_id")
	if wh == "" {
		return invalidField("webhook_id", "is required")
	}
	if _, err := uuid.Parse(wh); err != nil {
		return invalidField("webhook_id", "must be a webhook id")
	}
	rs, next, err := s.st.ListReplays(c.Request().Context(), strings.ToLower(wh), limit, cursor)
	if err != nil {
		return storeErr(err, "replay")
	}
	out := make([]ReplayView, 0, len(rs))
	for _, r := range rs {
		out = append(out, replayView(r))
	}
	return c.JSON(http.StatusOK, page(out, next))
}

func (s *Server) cancelReplay(c echo.Context) error {
	r, err := s.loadReplay(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	live, err := s.st.CancelReplay(ctx, r, time.Now(), s.replayKeep())
	switch {
	case errors.Is(err, store.ErrReplayFinished):
		if now, gerr := s.st.GetReplay(ctx, r.ID); gerr == nil {
			r = now
		}
		return conflict("the replay has finished; it is " + string(r.State))
	case err != nil:
		return storeErr(err, "replay")
	}
	r, err = s.st.GetReplay(ctx, r.ID)
	if err != nil {
		return storeErr(err, "replay")
	}
	if !live {
		// No runner holds it: none will see the cancel and report it.
		s.replayer.finished(r)
	}
	return c.JSON(http.StatusOK, replayView(r))
}
