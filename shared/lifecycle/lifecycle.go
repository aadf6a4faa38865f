// Package lifecycle runs a service's components and shuts them down in the
// house order: readiness goes false first, the workers stop taking work and
// drain what they hold, then the servers (API, health) stop, and the whole
// stop is bounded by a timeout.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Component is one long-running part. Start, when set, runs first, in the
// order the components are given and before any Run (the webhook index
// loads there, so nothing runs on an empty index); Run returns after ctx
// ends and its work in hand is finished. A Server component keeps running
// until every other component has drained: the servers (the API, /readyz
// answering 503 meanwhile) and what the draining workers still use (the
// webhook index).
type Component struct {
	Name   string
	Start  func(ctx context.Context) error
	Run    func(ctx context.Context) error
	Server bool
}

// Readiness is told when every component's Start succeeded and its Run
// began, and when the shutdown begins; *ops.Health implements it.
type Readiness interface {
	SetReady()
	SetStopping()
}

// Run starts every component (Start in order, then every Run), tells ready
// it is ready, waits for ctx to end (or one component to fail), tells ready
// it is stopping, stops the workers, then the servers, waiting up to
// timeout in all.
func Run(ctx context.Context, log zerolog.Logger, timeout time.Duration, ready Readiness, comps ...Component) error {
	for _, c := range comps {
		if c.Start == nil {
			continue
		}
		if err := c.Start(ctx); err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
	}
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	errs := make(chan error, len(comps))
	var workers, servers sync.WaitGroup
	for _, c := range comps {
		wg, cctx := &workers, workCtx
		if c.Server {
			wg, cctx = &servers, serveCtx
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(cctx); err != nil {
				errs <- fmt.Errorf("%s: %w", c.Name, err)
				return
			}
			errs <- nil
		}()
	}
	if ready != nil {
		ready.SetReady()
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
	if ready != nil {
		ready.SetStopping()
	}
	deadline := time.After(timeout)
	stopWork()
	if !waitOrDeadline(&workers, deadline) {
		log.Warn().Dur("timeout", timeout).Msg("shutdown timeout passed; exiting with work in flight (it will be redelivered)")
		return errors.Join(first, errors.New("shutdown timed out"))
	}
	stopServe()
	if !waitOrDeadline(&servers, deadline) {
		return errors.Join(first, errors.New("shutdown timed out"))
	}
	log.Info().Msg("stopped")
	return first
}

func waitOrDeadline(wg *sync.WaitGroup, deadline <-chan time.Time) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-deadline:
		return false
	}
}
