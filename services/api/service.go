package api

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/rs/zerolog"

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
	"github.com/hermodhq/hermod/shared/store"
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
	// CalloutSeed, when set, makes hermod-api NATS's auth callout for agents
	// (an account seed, "SA..."; its public key is the server's auth_callout.issuer).
	CalloutSeed string
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
	c.CalloutSeed = r.Secret("HERMOD_AUTH_CALLOUT_SEED", "")
	r.Check(c.CalloutSeed == "" || strings.HasPrefix(c.CalloutSeed, "SA"), "HERMOD_AUTH_CALLOUT_SEED", "must be an account seed (SA...)")
	return c, r.Err()
}

// Build makes the server on c; the all-in-one shares c, health and m.
func Build(cfg Config, c *connect.Conns, health *ops.Health, m *metrics.Metrics, log zerolog.Logger) (*Server, error) {
	allow, err := delivery.ParseCIDRs(cfg.AllowCIDRs)
	if err != nil {
		return nil, err
	}
	client := delivery.NewClient(delivery.ClientOptions{Guard: true, Allow: allow, UserAgent: version.UserAgent()})
	m.Registry.MustRegister(metrics.NewBacklogCollector(c.JS))
	notifier, err := index.NewNotifier(c.NC)
	if err != nil {
		return nil, err
	}
	return New(c.Store, c.NC, c.JS, notifier, catalog.New(catalog.Default), client, health, m, log, Options{
		AdminKeys: cfg.AdminKeys, MaxEventBytes: cfg.MaxEventBytes, Version: version.Version, AcquireTTL: cfg.AcquireTTL,
		Limits: store.Limits{Retention: cfg.Retention, HistoryLimit: cfg.HistoryLimit, PayloadTTL: cfg.Retention + cfg.MaxHold + 24*time.Hour},
	}), nil
}

// Main runs hermod-api until ctx ends.
func Main(ctx context.Context, cfg Config, log zerolog.Logger, _ io.Writer) error {
	c, err := connect.Open(ctx, "hermod-api", cfg.Common, cfg.Box, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	health := ops.NewHealth(c.Checks())
	m := metrics.New()
	srv, err := Build(cfg, c, health, m, log)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("HERMOD_API_ADDR %s: %w", cfg.Addr, err)
	}
	comps := []lifecycle.Component{
		{Name: "api", Server: true, Run: func(ctx context.Context) error { return srv.Serve(ctx, l) }},
		{Name: "agent control", Run: srv.ServeAgents},
	}
	if cfg.CalloutSeed != "" {
		callout, err := agentauth.NewCallout(cfg.CalloutSeed, "", srv, log)
		if err != nil {
			return err
		}
		log.Info().Str("issuer", callout.Issuer()).Msg("serving the NATS auth callout for agents")
		comps = append(comps, lifecycle.Component{Name: "auth callout", Run: func(ctx context.Context) error { return callout.Serve(ctx, c.NC) }})
	}
	health.SetReady()
	log.Info().Str("addr", l.Addr().String()).Msg("api ready")
	return lifecycle.Run(ctx, log, cfg.ShutdownTimeout, health.SetStopping, comps...)
}
