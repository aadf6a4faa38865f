// Package lifecycle runs a service's components and shuts them down in the
// house order: readiness goes false first, components stop taking work and
// drain what they hold, and the whole stop is bounded by a timeout.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Component is one long-running part; Run returns after ctx ends and its
// work in hand is finished.
type Component struct {
	Name string
	Run  func(ctx context.Context) error
}

// Run starts every component, waits for ctx to end (or one to fail), calls
// stopping, cancels the components and waits up to timeout for them.
func Run(ctx context.Context, log zerolog.Logger, timeout time.Duration, stopping func(), comps ...Component) error {
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, len(comps))
	var wg sync.WaitGroup
	for _, c := range comps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(runCtx); err != nil {
				errs <- fmt.Errorf("%s: %w", c.Name, err)
				return
			}
			errs <- nil
		}()
	}
	var first error
	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down: not ready, draining in-flight work")
	case err := <-errs:
		first = err
		if err != nil {
			log.Error().Err(err).Msg("component failed; shutting down")
		} else {
			first = errors.New("a component stopped unexpectedly")
		}
	}
	if stopping != nil {
		stopping()
	}
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		log.Info().Msg("stopped")
	case <-time.After(timeout):
		log.Warn().Dur("timeout", timeout).Msg("shutdown timeout passed; exiting with work in flight (it will be redelivered)")
		return errors.Join(first, errors.New("shutdown timed out"))
	}
	return first
}
