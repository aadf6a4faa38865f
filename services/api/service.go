package api

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/connect"
	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/index"
	"github.com/hermodhq/hermod/shared/lifecycle"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/ops"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/version"
)

// Config is hermod-api's configuration.
type Config struct {
	envconfig.Common
	Addr          string
	AdminKeys     []string
	MaxEventBytes int64
	AllowCIDRs    string
	Box           *encryption.Box
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
	c.MaxEventBytes = int64(r.Int("HERMOD_MAX_EVENT_BYTES", 256<<10, 1024, 8<<20))
	c.AllowCIDRs, _ = envconfig.AllowCIDRs(r, "")
	return c, r.Err()
}

// Deps are what the API runs on; the all-in-one shares them.
type Deps struct {
	NC     *nats.Conn
	Redis  *redis.Client
	Store  *store.Store
	Health *ops.Health
	M      *metrics.Metrics
}

// Build makes the server from its dependencies.
func Build(cfg Config, d Deps, log zerolog.Logger) (*Server, error) {
	js, err := connect.JetStream(d.NC)
	if err != nil {
		return nil, err
	}
	allow, err := delivery.ParseCIDRs(cfg.AllowCIDRs)
	if err != nil {
		return nil, err
	}
	client := delivery.NewClient(delivery.ClientOptions{Guard: true, Allow: allow, UserAgent: version.UserAgent()})
	d.M.Registry.MustRegister(metrics.NewBacklogCollector(js))
	notifier, err := index.NewNotifier(d.NC)
	if err != nil {
		return nil, err
	}
	return New(d.Store, d.NC, js, notifier, catalog.New(catalog.Default), client, d.Health, d.M, log, Options{
		AdminKeys: cfg.AdminKeys, MaxEventBytes: cfg.MaxEventBytes, Version: version.Version,
		Limits: store.Limits{Retention: cfg.Retention, HistoryLimit: cfg.HistoryLimit, PayloadTTL: cfg.Retention + cfg.MaxHold + 24*time.Hour},
	}), nil
}

// Checks are the readiness checks of a process using NATS and Redis.
func Checks(nc *nats.Conn, rdb *redis.Client) map[string]ops.Check {
	return map[string]ops.Check{
		"nats": func(context.Context) error {
			if !nc.IsConnected() {
				return fmt.Errorf("not connected")
			}
			return nil
		},
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	}
}

// Main runs hermod-api until ctx ends.
func Main(ctx context.Context, cfg Config, log zerolog.Logger) error {
	nc, err := connect.NATS(cfg.NATSURL, "hermod-api")
	if err != nil {
		return err
	}
	defer nc.Close()
	rdb, err := connect.Redis(ctx, cfg.RedisURL, 30*time.Second)
	if err != nil {
		return err
	}
	defer rdb.Close()
	st := store.New(rdb, cfg.Box)
	if err := st.CheckKey(ctx); err != nil {
		return err
	}
	js, err := connect.JetStream(nc)
	if err != nil {
		return err
	}
	if err := streams.EnsureStreams(ctx, js, cfg.StreamSettings(catalog.New(catalog.Default).StreamSubjects())); err != nil {
		return err
	}
	health := ops.NewHealth(Checks(nc, rdb))
	m := metrics.New()
	srv, err := Build(cfg, Deps{NC: nc, Redis: rdb, Store: st, Health: health, M: m}, log)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("HERMOD_API_ADDR %s: %w", cfg.Addr, err)
	}
	health.SetReady()
	log.Info().Str("addr", l.Addr().String()).Msg("api ready")
	return lifecycle.Run(ctx, log, cfg.ShutdownTimeout, health.SetStopping,
		lifecycle.Component{Name: "api", Server: true, Run: func(ctx context.Context) error { return srv.Serve(ctx, l) }})
}
