package lifecycle

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type readiness struct{ ready, stopping func() }

func (r readiness) SetReady()    { r.ready() }
func (r readiness) SetStopping() { r.stopping() }

// A failing Start stops the run before any component runs.
func TestStartFailureRunsNothing(t *testing.T) {
	ran := false
	err := Run(context.Background(), zerolog.Nop(), time.Second, nil,
		Component{Name: "index", Start: func(context.Context) error { return errors.New("store down") },
			Run: func(context.Context) error { ran = true; return nil }},
		Component{Name: "worker", Run: func(context.Context) error { ran = true; return nil }})
	if err == nil || err.Error() != "index: store down" {
		t.Fatalf("err = %v, want the index's start error", err)
	}
	if ran {
		t.Error("a component ran after a start failed")
	}
}

// Readiness goes first, then workers drain, then servers stop.
func TestShutdownOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, zerolog.Nop(), 5*time.Second, readiness{ready: func() { note("ready") }, stopping: func() { note("unready") }},
			Component{Name: "server", Server: true, Run: func(ctx context.Context) error { <-ctx.Done(); note("server stopped"); return nil }},
			Component{Name: "worker", Start: func(context.Context) error { note("started"); return nil }, Run: func(ctx context.Context) error {
				<-ctx.Done()
				time.Sleep(50 * time.Millisecond) // not a wait: a worker whose draining takes a while
				note("worker drained")
				return nil
			}})
	}()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{"started", "ready", "unready", "worker drained", "server stopped"}
	if !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
}

// A worker that does not drain in time makes Run return an error at the timeout.
func TestShutdownTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	defer close(release)
	cancel()
	start := time.Now()
	err := Run(ctx, zerolog.Nop(), 100*time.Millisecond, nil,
		Component{Name: "stuck", Run: func(context.Context) error { <-release; return nil }})
	if err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("err %v after %s", err, time.Since(start))
	}
}

// A component that fails stops the others and its error is returned.
func TestComponentFailure(t *testing.T) {
	boom := errors.New("boom")
	err := Run(context.Background(), zerolog.Nop(), time.Second, nil,
		Component{Name: "bad", Run: func(context.Context) error { return boom }},
		Component{Name: "good", Run: func(ctx context.Context) error { <-ctx.Done(); return nil }})
	if !errors.Is(err, boom) {
		t.Errorf("err %v", err)
	}
}
