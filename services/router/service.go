package router

import (
	"context"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/connect"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/index"
	"github.com/hermodhq/hermod/shared/lifecycle"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/ops"
	"github.com/hermodhq/hermod/shared/opsevents"
	"github.com/hermodhq/hermod/shared/recorder"
	"github.com/hermodhq/hermod/shared/store"
)

// Config is hermod-router's configuration.
type Config struct {
	envconfig.Common
	OpsAddr string
	Workers int
}

// LoadConfig reads the configuration from the environment.
func LoadConfig(r *envconfig.Reader) (Config, error) {
	c := Config{Common: envconfig.ReadCommon(r, true)}
	c.OpsAddr = r.String("HERMOD_OPS_ADDR", ":8081")
	c.Workers = r.Int("HERMOD_ROUTER_WORKERS", 32, 1, 256)
	return c, r.Err()
}

// Limits are the record limits derived from the configuration.
func Limits(c envconfig.Common) store.Limits {
	return store.Limits{Retention: c.Retention, HistoryLimit: c.HistoryLimit, PayloadTTL: c.Retention + c.MaxHold + 24*time.Hour}
}

// OpsPolicy is the operational events' policy of the configuration: a
// death's mark lives twice the cooldown, never longer than the retention
// (nothing of a delivery outlives its record).
func OpsPolicy(c envconfig.Common) opsevents.Policy {
	return opsevents.Policy{Cooldown: c.OpsCooldown, DeadLimit: c.OpsDeadLimit, DeadMarkTTL: min(2*c.OpsCooldown, c.Retention)}
}

// SweepEvery is how often the recorder removes expired deliveries from the
// indexes: every minute, or every quarter of the retention when that is
// shorter, so an index holds the ids of at most retention × 1.25 (plus one
// sweep's run) of deliveries.
func SweepEvery(retention time.Duration) time.Duration {
	return min(time.Minute, max(retention/4, 100*time.Millisecond))
}

// Parts are what hermod-router runs: the router and the recorder. The
// all-in-one runs the same.
type Parts struct {
	Router   *Router
	Recorder *recorder.Recorder
	// Watcher tells operational events of the batches the recorder wrote,
	// beside it (the recorder's acks never wait for it).
	Watcher *opsevents.WebhookWatcher
}

// Build makes the router and the recorder on c, the router matching
// against ix, with their metrics registered on m.
func Build(c *connect.Conns, ix *index.Index, cfg Config, log zerolog.Logger, m *metrics.Metrics) *Parts {
	rec := metrics.NewRecording(m.Registry)
	opsm := metrics.NewOps(m.Registry)
	opsLog := log.With().Str("component", "opsevents").Logger()
	watcher := opsevents.NewWebhookWatcher(c.Store, ix, opsevents.NewPublisher(c.JS, opsm, opsLog), OpsPolicy(cfg.Common), opsm, opsLog)
	return &Parts{
		Router: New(c.JS, ix, log, metrics.NewRouting(m.Registry), Options{Workers: cfg.Workers, MaxEventBytes: cfg.MaxEventBytes}),
		Recorder: recorder.New(c.JS, c.Store, log, recorder.Options{Limits: Limits(cfg.Common), OnError: rec.Error, Sweep: SweepEvery(cfg.Retention),
			Agents: recorder.StoreAgents(c.Store, recorder.IndexLabels(ix)), Recorded: watcher.Enqueue}),
		Watcher: watcher,
	}
}

// Components are the router's and recorder's lifecycle components.
func (p *Parts) Components() []lifecycle.Component {
	return []lifecycle.Component{{Name: "router", Run: p.Router.Run}, {Name: "recorder", Run: p.Recorder.Run},
		{Name: "operational events", Run: p.Watcher.Run}}
}

// Main runs the router and the recorder until ctx ends.
func Main(ctx context.Context, cfg Config, log zerolog.Logger, _ io.Writer) error {
	c, err := connect.Open(ctx, "hermod-router", cfg.Common, nil, nil, log) // the router never needs a secret
	if err != nil {
		return err
	}
	defer c.Close()
	m := metrics.New("hermod-router")
	ix := index.New(c.Store, c.NC, log, index.Options{})
	health := ops.NewHealth(c.Checks(), log)
	comps := append([]lifecycle.Component{ix.Component()}, Build(c, ix, cfg, log, m).Components()...)
	comps = append(comps, ops.Component(cfg.OpsAddr, health, m.Registry))
	log.Info().Str("ops_addr", cfg.OpsAddr).Msg("router starting")
	return lifecycle.Run(ctx, log, cfg.ShutdownTimeout, health, comps...)
}
