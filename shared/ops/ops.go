// Package ops serves /healthz, /readyz and /metrics for the services that
// have no API of their own (router, deliverer, agent).
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// Check reports whether one dependency is reachable.
type Check func(ctx context.Context) error

// Health tracks readiness: ready only after Start and until Stopping, and
// only while every check passes. /readyz names the dependencies that are
// down, never their errors (it is public, and a driver error may name
// addresses or users): the errors go to the log when a dependency goes
// down, then at most every RepeatEvery while it stays down, and its recovery
// when it is back, so a probe every second does not flood the log.
type Health struct {
	checks   map[string]Check
	log      zerolog.Logger
	ready    atomic.Bool
	stopping atomic.Bool

	mu    sync.Mutex
	state map[string]*checkState
	now   func() time.Time // the clock of the log's rate limit
}

// checkState is what was last logged about one check.
type checkState struct {
	down     bool
	since    time.Time // down since
	loggedAt time.Time // last logged
}

// RepeatEvery is how often a dependency that stays down is logged again, at
// most.
const RepeatEvery = time.Minute

// NewHealth returns a Health with named checks; log receives the checks'
// errors.
func NewHealth(checks map[string]Check, log zerolog.Logger) *Health {
	return &Health{checks: checks, log: log, state: map[string]*checkState{}, now: time.Now}
}

// SetReady marks the process ready to take work.
func (h *Health) SetReady() { h.ready.Store(true) }

// SetStopping makes /readyz answer 503 from now on (first step of shutdown).
func (h *Health) SetStopping() { h.stopping.Store(true) }

// Healthz answers liveness.
func (h *Health) Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

// Readiness is the body of /readyz.
type Readiness struct {
	// Status is ready, unready (a dependency is down), starting or stopping.
	Status string `json:"status"`
	// Down names the dependencies whose check failed (e.g. "redis"), sorted.
	Down []string `json:"down,omitempty"`
}

// Readyz answers readiness: 200 {"status":"ready"}, else 503 with the
// status and the dependencies that are down.
func (h *Health) Readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, body := h.Evaluate(ctx)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// Evaluate runs the checks and returns the HTTP status and the body.
func (h *Health) Evaluate(ctx context.Context) (int, Readiness) {
	var out Readiness
	for name, c := range h.checks {
		err := c(ctx)
		h.note(name, err)
		if err != nil {
			out.Down = append(out.Down, name)
		}
	}
	sort.Strings(out.Down)
	switch {
	case h.stopping.Load():
		out.Status = "stopping"
	case !h.ready.Load():
		out.Status = "starting"
	case len(out.Down) > 0:
		out.Status = "unready"
	default:
		out.Status = "ready"
		return http.StatusOK, out
	}
	return http.StatusServiceUnavailable, out
}

// note logs a check's result: a dependency going down (warn, with its
// error), still down RepeatEvery after the last line (warn, with its current
// error), and its recovery (info). Other results log nothing.
func (h *Health) note(name string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.state[name]
	if st == nil {
		st = &checkState{}
		h.state[name] = st
	}
	now := h.now()
	switch {
	case err == nil && st.down:
		h.log.Info().Str("dependency", name).Dur("down_for", now.Sub(st.since)).Msg("dependency is reachable again")
		*st = checkState{}
	case err == nil:
	case !st.down:
		h.log.Warn().Err(err).Str("dependency", name).Msg("dependency is down: not ready")
		*st = checkState{down: true, since: now, loggedAt: now}
	case now.Sub(st.loggedAt) >= RepeatEvery:
		h.log.Warn().Err(err).Str("dependency", name).Dur("down_for", now.Sub(st.since)).Msg("dependency is still down: not ready")
		st.loggedAt = now
	}
}

// Serve serves the ops endpoints on addr until ctx ends.
func Serve(ctx context.Context, addr string, h *Health, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", h.Healthz)
	mux.HandleFunc("/readyz", h.Readyz)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
		return nil
	case err := <-done:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
