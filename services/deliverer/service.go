package deliverer

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/connect"
	"github.com/hermodhq/hermod/shared/delivery"
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
	OpsAddr         string
	Concurrency     int
	WebhookInflight int
	AllowCIDRs      string
	Box             *encryption.Box
	Breaker         envconfig.Breaker
}

// LoadConfig reads the configuration from the environment.
func LoadConfig(r *envconfig.Reader) (Config, error) {
	c := Config{Common: envconfig.ReadCommon(r, true)}
	c.OpsAddr = r.String("HERMOD_OPS_ADDR", ":8082")
	c.Box = envconfig.EncryptionKey(r, true)
	c.Concurrency = r.Int("HERMOD_DELIVERY_CONCURRENCY", 64, 1, 10000)
	c.WebhookInflight = r.Int("HERMOD_WEBHOOK_MAX_INFLIGHT", 32, 1, 10000)
	c.AllowCIDRs, _ = envconfig.AllowCIDRs(r, "")
	c.Breaker = envconfig.ReadBreaker(r)
	return c, r.Err()
}

// Options turns the configuration into deliverer options.
func (c Config) Options() Options {
	return Options{Concurrency: c.Concurrency, WebhookInflight: c.WebhookInflight, AcquireTTL: c.AcquireTTL, MaxHold: c.MaxHold,
		BreakerThreshold: c.Breaker.Threshold, BreakerCooldown: c.Breaker.Cooldown}
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

// Main runs a deliverer until ctx ends.
func Main(ctx context.Context, cfg Config, log zerolog.Logger, _ io.Writer) error {
	c, err := connect.Open(ctx, "hermod-deliverer", cfg.Common, cfg.Box, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	client, err := NewClient(cfg.AllowCIDRs, cfg.Concurrency)
	if err != nil {
		return err
	}
	defer client.Close()
	m := metrics.New()
	ix := index.New(c.Store, c.NC, log, index.Options{})
	d := New(c.JS, ix, client, log, m, cfg.Options())
	ix.OnChange(d.WebhookChanged)
	idxCtx, idxCancel := context.WithCancel(context.Background())
	defer idxCancel()
	var wg sync.WaitGroup
	if err := ix.Start(idxCtx, &wg); err != nil {
		return fmt.Errorf("load webhook index: %w", err)
	}
	health := ops.NewHealth(c.Checks(), log)
	health.SetReady()
	log.Info().Str("ops_addr", cfg.OpsAddr).Int("concurrency", cfg.Concurrency).Msg("deliverer ready")
	err = lifecycle.Run(ctx, log, cfg.ShutdownTimeout, health.SetStopping,
		lifecycle.Component{Name: "deliverer", Run: d.Run},
		lifecycle.Component{Name: "ops", Server: true, Run: func(ctx context.Context) error { return ops.Serve(ctx, cfg.OpsAddr, health, m.Registry) }},
	)
	idxCancel()
	wg.Wait()
	return err
}
