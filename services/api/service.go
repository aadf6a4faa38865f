package api

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/services/api/controlplane"
	"github.com/hermodhq/hermod/shared/agentauth"
	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/connect"
	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/index"
	"github.com/hermodhq/hermod/shared/lifecycle"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/ops"
	"github.com/hermodhq/hermod/shared/opsevents"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/version"
)

// Config is hermod-api's configuration.
type Config struct {
	envconfig.Common
	Addr       string
	AdminKeys  []string
	AllowCIDRs string
	Box        *encryption.Box
	// CalloutSeed, when set, makes hermod-api NATS's auth callout for agents
	// (an account seed, "SA..."; its public key is the server's auth_callout.issuer).
	CalloutSeed string
	// SystemURL, when set, is a NATS connection as a system-account user:
	// hermod-api then kicks an agent's open connections when its grant
	// changes or it is revoked (docs/agents.md).
	SystemURL string
	// SessionTTL and SecureCookies configure the Webhooks page's sessions.
	SessionTTL    time.Duration
	SecureCookies bool
	// ReplayRate is how many deliveries per second the bulk replays of this
	// process requeue, all together (HERMOD_REPLAY_RATE).
	ReplayRate int
}

// ReadReplayRate reads HERMOD_REPLAY_RATE: deliveries per second an API
// process replays (1-100000, default 500).
func ReadReplayRate(r *envconfig.Reader) int {
	return r.Int("HERMOD_REPLAY_RATE", DefaultReplayRate, 1, 100_000)
}

// ReadWeb reads the Webhooks page's settings: HERMOD_SESSION_TTL (how long a
// sign-in lasts) and HERMOD_COOKIE_SECURE (always mark cookies Secure; they
// are anyway behind TLS or X-Forwarded-Proto: https).
func ReadWeb(r *envconfig.Reader) (time.Duration, bool) {
	ttl := r.Duration("HERMOD_SESSION_TTL", DefaultSessionTTL, 5*time.Minute, 30*24*time.Hour)
	secure := r.String("HERMOD_COOKIE_SECURE", "false")
	r.Check(secure == "true" || secure == "false", "HERMOD_COOKIE_SECURE", "must be true or false")
	return ttl, secure == "true"
}

// validNATSURLs says whether v is a comma-separated list of nats://, tls://,
// ws:// or wss:// URLs with a host.
func validNATSURLs(v string) bool {
	for _, p := range strings.Split(v, ",") {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.Host == "" {
			return false
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return false
		}
	}
	return true
}

// ParseAdminKeys splits HERMOD_ADMIN_KEYS; each key needs 16+ characters.
func ParseAdminKeys(r *envconfig.Reader, v string) []string {
	var keys []string
	for _, k := range strings.Split(v, ",") {
		if k = strings.TrimSpace(k); k != "" {
			r.Check(len(k) >= 16, "HERMOD_ADMIN_KEYS", "every key must be at least 16 characters")
			keys = append(keys, k)
		}
	}
	return keys
}

// LoadConfig reads the configuration from the environment.
func LoadConfig(r *envconfig.Reader) (Config, error) {
	c := Config{Common: envconfig.ReadCommon(r, true)}
	c.Addr = r.String("HERMOD_API_ADDR", ":8080")
	c.AdminKeys = ParseAdminKeys(r, r.Secret("HERMOD_ADMIN_KEYS", ""))
	r.Check(len(c.AdminKeys) > 0, "HERMOD_ADMIN_KEYS", "is required (comma-separated keys)")
	c.Box = envconfig.EncryptionKey(r, true)
	c.AllowCIDRs, _ = envconfig.AllowCIDRs(r, "")
	c.CalloutSeed = r.Secret("HERMOD_AUTH_CALLOUT_SEED", "")
	r.Check(c.CalloutSeed == "" || strings.HasPrefix(c.CalloutSeed, "SA"), "HERMOD_AUTH_CALLOUT_SEED", "must be an account seed (SA...)")
	c.SessionTTL, c.SecureCookies = ReadWeb(r)
	c.ReplayRate = ReadReplayRate(r)
	c.SystemURL = r.URL("HERMOD_NATS_SYSTEM_URL", "")
	r.Check(c.SystemURL == "" || validNATSURLs(c.SystemURL), "HERMOD_NATS_SYSTEM_URL",
		"must be nats://user:password@host:port (a system-account user; several comma-separated)")
	return c, r.Err()
}

// Build makes the REST server on c; kicker is the agents' control plane
// (controlplane.New on the same connections). The all-in-one shares c,
// health and m.
func Build(cfg Config, c *connect.Conns, kicker AgentKicker, health *ops.Health, m *metrics.Metrics,
	log zerolog.Logger) (*Server, error) {
	allow, err := delivery.ParseCIDRs(cfg.AllowCIDRs)
	if err != nil {
		return nil, err
	}
	client := delivery.NewClient(delivery.ClientOptions{Guard: true, Allow: allow, UserAgent: version.UserAgent()})
	m.Registry.MustRegister(metrics.NewBacklogCollector(c.JS))
	notifier, err := index.NewNotifier(c.NC, log, metrics.NewIndexUnconfirmed(m.Registry))
	if err != nil {
		return nil, err
	}
	return New(c.Store, c.NC, c.JS, notifier, kicker, catalog.New(catalog.Default), client, health, m, log, Options{
		AdminKeys: cfg.AdminKeys, MaxEventBytes: int64(cfg.MaxEventBytes), Version: version.Version, AcquireTTL: cfg.AcquireTTL,
		SessionTTL: cfg.SessionTTL, SecureCookies: cfg.SecureCookies, ReplayRate: cfg.ReplayRate,
		Limits: store.Limits{Retention: cfg.Retention, HistoryLimit: cfg.HistoryLimit, PayloadTTL: cfg.Retention + cfg.MaxHold + 24*time.Hour},
	}), nil
}

// Parts are what hermod-api runs: the REST API and the agents' control
// plane, and, when configured, the NATS auth callout and the agent kicks.
// The all-in-one runs the same.
type Parts struct {
	Server       *Server
	ControlPlane *controlplane.Server
	// OpsEvents publishes operational events (hermod.*) from the API's
	// side, counted in its metrics: the agent watcher's, and
	// opsevents.ReplayFinished when a replay ends.
	OpsEvents *opsevents.Publisher
	nc        *nats.Conn
	l         net.Listener
	log       zerolog.Logger
	extra     []lifecycle.Component
	agents    *opsevents.AgentWatcher
}

// ExpectIndex makes changes wait for the webhook index id from the start
// (the all-in-one's own index), before it first announced itself.
func (p *Parts) ExpectIndex(id string) { p.Server.notifier.Expect(id) }

// BuildParts makes the control plane and the REST server on c, listening
// on cfg.Addr (the all-in-one shares c, health and m).
func BuildParts(cfg Config, c *connect.Conns, health *ops.Health, m *metrics.Metrics, log zerolog.Logger) (*Parts, error) {
	cp := controlplane.New(c.Store, c.NC, log.With().Str("component", "controlplane").Logger(),
		controlplane.Options{AcquireTTL: cfg.AcquireTTL})
	srv, err := Build(cfg, c, cp, health, m, log)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("HERMOD_API_ADDR %s: %w", cfg.Addr, err)
	}
	opsm := metrics.NewOps(m.Registry)
	opsLog := log.With().Str("component", "opsevents").Logger()
	opsPub := opsevents.NewPublisher(c.JS, opsm, opsLog)
	agents := opsevents.NewAgentWatcher(c.Store, opsPub,
		opsevents.Policy{Cooldown: cfg.OpsCooldown, DeadLimit: cfg.OpsDeadLimit},
		opsevents.AgentOptions{Every: controlplane.HeartbeatInterval, InactiveAfter: controlplane.InactiveAfter}, opsm, opsLog)
	srv.Replayer().OnFinished(func(v ReplayView) { publishReplayFinished(opsPub, v) })
	return &Parts{Server: srv, ControlPlane: cp, OpsEvents: opsPub, nc: c.NC, l: l, log: log, agents: agents}, nil
}

// publishReplayFinished tells hermod.replay.finished for a replay that
// reached a final state. The publisher logs and counts a failure; the
// replay itself is recorded either way.
func publishReplayFinished(pub *opsevents.Publisher, v ReplayView) {
	msg := fmt.Sprintf("%d of %d deliveries sent again", v.Requeued, v.Matched)
	if v.Skipped > 0 {
		msg += fmt.Sprintf(", %d skipped", v.Skipped)
	}
	switch {
	case v.State == string(store.ReplayCancelled):
		msg = "cancelled: " + msg
	case v.Error != nil:
		msg = *v.Error + "; " + msg
	}
	_ = pub.Publish(context.Background(), opsevents.ReplayFinished{ID: v.ID, WebhookID: v.WebhookID, State: v.State,
		Matched: int(v.Matched), Requeued: int(v.Requeued), Skipped: int(v.Skipped), Message: msg})
}

// Close closes the listener; the API stops listening when its component
// stops, so this matters when the run ends before it started (a failed
// start of another component).
func (p *Parts) Close() { _ = p.l.Close() }

// Addr is where the REST API listens.
func (p *Parts) Addr() net.Addr { return p.l.Addr() }

// ServeCallout adds the NATS auth callout (issuer seed; agents placed in
// account, "" for the connection's own) authorizing agents by their grants.
func (p *Parts) ServeCallout(seed, account string) error {
	log := p.log.With().Str("component", "controlplane").Logger()
	callout, err := agentauth.NewCallout(seed, account, p.ControlPlane, log)
	if err != nil {
		return err
	}
	log.Info().Str("issuer", callout.Issuer()).Str("account", account).Msg("serving the NATS auth callout for agents")
	p.extra = append(p.extra, lifecycle.Component{Name: "auth callout", Run: func(ctx context.Context) error { return callout.Serve(ctx, p.nc) }})
	return nil
}

// ServeKicks adds the service that closes an agent's connections with kick
// after a grant change or a revocation.
func (p *Parts) ServeKicks(kick agentauth.KickFunc) {
	log := p.log.With().Str("component", "controlplane").Logger()
	p.extra = append(p.extra, lifecycle.Component{Name: "agent kicks", Run: func(ctx context.Context) error {
		return agentauth.ServeKicks(ctx, p.nc, kick, log)
	}})
}

// Components are the API's lifecycle components.
func (p *Parts) Components() []lifecycle.Component {
	return append([]lifecycle.Component{
		{Name: "api", Server: true, Run: func(ctx context.Context) error { return p.Server.Serve(ctx, p.l) }},
		{Name: "agent control", Run: p.ControlPlane.Serve},
		{Name: "replays", Run: p.Server.Replayer().Run},
		{Name: "agent watch", Run: p.agents.Run},
	}, p.extra...)
}

// Main runs hermod-api until ctx ends.
func Main(ctx context.Context, cfg Config, log zerolog.Logger, _ io.Writer) error {
	c, err := connect.Open(ctx, "hermod-api", cfg.Common, cfg.Box, nil, log)
	if err != nil {
		return err
	}
	defer c.Close()
	health := ops.NewHealth(c.Checks(), log)
	m := metrics.New("hermod-api")
	p, err := BuildParts(cfg, c, health, m, log)
	if err != nil {
		return err
	}
	defer p.Close()
	if cfg.CalloutSeed != "" {
		// Agents are placed in the services' account (where the streams are).
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		account, err := agentauth.AccountOf(actx, c.NC)
		cancel()
		if err != nil {
			log.Warn().Err(err).Msg("cannot tell the services' NATS account; placing agents in the global account $G")
			account = ""
		}
		if err := p.ServeCallout(cfg.CalloutSeed, account); err != nil {
			return err
		}
		if cfg.SystemURL == "" {
			log.Warn().Msg("HERMOD_NATS_SYSTEM_URL is not set: a grant change or revocation reaches a connected agent's NATS permissions only when its user JWT expires (5 minutes)")
		}
	}
	if cfg.SystemURL != "" {
		sys, err := connect.NATS(cfg.SystemURL, "hermod-api-system")
		if err != nil {
			return fmt.Errorf("HERMOD_NATS_SYSTEM_URL: %w", err)
		}
		defer sys.Close()
		log.Info().Str("nats", envconfig.MaskURL(cfg.SystemURL)).Msg("kicking agents' connections on grant changes through the system account")
		p.ServeKicks(agentauth.NewSystemKicker(sys).Kick)
	}
	log.Info().Str("addr", p.Addr().String()).Msg("api starting")
	return lifecycle.Run(ctx, log, cfg.ShutdownTimeout, health, p.Components()...)
}

// CalloutKey prints a new auth callout issuer as .env lines: the seed for
// hermod-api and its public key for the NATS server's configuration
// (deploy/compose/nats.conf reads NATS_CALLOUT_ISSUER). `hermod-api callout-key`.
func CalloutKey(w io.Writer) error {
	seed, pub, err := agentauth.NewIssuerKey()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "# auth callout issuer (hermod-api callout-key): the seed is secret, the public key goes to NATS\nHERMOD_AUTH_CALLOUT_SEED=%s\nNATS_CALLOUT_ISSUER=%s\n", seed, pub)
	return err
}
