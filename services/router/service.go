package router

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/connect"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/index"
	"github.com/hermodhq/hermod/shared/lifecycle"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/ops"
	"github.com/hermodhq/hermod/shared/recorder"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
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
func Main(ctx context.Context, cfg Config, log zerolog.Logger) error {
	nc, err := connect.NATS(cfg.NATSURL, "hermod-router")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := connect.JetStream(nc)
	if err != nil {
		return err
	}
	rdb, err := connect.Redis(ctx, cfg.RedisURL, 30*time.Second)
	if err != nil {
		return err
	}
	defer rdb.Close()
	st := store.New(rdb, nil) // the router never needs a secret
	cat := catalog.New(catalog.Default)
	if err := streams.EnsureStreams(ctx, js, cfg.StreamSettings(cat.StreamSubjects())); err != nil {
		return err
	}
	m := metrics.New()
	ix := index.New(st, nc, log, index.Options{})
	health := ops.NewHealth(map[string]ops.Check{
		"nats":  func(context.Context) error { return natsCheck(nc.IsConnected()) },
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	})
	idxCtx, idxCancel := context.WithCancel(context.Background())
	defer idxCancel()
	var wg sync.WaitGroup
	if err := ix.Start(idxCtx, &wg); err != nil {
		return fmt.Errorf("load webhook index: %w", err)
	}
	rt := New(js, ix, log, m, Options{Workers: cfg.Workers})
	rec := recorder.New(js, st, log, recorder.Options{Limits: Limits(cfg.Common), OnError: func(error) { m.RecordErrors.Inc() }})
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

func natsCheck(connected bool) error {
	if !connected {
		return fmt.Errorf("not connected")
	}
	return nil
}
