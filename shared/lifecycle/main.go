package lifecycle

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/logging"
)

// Main is the whole of a binary's main: read and check the configuration
// (exit 2 naming every bad variable), build the logger, print the effective
// configuration with secrets masked, and run until SIGINT or SIGTERM (exit 1
// on an error).
func Main[C any](name string, load func(*envconfig.Reader) (C, error), level func(C) string,
	run func(ctx context.Context, cfg C, log zerolog.Logger, out io.Writer) error) {
	r := envconfig.New()
	cfg, err := load(r)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: invalid configuration:\n%v\n", name, err)
		os.Exit(2)
	}
	log, err := logging.New(name, level(cfg), os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	logging.Config(log, r.Effective())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, cfg, log, os.Stdout)
	stop()
	if err != nil {
		log.Error().Err(err).Msg(name + " stopped with an error")
		os.Exit(1)
	}
}
