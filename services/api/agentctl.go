package api

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// ServeAgents answers agents' hello and heartbeat requests until ctx ends:
// it checks the agent's token against its grant, records the heartbeat, and
// answers with the label-set consumers the grant covers and the webhooks of
// those sets (with their secrets: agents never hold the master key).
func (s *Server) ServeAgents(ctx context.Context) error {
	sub, err := s.nc.QueueSubscribe(streams.AgentControlPrefix+"*.*", "hermod-control", func(m *nats.Msg) {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		reply := s.agentControl(rctx, m)
		data, _ := json.Marshal(reply)
		_ = m.Respond(data)
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return sub.Drain()
}

func (s *Server) agentControl(ctx context.Context, m *nats.Msg) streams.AgentConfig {
	out := streams.AgentConfig{V: streams.SchemaVersion}
	parts := strings.Split(strings.TrimPrefix(m.Subject, streams.AgentControlPrefix), ".")
	if len(parts) != 2 || (parts[1] != "hello" && parts[1] != "heartbeat") {
		out.Error = "unknown request"
		return out
	}
	id := parts[0]
	var req streams.AgentRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		out.Error = "malformed request"
		return out
	}
	a, err := s.st.GetAgent(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !a.TokenMatches(req.Token)) {
		s.log.Warn().Str("agent_id", id).Msg("agent refused: unknown agent or wrong token")
		out.Error = "unauthorized"
		return out
	}
	if err != nil {
		out.Error = "unavailable"
		return out
	}
	now := time.Now()
	if err := s.st.AgentSeen(ctx, id, req.Version, req.InFlight, now); err != nil {
		s.log.Warn().Err(err).Str("agent_id", id).Msg("agent heartbeat not recorded")
	}
	all, err := s.st.AllWebhooks(ctx)
	if err != nil {
		out.Error = "unavailable"
		return out
	}
	out.AgentID, out.Labels = a.ID, a.Labels
	out.AcquireTTLms = s.opts.AcquireTTL.Milliseconds()
	out.HeartbeatMs = AgentHeartbeatInterval.Milliseconds()
	consumers := map[string]bool{}
	out.Webhooks = []streams.AgentWebhook{}
	for _, w := range all {
		if !webhooks.Covers(a.Labels, w.TargetLabels) {
			continue
		}
		consumers[streams.AgentConsumerName(w.TargetLabels)] = true
		aw := streams.AgentWebhook{ID: w.ID, URL: w.URL, AuthHeader: w.AuthHeader, Secret: w.Secret,
			TargetLabels: w.TargetLabels, MaxRetries: w.MaxRetries, TimeoutSeconds: w.TimeoutSeconds, Enabled: w.Enabled,
			UpdatedAt: w.UpdatedAt.UnixMilli()}
		if w.PrevSecret != "" && now.Before(w.PrevSecretExpiresAt) {
			aw.PrevSecret, aw.PrevSecretExpiresAt = w.PrevSecret, w.PrevSecretExpiresAt.UnixMilli()
		}
		out.Webhooks = append(out.Webhooks, aw)
	}
	for c := range consumers {
		out.Consumers = append(out.Consumers, c)
	}
	sort.Strings(out.Consumers)
	return out
}
