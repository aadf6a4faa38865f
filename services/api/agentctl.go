package api

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hermodhq/hermod/shared/agentauth"
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
	covered, consumers, err := s.coveredWebhooks(ctx, a)
	if err != nil {
		out.Error = "unavailable"
		return out
	}
	out.AgentID, out.Labels = a.ID, a.Labels
	out.AcquireTTLms = s.opts.AcquireTTL.Milliseconds()
	out.HeartbeatMs = AgentHeartbeatInterval.Milliseconds()
	out.Consumers = consumers
	out.Webhooks = []streams.AgentWebhook{}
	for _, w := range covered {
		aw := streams.AgentWebhook{ID: w.ID, URL: w.URL, AuthHeader: w.AuthHeader, Secret: w.Secret,
			TargetLabels: w.TargetLabels, MaxRetries: w.MaxRetries, TimeoutSeconds: w.TimeoutSeconds, Enabled: w.Enabled,
			UpdatedAt: w.UpdatedAt.UnixMilli()}
		if w.PrevSecret != "" && now.Before(w.PrevSecretExpiresAt) {
			aw.PrevSecret, aw.PrevSecretExpiresAt = w.PrevSecret, w.PrevSecretExpiresAt.UnixMilli()
		}
		out.Webhooks = append(out.Webhooks, aw)
	}
	return out
}

// coveredWebhooks are the webhooks whose target labels the agent's grant
// covers, and their label sets' consumers (sorted).
func (s *Server) coveredWebhooks(ctx context.Context, a *store.Agent) ([]*webhooks.Webhook, []string, error) {
	all, err := s.allWebhooks(ctx)
	if err != nil {
		return nil, nil, err
	}
	var out []*webhooks.Webhook
	set := map[string]bool{}
	for _, w := range all {
		if webhooks.Covers(a.Labels, w.TargetLabels) {
			out = append(out, w)
			set[streams.AgentConsumerName(w.TargetLabels)] = true
		}
	}
	consumers := make([]string, 0, len(set))
	for c := range set {
		consumers = append(consumers, c)
	}
	sort.Strings(consumers)
	return out, consumers, nil
}

// Authorize implements agentauth.Grants: the agent's token must match its
// grant; the permissions cover the label sets and webhooks of that grant.
func (s *Server) Authorize(ctx context.Context, agentID, token string) (agentauth.Grant, bool, error) {
	a, err := s.st.GetAgent(ctx, agentID)
	if errors.Is(err, store.ErrNotFound) {
		return agentauth.Grant{}, false, nil
	}
	if err != nil {
		return agentauth.Grant{}, false, err
	}
	if !a.TokenMatches(token) {
		return agentauth.Grant{}, false, nil
	}
	covered, consumers, err := s.coveredWebhooks(ctx, a)
	if err != nil {
		return agentauth.Grant{}, false, err
	}
	g := agentauth.Grant{AgentID: a.ID, Consumers: consumers}
	for _, w := range covered {
		g.WebhookIDs = append(g.WebhookIDs, w.ID)
	}
	return g, true, nil
}

// webhookSnapshot caches every webhook, decrypted, for the agents' control
// plane, keyed by the store's webhook change counter: a heartbeat or an
// authorization then costs one GET when nothing changed, instead of loading
// and decrypting every webhook (37.6 ms a heartbeat with 5,000 webhooks;
// see BenchmarkAgentHeartbeat). The webhooks in it are shared: read only.
type webhookSnapshot struct {
	mu      sync.Mutex
	version int64
	loaded  bool
	all     []*webhooks.Webhook
}

// allWebhooks returns every webhook as of the store's current version. The
// version is read before the load, so a change made during the load leaves
// the snapshot behind the counter and the next call loads again.
func (s *Server) allWebhooks(ctx context.Context) ([]*webhooks.Webhook, error) {
	v, err := s.st.Version(ctx)
	if err != nil {
		return nil, err
	}
	s.snap.mu.Lock()
	if s.snap.loaded && s.snap.version == v {
		all := s.snap.all
		s.snap.mu.Unlock()
		return all, nil
	}
	s.snap.mu.Unlock()
	all, err := s.st.AllWebhooks(ctx)
	if err != nil {
		return nil, err
	}
	s.snap.mu.Lock()
	if !s.snap.loaded || v >= s.snap.version {
		s.snap.version, s.snap.loaded, s.snap.all = v, true, all
	}
	s.snap.mu.Unlock()
	return all, nil
}
