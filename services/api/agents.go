package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hermodhq/hermod/services/api/controlplane"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// Agent grants: the REST side. An agent's labels come from its grant only.
// The agents' control plane (package controlplane) answers the agents and
// the NATS auth callout from the grants stored here; a grant change or a
// revocation asks it to kick the agent's open connections so the change
// applies at once (AgentKicker).

var agentIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}$`)

// AgentKicker closes an agent's open NATS connections after its grant
// changed or was revoked; *controlplane.Server implements it. It never
// fails the request: a failed kick is the kicker's to log.
type AgentKicker interface {
	KickAgent(ctx context.Context, agentID string)
}

// AgentView is the agent object of the API (never the token).
type AgentView struct {
	ID          string   `json:"id"`
	Labels      []string `json:"labels"`
	Status      string   `json:"status"`
	Version     *string  `json:"version"`
	LastSeenAt  *string  `json:"last_seen_at"`
	InFlight    int      `json:"in_flight"`
	CreatedAt   string   `json:"created_at"`
	UpdatedAt   string   `json:"updated_at"`
	Credentials *struct {
		AgentID string `json:"agent_id"`
		Token   string `json:"token"`
	} `json:"credentials,omitempty"`
}

func agentView(a *store.Agent, now time.Time) AgentView {
	v := AgentView{ID: a.ID, Labels: a.Labels, Status: "INACTIVE", LastSeenAt: tsPtr(a.LastSeenAt), InFlight: a.InFlight,
		CreatedAt: ts(a.CreatedAt), UpdatedAt: ts(a.UpdatedAt)}
	if v.Labels == nil {
		v.Labels = []string{}
	}
	if a.Version != "" {
		ver := a.Version
		v.Version = &ver
	}
	if !a.LastSeenAt.IsZero() && now.Sub(a.LastSeenAt) < controlplane.InactiveAfter {
		v.Status = "ACTIVE"
	}
	return v
}

func (s *Server) agentLabels(body []byte, required bool) ([]string, bool, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, false, badRequest("malformed JSON: body must be an object")
	}
	r, ok := raw["labels"]
	if !ok {
		if required {
			return nil, false, invalidField("labels", "is required")
		}
		return nil, false, nil
	}
	var ls []string
	if err := json.Unmarshal(r, &ls); err != nil || ls == nil {
		return nil, false, invalidField("labels", "must be an array of \"key:value\" strings")
	}
	canon, err := webhooks.CanonicalLabels("labels", ls)
	if err != nil {
		if ae, ok := fromFieldError(err); ok {
			return nil, false, ae
		}
		return nil, false, err
	}
	if len(canon) == 0 {
		return nil, false, invalidField("labels", "must grant at least one label")
	}
	return canon, true, nil
}

func (s *Server) createAgent(c echo.Context) error {
	body, err := readBody(c, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	var req struct {
		ID     *string  `json:"id"`
		Labels []string `json:"labels"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	if req.ID == nil {
		return invalidField("id", "is required")
	}
	if !agentIDRe.MatchString(*req.ID) {
		return invalidField("id", "must be 1 to 63 characters of [A-Za-z0-9_-]")
	}
	labels, _, err := s.agentLabels(body, true)
	if err != nil {
		return err
	}
	raw, err := store.RandomToken(32)
	if err != nil {
		return err
	}
	token := "hagt_" + raw
	now := time.Now().UTC()
	a := &store.Agent{ID: *req.ID, Labels: labels, TokenHash: store.HashToken(token), CreatedAt: now, UpdatedAt: now}
	if err := s.st.CreateAgent(c.Request().Context(), a); err != nil {
		if errors.Is(err, store.ErrExists) {
			e := conflict("an agent with this id exists")
			e.Details["field"] = "id"
			return e
		}
		return unavailable("redis", err)
	}
	v := agentView(a, now)
	v.Credentials = &struct {
		AgentID string `json:"agent_id"`
		Token   string `json:"token"`
	}{AgentID: a.ID, Token: token}
	c.Response().Header().Set("Cache-Control", "no-store")
	s.log.Info().Str("agent_id", a.ID).Strs("labels", labels).Msg("agent registered")
	return c.JSON(http.StatusCreated, v)
}

func (s *Server) loadAgent(c echo.Context) (*store.Agent, error) {
	id := c.Param("id")
	if !agentIDRe.MatchString(id) {
		return nil, notFound("agent")
	}
	a, err := s.st.GetAgent(c.Request().Context(), id)
	if err != nil {
		return nil, storeErr(err, "agent")
	}
	return a, nil
}

func (s *Server) listAgents(c echo.Context) error {
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	as, next, err := s.st.ListAgents(c.Request().Context(), limit, cursor)
	if err != nil {
		return storeErr(err, "agent")
	}
	now := time.Now()
	out := make([]AgentView, len(as))
	for i, a := range as {
		out[i] = agentView(a, now)
	}
	return c.JSON(http.StatusOK, page(out, next))
}

func (s *Server) getAgent(c echo.Context) error {
	a, err := s.loadAgent(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, agentView(a, time.Now()))
}

func (s *Server) updateAgent(c echo.Context) error {
	a, err := s.loadAgent(c)
	if err != nil {
		return err
	}
	body, err := readBody(c, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	var req struct {
		Labels []string `json:"labels"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	labels, given, err := s.agentLabels(body, false)
	if err != nil {
		return err
	}
	if given {
		changed := !slices.Equal(a.Labels, labels)
		a.Labels = labels
		a.UpdatedAt = time.Now().UTC()
		if err := s.st.PutAgent(c.Request().Context(), a); err != nil {
			return storeErr(err, "agent")
		}
		s.log.Info().Str("agent_id", a.ID).Strs("labels", labels).Msg("agent grant changed")
		if changed {
			s.kickAgent(c, a.ID)
		}
	}
	return c.JSON(http.StatusOK, agentView(a, time.Now()))
}

func (s *Server) deleteAgent(c echo.Context) error {
	a, err := s.loadAgent(c)
	if err != nil {
		return err
	}
	if err := s.st.DeleteAgent(c.Request().Context(), a.ID); err != nil {
		return storeErr(err, "agent")
	}
	s.log.Info().Str("agent_id", a.ID).Msg("agent revoked")
	s.kickAgent(c, a.ID)
	return c.NoContent(http.StatusNoContent)
}

// kickAgent asks the control plane to kick the agent's connections before
// the answer, so the change applies at once. The kick outlives a client that
// hangs up: the grant is saved already.
func (s *Server) kickAgent(c echo.Context, id string) {
	if s.kicker != nil {
		s.kicker.KickAgent(context.WithoutCancel(c.Request().Context()), id)
	}
}
