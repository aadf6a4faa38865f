// Package logging builds the zerolog logger every service uses: JSON to
// stderr by default, level from HERMOD_LOG_LEVEL.
package logging

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// New returns a logger for service at level ("debug", "info", "warn", "error").
func New(service, level string, w io.Writer) (zerolog.Logger, error) {
	if w == nil {
		w = os.Stderr
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("HERMOD_LOG_LEVEL: %q is not one of debug, info, warn, error", level)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("service", service).Logger(), nil
}

// Config logs the effective configuration (already masked) as one line.
func Config(log zerolog.Logger, effective map[string]string) {
	d := zerolog.Dict()
	for k, v := range effective {
		d = d.Str(k, v)
	}
	log.Info().Dict("config", d).Msg("effective configuration")
}
