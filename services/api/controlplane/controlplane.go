// Package controlplane answers agents on NATS: their hello and heartbeat
// requests (grant, label-set consumers and the webhooks of those sets), the
// authorizations of the NATS auth callout (agentauth.Grants), and the kick
// requests that make a grant change reach an agent's open connections. The
// REST API (package api) changes grants in the store and asks this package
// to kick; it holds none of this logic.
package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/agentauth"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// HeartbeatInterval is how often an agent reports (told to it in every
// answer); 3 missed is INACTIVE.
const HeartbeatInterval = 10 * time.Second

// InactiveAfter is how long without a heartbeat makes an agent INACTIVE.
const InactiveAfter = 3 * HeartbeatInterval

// QueueGroup is the queue group of every control plane replica.
const QueueGroup = "hermod-control"

// Store is what the control plane reads and writes; *store.Store implements it.
type Store interface {
	GetAgent(ctx context.Context, id string) (*store.Agent, error)
	AgentSeen(ctx context.Context, id, version string, inFlight int, at time.Time) error
	Version(ctx context.Context) (int64, error)
	AllWebhooks(ctx context.Context) ([]*webhooks.Webhook, error)
}

// Options configure the control plane.
type Options struct {
	// AcquireTTL is the ack wait of the label-set consumers, told to agents.
	AcquireTTL time.Duration
	// KickTimeout bounds one kick request (default 10s).
	KickTimeout time.Duration
}

// Server is the agents' control plane of one hermod-api (or all-in-one).
type Server struct {
	st   Store
	nc   *nats.Conn
	js   jetstream.JetStream // nil without nc: no moved webhooks are looked for
	log  zerolog.Logger
	opts Options
	snap webhookSnapshot
}

// New makes the control plane on nc; Serve answers agents.
func New(st Store, nc *nats.Conn, log zerolog.Logger, opts Options) *Server {
	if opts.KickTimeout <= 0 {
		opts.KickTimeout = 10 * time.Second
	}
	s := &Server{st: st, nc: nc, log: log, opts: opts}
	if nc != nil {
		s.js, _ = jetstream.New(nc) // fails only on invalid options
	}
	return s
}

// Serve answers agents' hello and heartbeat requests until ctx ends: it
// checks the agent's token against its grant, records the heartbeat, and
// answers with the label-set consumers the grant covers and the webhooks of
// those sets (with their secrets: agents never hold the master key).
func (s *Server) Serve(ctx context.Context) error {
	sub, err := s.nc.QueueSubscribe(streams.AgentControlPrefix+"*.*", QueueGroup, func(m *nats.Msg) {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		reply := s.answer(rctx, m)
		data, _ := json.Marshal(reply)
		_ = m.Respond(data)
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return sub.Drain()
}

// answer is the reply to one hello or heartbeat.
func (s *Server) answer(ctx context.Context, m *nats.Msg) streams.AgentConfig {
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
	covered, moved, consumers, err := s.coveredWebhooks(ctx, a)
	if err != nil {
		out.Error = "unavailable"
		return out
	}
	out.AgentID, out.Labels = a.ID, a.Labels
	out.AcquireTTLms = s.opts.AcquireTTL.Milliseconds()
	out.HeartbeatMs = HeartbeatInterval.Milliseconds()
	out.Consumers = consumers
	out.Webhooks = []streams.AgentWebhook{}
	for _, w := range covered {
		aw := streams.AgentWebhook{ID: w.ID, URL: w.URL, AuthHeader: w.AuthHeader, Headers: w.Headers, Secret: w.Secret,
			TargetLabels: w.TargetLabels, MaxRetries: w.MaxRetries, TimeoutSeconds: w.TimeoutSeconds, Enabled: w.Enabled,
			UpdatedAt: w.UpdatedAt.UnixMilli()}
		if w.PrevSecret != "" && now.Before(w.PrevSecretExpiresAt) {
			aw.PrevSecret, aw.PrevSecretExpiresAt = w.PrevSecret, w.PrevSecretExpiresAt.UnixMilli()
		}
		aw.Format, aw.FormatOptions = string(w.Format), w.FormatOptions
		out.Webhooks = append(out.Webhooks, aw)
	}
	// A moved webhook: only what routes its waiting deliveries away (no
	// url, headers or secret; it is no longer the agent's to deliver).
	for _, w := range moved {
		out.Webhooks = append(out.Webhooks, streams.AgentWebhook{ID: w.ID, TargetLabels: w.TargetLabels, MaxRetries: w.MaxRetries,
			TimeoutSeconds: w.TimeoutSeconds, Enabled: w.Enabled, UpdatedAt: w.UpdatedAt.UnixMilli()})
	}
	return out
}

// coveredWebhooks are the webhooks whose target labels the agent's grant
// covers, the moved webhooks (below), and the label sets' consumers the
// agent takes (sorted).
//
// A webhook whose target labels changed while deliveries waited on its old
// label set's subject has moved: only an agent taking that set can read
// them (a work-queue stream has one consumer per subject), and it must
// send them through the scheduler to whoever delivers the webhook now.
// So an agent whose grant covers the old set takes it (even when no
// webhook targets it any more) and is told the moved webhook's target
// labels, without its url or secrets, and may park its deliveries.
func (s *Server) coveredWebhooks(ctx context.Context, a *store.Agent) (covered, moved []*webhooks.Webhook, consumers []string, err error) {
	all, err := s.allWebhooks(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	set := map[string]bool{}
	for _, w := range all {
		if webhooks.Covers(a.Labels, w.TargetLabels) {
			covered = append(covered, w)
			set[streams.AgentConsumerName(w.TargetLabels)] = true
		}
	}
	moved = s.movedWebhooks(ctx, a, all, set)
	consumers = make([]string, 0, len(set))
	for c := range set {
		consumers = append(consumers, c)
	}
	sort.Strings(consumers)
	return covered, moved, consumers, nil
}

// movedWebhooks finds the webhooks with deliveries waiting on a label set's
// subject that is no longer theirs, where the agent's grant covers that set
// (taken: the sets the agent takes, to which such a set is added). When
// JetStream cannot be asked, it logs and finds none: the agent is told at
// a later heartbeat.
func (s *Server) movedWebhooks(ctx context.Context, a *store.Agent, all []*webhooks.Webhook, taken map[string]bool) []*webhooks.Webhook {
	if s.js == nil || len(a.Labels) == 0 {
		return nil
	}
	stream, err := s.js.Stream(ctx, streams.DeliveriesStream)
	var info *jetstream.StreamInfo
	if err == nil {
		info, err = stream.Info(ctx, jetstream.WithSubjectFilter(streams.AgentPrefix+">"))
	}
	if err != nil {
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			s.log.Warn().Err(err).Str("agent_id", a.ID).Msg("cannot look for moved webhooks' waiting deliveries")
		}
		return nil
	}
	byID := make(map[string]*webhooks.Webhook, len(all))
	for _, w := range all {
		byID[w.ID] = w
	}
	var moved []*webhooks.Webhook
	seen := map[string]bool{}
	for subject := range info.State.Subjects {
		hash, id, ok := strings.Cut(strings.TrimPrefix(subject, streams.AgentPrefix), ".")
		w := byID[id]
		if !ok || w == nil || seen[id] || streams.IsReadySubject(subject, id, w.TargetLabels) ||
			webhooks.Covers(a.Labels, w.TargetLabels) {
			continue // not moved, or the agent has it in full
		}
		cons := "agent_" + hash
		if !taken[cons] {
			c, err := stream.Consumer(ctx, cons)
			if err != nil {
				continue // no such consumer: no agent could take the set
			}
			labels, found := strings.CutPrefix(c.CachedInfo().Config.Description, streams.AgentConsumerDescription)
			if !found || !webhooks.Covers(a.Labels, strings.Split(labels, ",")) {
				continue
			}
			taken[cons] = true
		}
		seen[id] = true
		moved = append(moved, w)
	}
	sort.Slice(moved, func(i, j int) bool { return moved[i].ID < moved[j].ID })
	return moved
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
	covered, moved, consumers, err := s.coveredWebhooks(ctx, a)
	if err != nil {
		return agentauth.Grant{}, false, err
	}
	g := agentauth.Grant{AgentID: a.ID, Consumers: consumers}
	for _, w := range append(covered, moved...) {
		g.WebhookIDs = append(g.WebhookIDs, w.ID)
	}
	return g, true, nil
}

// KickAgent closes the agent's open NATS connections, after its grant was
// changed or revoked in the store: it reconnects and the auth callout
// authorizes it with the new grant, or refuses it. The kick is carried out
// by whoever serves streams.AgentKickPrefix (hermod-api with
// HERMOD_NATS_SYSTEM_URL, the all-in-one). A failure is logged and never
// returned: the agent's user JWT expires within agentauth.UserTTL and the
// control plane refuses a revoked agent at its next heartbeat.
func (s *Server) KickAgent(ctx context.Context, agentID string) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.KickTimeout)
	defer cancel()
	n, err := agentauth.RequestKick(ctx, s.nc, agentID)
	switch {
	case errors.Is(err, agentauth.ErrNoKicker):
		s.log.Debug().Str("agent_id", agentID).Msg("agent connections not kicked: no kicker (HERMOD_NATS_SYSTEM_URL unset)")
	case err != nil:
		s.log.Warn().Err(err).Str("agent_id", agentID).Int("kicked", n).
			Msg("could not kick the agent's connections; its permissions change when its user JWT expires")
	default:
		s.log.Info().Str("agent_id", agentID).Int("kicked", n).Msg("agent connections kicked")
	}
}

// webhookSnapshot caches every webhook, decrypted, keyed by the store's
// webhook change counter: a heartbeat or an authorization then costs one GET
// when nothing changed, instead of loading and decrypting every webhook
// (37.6 ms a heartbeat with 5,000 webhooks; see BenchmarkAgentHeartbeat).
// The webhooks in it are shared: read only.
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
