// Command hermod runs the whole pipeline in one process (development).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	allinone "github.com/hermodhq/hermod/services/hermod"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/logging"
)

func main() {
	r := envconfig.New()
	cfg, err := allinone.LoadConfig(r)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hermod: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	log, err := logging.New("hermod", cfg.LogLevel, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logging.Config(log, r.Effective())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := allinone.Main(ctx, cfg, log, os.Stdout); err != nil {
		log.Error().Err(err).Msg("hermod stopped with an error")
		os.Exit(1)
	}
}
