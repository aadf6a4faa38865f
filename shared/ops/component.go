package ops

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hermodhq/hermod/shared/lifecycle"
)

// Component is the ops server (/healthz, /readyz, /metrics on addr) as a
// lifecycle component: a Server, so /readyz answers 503 while the workers
// drain.
func Component(addr string, h *Health, reg *prometheus.Registry) lifecycle.Component {
	return lifecycle.Component{Name: "ops", Server: true, Run: func(ctx context.Context) error { return Serve(ctx, addr, h, reg) }}
}
