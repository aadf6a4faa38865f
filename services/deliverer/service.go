// Package deliverer is hermod-deliverer: it runs the delivery engine's
// worker (broker deliveries), scheduler (delayed deliveries) and releaser
// (held deliveries) from shared/dispatch, fed by the webhook index.
package deliverer

import (
	"context"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/connect"
	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/dispatch"
	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/index"
	"github.com/hermodhq/hermod/shared/lifecycle"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/ops"
	"github.com/hermodhq/hermod/shared/version"
)

// Config is hermod-deliverer's configuration.
type Config struct {
	envconfig.Common
	OpsAddr     string
	Concurrency int
	AllowCIDRs  string
	Box         *encryption.Box
	Isolation   envconfig.Isolation
}

// LoadConfig reads the configuration from the environment.
func LoadConfig(r *envconfig.Reader) (Config, error) {
	c := Config{Common: envconfig.ReadCommon(r, true)}
	c.OpsAddr = r.String("HERMOD_OPS_ADDR", ":8082")
	c.Box = envconfig.EncryptionKey(r, true)
	c.Concurrency = r.Int("HERMOD_DELIVERY_CONCURRENCY", 64, 1, 10000)
	c.AllowCIDRs, _ = envconfig.AllowCIDRs(r, "")
	c.Isolation = envconfig.ReadIsolation(r)
	return c, r.Err()
}

// NewClient builds the guarded HTTP client of the broker deliverers.
func NewClient(allowCIDRs string, concurrency int) (*delivery.Client, error) {
	allow, err := delivery.ParseCIDRs(allowCIDRs)
	if err != nil {
		return nil, err
	}
	return delivery.NewClient(delivery.ClientOptions{Guard: true, Allow: allow, MaxIdlePerHost: max(64, concurrency),
		UserAgent: version.UserAgent()}), nil
}

// Deliverer is what hermod-deliverer runs; the all-in-one runs the same.
type Deliverer struct {
	Worker    *dispatch.Worker
	Scheduler *dispatch.Scheduler
	Releaser  *dispatch.Releaser
	js        jetstream.JetStream
	ttl       time.Duration
	client    *delivery.Client
}

// Build makes the deliverer's components on js, fed by ix (whose changes
// wake the releaser), with their metrics registered on m.
func Build(js jetstream.JetStream, ix *index.Index, cfg Config, log zerolog.Logger, m *metrics.Metrics) (*Deliverer, error) {
	client, err := NewClient(cfg.AllowCIDRs, cfg.Concurrency)
	if err != nil {
		return nil, err
	}
	deps := dispatch.Deps{Pub: js, Webhooks: ix, Log: log, Metrics: metrics.NewDelivery(m.Registry), By: "broker",
		Rules: dispatch.Rules{AcquireTTL: cfg.AcquireTTL, MaxHold: cfg.MaxHold}}
	d := &Deliverer{js: js, ttl: cfg.AcquireTTL, client: client,
		Worker: dispatch.NewWorker(deps, client, dispatch.WorkerOptions{Concurrency: cfg.Concurrency,
			Isolation: dispatch.NewIsolation(dispatch.IsolationOptions(cfg.Isolation))}),
		Scheduler: dispatch.NewScheduler(deps),
		Releaser:  dispatch.NewReleaser(deps, 0),
	}
	ix.OnChange(d.Releaser.WebhookChanged)
	ix.OnChange(d.Worker.WebhookChanged)
	return d, nil
}

// Components are the deliverer's lifecycle components.
func (d *Deliverer) Components() []lifecycle.Component {
	return []lifecycle.Component{
		{Name: "deliverer", Run: func(ctx context.Context) error { return d.Worker.Run(ctx, d.js, d.ttl) }},
		{Name: "scheduler", Run: func(ctx context.Context) error { return d.Scheduler.Run(ctx, d.js) }},
		{Name: "releaser", Run: func(ctx context.Context) error { return d.Releaser.Run(ctx, d.js) }},
	}
}

// Close releases the HTTP client's connections.
func (d *Deliverer) Close() { d.client.Close() }

// Main runs a deliverer until ctx ends.
func Main(ctx context.Context, cfg Config, log zerolog.Logger, _ io.Writer) error {
	c, err := connect.Open(ctx, "hermod-deliverer", cfg.Common, cfg.Box, nil, log)
	if err != nil {
		return err
	}
	defer c.Close()
	m := metrics.New("hermod-deliverer")
	// The deliverer looks webhooks up by id and never matches events.
	ix := index.New(c.Store, c.NC, log, index.Options{LookupOnly: true})
	d, err := Build(c.JS, ix, cfg, log, m)
	if err != nil {
		return err
	}
	defer d.Close()
	health := ops.NewHealth(c.Checks(), log)
	comps := append([]lifecycle.Component{ix.Component()}, d.Components()...)
	comps = append(comps, ops.Component(cfg.OpsAddr, health, m.Registry))
	log.Info().Str("ops_addr", cfg.OpsAddr).Int("concurrency", cfg.Concurrency).Msg("deliverer starting")
	return lifecycle.Run(ctx, log, cfg.ShutdownTimeout, health, comps...)
}
