package router

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/connect"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/index"
	"github.com/hermodhq/hermod/shared/lifecycle"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/ops"
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
	c.Workers = r.Int("HERMOD_ROUTER_WORKERS", 8, 1, 256)
	return c, r.Err()
}

// Limits are the record limits derived from the configuration.
func Limits(c envconfig.Common) store.Limits {
	return store.Limits{Retention: c.Retention, HistoryLimit: c.HistoryLimit, PayloadTTL: c.Retention + c.MaxHold + 24*time.Hour}
}

// Main runs the router and the recorder until ctx ends.
func Main(ctx context.Context, cfg Config, log zerolog.Logger, _ io.Writer) error {
	c, err := connect.Open(ctx, "hermod-router", cfg.Common, nil, nil) // the router never needs a secret
	if err != nil {
		return err
	}
	defer c.Close()
	m := metrics.New()
	ix := index.New(c.Store, c.NC, log, index.Options{})
	health := ops.NewHealth(c.Checks(), log)
	idxCtx, idxCancel := context.WithCancel(context.Background())
	defer idxCancel()
	var wg sync.WaitGroup
	if err := ix.Start(idxCtx, &wg); err != nil {
		return fmt.Errorf("load webhook index: %w", err)
	}
	rt := New(c.JS, ix, log, m, Options{Workers: cfg.Workers})
	rec := recorder.New(c.JS, c.Store, log, recorder.Options{Limits: Limits(cfg.Common), OnError: func(error) { m.RecordErrors.Inc() },
		Agents: recorder.StoreAgents(c.Store, recorder.IndexLabels(ix))})
	health.SetReady()
	log.Info().Str("ops_addr", cfg.OpsAddr).Msg("router ready")
	err = lifecycle.Run(ctx, log, cfg.ShutdownTimeout, health.SetStopping,
		lifecycle.Component{Name: "router", Run: rt.Run},
		lifecycle.Component{Name: "recorder", Run: rec.Run},
		lifecycle.Component{Name: "ops", Server: true, Run: func(ctx context.Context) error { return ops.Serve(ctx, cfg.OpsAddr, health, m.Registry) }},
	)
	idxCancel()
	wg.Wait()
	return err
}
