// Package agent is hermod-agent: it runs inside a target cluster, talks to
// NATS only (never Redis), gets its grant and the webhooks it may serve from
// the control plane over NATS, takes deliveries from the label-set consumers
// its grant covers, and delivers them with the broker deliverer's own code
// (same headers, signatures, timeouts and retry policy), without the SSRF
// guard: reaching private addresses is its purpose.
//
// NATS enforces its grant: the auth callout served by hermod-api turns the
// grant into the connection's permissions (docs/agents.md), and the agent
// reconnects when its grant's label sets or webhooks change, so the new
// permissions are authorized.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/agentauth"
	"github.com/hermodhq/hermod/shared/connect"
	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/dispatch"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/lifecycle"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/ops"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/version"
	"github.com/hermodhq/hermod/shared/webhooks"
)

var idRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}$`)

// Config is hermod-agent's configuration.
type Config struct {
	ID              string
	Token           string
	NATSURL         string
	OpsAddr         string
	LogLevel        string
	Concurrency     int
	ShutdownTimeout time.Duration
	Isolation       envconfig.Isolation
}

// LoadConfig reads the configuration from the environment.
func LoadConfig(r *envconfig.Reader) (Config, error) {
	c := Config{ID: r.Required("HERMOD_AGENT_ID"), NATSURL: r.Required("HERMOD_NATS_URL"),
		OpsAddr: r.String("HERMOD_OPS_ADDR", ":8083")}
	c.Token = r.Secret("HERMOD_AGENT_TOKEN", "")
	r.Check(c.Token != "", "HERMOD_AGENT_TOKEN", "is required (the token POST /api/v1/agents returned)")
	r.Check(c.ID == "" || idRe.MatchString(c.ID), "HERMOD_AGENT_ID", "must be 1 to 63 characters of [A-Za-z0-9_-]")
	c.LogLevel = r.String("HERMOD_LOG_LEVEL", "info")
	c.Concurrency = r.Int("HERMOD_DELIVERY_CONCURRENCY", 32, 1, 10000)
	c.ShutdownTimeout = r.Duration("HERMOD_SHUTDOWN_TIMEOUT", 30*time.Second, time.Second, 10*time.Minute)
	c.Isolation = envconfig.ReadIsolation(r)
	return c, r.Err()
}

// ErrRevoked is returned when the control plane refuses the agent.
var ErrRevoked = errors.New("the control plane refused this agent (unknown id, wrong token, or revoked)")

// Agent holds the grant and the webhooks it may serve, in memory only.
type Agent struct {
	nc      *nats.Conn
	cfg     Config
	log     zerolog.Logger
	mu      sync.RWMutex
	conf    streams.AgentConfig
	hooks   map[string]*webhooks.Webhook
	refused atomic.Bool
	d       *dispatch.Worker
	// wake asks for a heartbeat now: after a reconnect (the control plane
	// kicks the connection when the grant changes), so the consumers follow
	// the new grant at once instead of at the next heartbeat.
	wake chan struct{}
	// reconnected is set by every reconnect; connGrant is the grant (its
	// label sets and webhooks) that the current connection's permissions
	// were issued for. NATS fixes permissions when a connection is
	// authorized, so when the grant changes under a connection (a label set
	// or a webhook first used, or removed) the agent reconnects to be
	// authorized again by the callout.
	reconnected *atomic.Bool
	connGrant   string
}

// grantKey names what an agent's NATS permissions depend on.
func grantKey(conf streams.AgentConfig) string {
	ids := make([]string, 0, len(conf.Webhooks))
	for _, w := range conf.Webhooks {
		ids = append(ids, w.ID)
	}
	cons := append([]string(nil), conf.Consumers...)
	sort.Strings(ids)
	sort.Strings(cons)
	return strings.Join(cons, ",") + "|" + strings.Join(ids, ",")
}

// ask sends hello or heartbeat and applies the answer.
func (a *Agent) ask(ctx context.Context, kind string) error {
	var inFlight int64
	if a.d != nil {
		inFlight = a.d.InFlight()
	}
	req, _ := json.Marshal(streams.AgentRequest{V: streams.SchemaVersion, Token: a.cfg.Token, Version: version.Version, InFlight: int(inFlight)})
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := a.nc.RequestWithContext(rctx, streams.AgentControlPrefix+a.cfg.ID+"."+kind, req)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	var conf streams.AgentConfig
	if err := json.Unmarshal(m.Data, &conf); err != nil {
		return fmt.Errorf("control plane answer: %w", err)
	}
	if conf.Error == "unauthorized" {
		if !a.refused.Swap(true) {
			a.log.Error().Msg("the control plane refused this agent; taking no more deliveries")
		}
		return ErrRevoked
	}
	if conf.Error != "" {
		return fmt.Errorf("control plane: %s", conf.Error)
	}
	hooks := make(map[string]*webhooks.Webhook, len(conf.Webhooks))
	for _, w := range conf.Webhooks {
		hooks[w.ID] = &webhooks.Webhook{ID: w.ID, URL: w.URL, AuthHeader: w.AuthHeader, Headers: w.Headers, Secret: w.Secret, PrevSecret: w.PrevSecret,
			PrevSecretExpiresAt: time.UnixMilli(w.PrevSecretExpiresAt), TargetLabels: w.TargetLabels, MaxRetries: w.MaxRetries,
			TimeoutSeconds: w.TimeoutSeconds, Enabled: w.Enabled, UpdatedAt: time.UnixMilli(w.UpdatedAt),
			Format: formats.Name(w.Format), FormatOptions: w.FormatOptions}
	}
	key := grantKey(conf)
	stale := false
	a.mu.Lock()
	withdrawn := a.hooks
	a.conf, a.hooks = conf, hooks
	switch {
	case a.reconnected == nil:
	case a.reconnected.Swap(false) || a.connGrant == "":
		a.connGrant = key
	case key != a.connGrant:
		stale, a.connGrant = true, ""
	}
	a.mu.Unlock()
	if a.d != nil { // set before the heartbeats start
		// A webhook no longer granted: its prepared format and signers (and
		// the decrypted secrets they hold) are dropped.
		for id := range withdrawn {
			if _, ok := hooks[id]; !ok {
				a.d.WebhookChanged(id, nil)
			}
		}
	}
	a.refused.Store(false)
	if stale {
		a.log.Info().Msg("the grant's label sets or webhooks changed; reconnecting so NATS authorizes the new permissions")
		if err := a.nc.ForceReconnect(); err != nil {
			a.log.Warn().Err(err).Msg("reconnect for the new permissions failed; they apply when the current ones expire")
		}
	}
	return nil
}

// Get implements dispatch.Webhooks.
func (a *Agent) Get(id string) (*webhooks.Webhook, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	w, ok := a.hooks[id]
	return w, ok
}

// Refresh implements dispatch.Webhooks: ask the control plane again.
func (a *Agent) Refresh(ctx context.Context, id string) (*webhooks.Webhook, error) {
	if err := a.ask(ctx, "hello"); err != nil {
		return nil, err
	}
	w, _ := a.Get(id)
	return w, nil
}

// test sends the API's test event to one of this agent's webhooks.
func (a *Agent) test(client *delivery.Client, m *nats.Msg) {
	var req streams.AgentTestRequest
	var res streams.AgentTestResult
	switch {
	case json.Unmarshal(m.Data, &req) != nil:
		res.Error = "malformed test request"
	case a.refused.Load():
		res.Error = "this agent was refused by the control plane"
	default:
		w, ok := a.Get(req.WebhookID)
		if !ok {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			w, _ = a.Refresh(ctx, req.WebhookID)
			cancel()
		}
		if w == nil {
			res.Error = "this agent may not deliver that webhook"
			break
		}
		r := delivery.Result{Class: delivery.Terminal}
		if body, err := webhooks.RenderOnce(context.Background(), w, req.Body); err != nil {
			r.Err = fmt.Errorf("format %s: %w", w.Format, err)
		} else {
			r = client.Send(context.Background(), delivery.Request{URL: w.URL, AuthHeader: w.AuthHeader, Headers: w.Headers, Secrets: w.Secrets(time.Now()),
				DeliveryID: req.DeliveryID, EventType: "webhook.test", Body: body,
				Timeout: time.Duration(w.TimeoutSeconds) * time.Second, Redact: w.FormatSecrets()})
		}
		res = streams.AgentTestResult{StatusCode: r.StatusCode, Success: r.Class == delivery.Success,
			DurationMs: r.Duration.Milliseconds(), Excerpt: r.Excerpt}
		if r.Err != nil {
			res.Error = r.Err.Error()
		}
		a.log.Info().Str("webhook_id", w.ID).Str("delivery_id", req.DeliveryID).Int("status_code", r.StatusCode).
			Int64("duration_ms", res.DurationMs).Bool("success", res.Success).Msg("test delivery")
	}
	data, _ := json.Marshal(res)
	_ = m.Respond(data)
}

// consumers are the label-set consumers to take from now.
func (a *Agent) consumers() []string {
	if a.refused.Load() {
		return nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.conf.Consumers
}

func (a *Agent) heartbeats(ctx context.Context) error {
	for {
		a.mu.RLock()
		every := time.Duration(a.conf.HeartbeatMs) * time.Millisecond
		a.mu.RUnlock()
		if every <= 0 {
			every = 10 * time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		case <-a.wake:
		}
		if err := a.ask(ctx, "heartbeat"); err != nil && !errors.Is(err, ErrRevoked) && ctx.Err() == nil {
			a.log.Warn().Err(err).Msg("heartbeat failed; delivering with the last known configuration")
		}
	}
}

// Main runs the agent until ctx ends. It is long because it lists, in order,
// the agent's start: connect, be accepted by the control plane, build the
// worker, health and test handler, then run the components.
func Main(ctx context.Context, cfg Config, log zerolog.Logger, _ io.Writer) error {
	// The id and token authenticate the connection (NATS's auth callout turns
	// the grant into permissions); the inbox prefix is the agent's own.
	wake := make(chan struct{}, 1)
	reconnected := &atomic.Bool{}
	nc, err := connect.NATS(cfg.NATSURL, "hermod-agent-"+cfg.ID, nats.UserInfo(cfg.ID, cfg.Token),
		nats.CustomInboxPrefix(agentauth.InboxPrefix(cfg.ID)),
		nats.ReconnectHandler(func(*nats.Conn) {
			reconnected.Store(true)
			select {
			case wake <- struct{}{}:
			default:
			}
		}))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := connect.JetStream(nc)
	if err != nil {
		return err
	}
	a := &Agent{nc: nc, cfg: cfg, log: log, hooks: map[string]*webhooks.Webhook{}, wake: wake, reconnected: reconnected}
	for {
		err := a.ask(ctx, "hello")
		if err == nil {
			break
		}
		if errors.Is(err, ErrRevoked) {
			return err
		}
		log.Warn().Err(err).Msg("control plane not reachable yet; retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	a.mu.RLock()
	ttl := time.Duration(a.conf.AcquireTTLms) * time.Millisecond
	labels := a.conf.Labels
	a.mu.RUnlock()
	client := delivery.NewClient(delivery.ClientOptions{Guard: false, MaxIdlePerHost: max(64, cfg.Concurrency), UserAgent: version.UserAgent()})
	defer client.Close()
	m := metrics.New("hermod-agent")
	a.d = dispatch.NewWorker(dispatch.Deps{Pub: js, Webhooks: a, Log: log, Metrics: metrics.NewDelivery(m.Registry),
		By: "agent:" + cfg.ID, OutcomeSubject: streams.AgentOutcomeSubject(cfg.ID), BreakerSubject: streams.AgentBreakerSubject(cfg.ID),
		Rules: dispatch.Rules{AcquireTTL: ttl}}, client, dispatch.WorkerOptions{Concurrency: cfg.Concurrency,
		Isolation: dispatch.NewIsolation(dispatch.IsolationOptions(cfg.Isolation)),
		Refused:   a.refused.Load})
	health := ops.NewHealth(map[string]ops.Check{
		"nats": func(context.Context) error {
			if !nc.IsConnected() {
				return errors.New("not connected")
			}
			return nil
		},
		"grant": func(context.Context) error {
			if a.refused.Load() {
				return ErrRevoked
			}
			return nil
		},
	}, log)
	testSub, err := nc.Subscribe(streams.AgentTestPrefix+cfg.ID, func(m *nats.Msg) { a.test(client, m) })
	if err != nil {
		return err
	}
	defer func() { _ = testSub.Unsubscribe() }()
	log.Info().Strs("labels", labels).Str("ops_addr", cfg.OpsAddr).Msg("agent starting")
	return lifecycle.Run(ctx, log, cfg.ShutdownTimeout, health,
		lifecycle.Component{Name: "deliveries", Run: func(ctx context.Context) error { return a.d.RunConsumers(ctx, js, a.consumers, time.Second) }},
		lifecycle.Component{Name: "heartbeats", Run: a.heartbeats},
		ops.Component(cfg.OpsAddr, health, m.Registry),
	)
}
