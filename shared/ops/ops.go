// Package ops serves /healthz, /readyz and /metrics for the services that
// have no API of their own (router, deliverer, agent).
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is reachable.
type Check func(ctx context.Context) error

// Health tracks readiness: ready only after Start and until Stopping, and
// only while every check passes.
type Health struct {
	checks   map[string]Check
	ready    atomic.Bool
	stopping atomic.Bool
}

// NewHealth returns a Health with named checks.
func NewHealth(checks map[string]Check) *Health { return &Health{checks: checks} }

// SetReady marks the process ready to take work.
func (h *Health) SetReady() { h.ready.Store(true) }

// SetStopping makes /readyz answer 503 from now on (first step of shutdown).
func (h *Health) SetStopping() { h.stopping.Store(true) }

// Healthz answers liveness.
func (h *Health) Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

// Readyz answers readiness with each check's state.
func (h *Health) Readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, body := h.Evaluate(ctx)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// Evaluate runs the checks and returns the HTTP status and the body.
func (h *Health) Evaluate(ctx context.Context) (int, map[string]string) {
	out := map[string]string{}
	ok := h.ready.Load() && !h.stopping.Load()
	switch {
	case h.stopping.Load():
		out["status"] = "stopping"
	case !h.ready.Load():
		out["status"] = "starting"
	}
	for name, c := range h.checks {
		if err := c(ctx); err != nil {
			out[name] = err.Error()
			ok = false
		} else {
			out[name] = "ok"
		}
	}
	if ok {
		out["status"] = "ready"
		return http.StatusOK, out
	}
	return http.StatusServiceUnavailable, out
}

// Server serves the ops endpoints on addr until ctx ends.
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
