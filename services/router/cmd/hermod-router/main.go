// Command hermod-router fans events out to deliveries and records outcomes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hermodhq/hermod/services/router"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/logging"
)

func main() {
	r := envconfig.New()
	cfg, err := router.LoadConfig(r)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hermod-router: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	log, err := logging.New("hermod-router", cfg.LogLevel, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logging.Config(log, r.Effective())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := router.Main(ctx, cfg, log); err != nil {
		log.Error().Err(err).Msg("hermod-router stopped with an error")
		os.Exit(1)
	}
}
