package formats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// fakeMeter is a clock and a CPU clock the test moves.
type fakeMeter struct {
	cpu   atomic.Int64
	wall  atomic.Int64
	reads atomic.Int64 // of CPU: the watchdog reads it at its start and every tick
}

var epoch = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

func (m *fakeMeter) CPU() time.Duration { m.reads.Add(1); return time.Duration(m.cpu.Load()) }
func (m *fakeMeter) Now() time.Time     { return epoch.Add(time.Duration(m.wall.Load())) }

// The watchdog stops a render for the template's fault only by CPU time:
// wall-clock time alone (a busy host) stops it for the host's fault.
func TestWatchdog(t *testing.T) {
	for _, c := range []struct {
		name      string
		cpu, wall time.Duration
		cause     error
		abandon   bool
	}{
		{name: "within the budgets", cpu: templateCPU / 2, wall: runnerWall / 2},
		{name: "over the CPU budget", cpu: templateCPU, wall: time.Millisecond, cause: errOverCPU},
		{name: "a busy host", cpu: time.Millisecond, wall: runnerWall, cause: errHostSlow},
		{name: "over both: the template's", cpu: templateCPU, wall: runnerWall, cause: errOverCPU},
		{name: "does not stop", cpu: runnerHardCPU, wall: time.Millisecond, cause: nil, abandon: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &fakeMeter{}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			stop, watched := make(chan struct{}), make(chan struct{})
			var abandoned atomic.Bool
			go func() {
				defer close(watched)
				watch(m, cancel, stop, func() { abandoned.Store(true) })
			}()
			// The clocks move once the watchdog has read its start; then
			// ten of its ticks are enough to see them.
			hermodtest.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
				if m.reads.Load() == 0 {
					return errors.New("the watchdog has not started")
				}
				return nil
			})
			m.cpu.Store(int64(c.cpu))
			m.wall.Store(int64(c.wall))
			seen := m.reads.Load() + 10
			hermodtest.CheckFor(t, 10*time.Second, watchdogTick, func() error {
				select {
				case <-watched: // it returned (abandoned)
					return nil
				default:
				}
				if n := m.reads.Load(); n < seen {
					return fmt.Errorf("the watchdog read the clocks %d times, waiting for %d", n, seen)
				}
				return nil
			})
			close(stop)
			<-watched
			if got := context.Cause(ctx); c.cause != nil && !errors.Is(got, c.cause) || c.cause == nil && !c.abandon && got != nil {
				t.Errorf("cause %v, want %v", got, c.cause)
			}
			if abandoned.Load() != c.abandon {
				t.Errorf("abandoned %v, want %v", abandoned.Load(), c.abandon)
			}
		})
	}
}

// inProcessRunner is a runner served by serveRunner in this process, with
// the given meter.
func inProcessRunner(t *testing.T, m meter) *runner {
	t.Helper()
	reqR, reqW := io.Pipe()
	resR, resW := io.Pipe()
	served := make(chan int, 1)
	go func() { served <- serveRunner(reqR, resW, m); _ = resW.Close() }()
	r := &runner{}
	var once sync.Once
	r.attach(reqW, resR, 0, func() {
		once.Do(func() {
			_ = reqW.Close()
			_ = resR.Close()
			<-served
		})
	})
	var res runnerResponse
	if err := r.dec.Decode(&res); err != nil || !res.Ready {
		t.Fatalf("runner not ready: %+v %v", res, err)
	}
	t.Cleanup(r.stop)
	return r
}

// What the runner answers decides whose failure a render is: a template
// over its CPU time is the template's (ErrTemplate: the delivery is dead);
// one that could not get its CPU time on a busy host is the host's
// (ErrRunner: tried again later).
func TestRunnerBlamesByCPUTime(t *testing.T) {
	body := envelope(t, "deployment.failed", map[string]any{"deployment_id": "d-1"})
	slow := `[range(1e9)] | length`
	for _, c := range []struct {
		name    string
		advance func(m *fakeMeter)
		want    error
		text    string
	}{
		{"uses its CPU time", func(m *fakeMeter) { m.cpu.Add(int64(templateCPU)) }, ErrTemplate, "of CPU time"},
		{"gets no CPU time", func(m *fakeMeter) { m.wall.Add(int64(runnerWall)) }, ErrRunner, "did not get"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &fakeMeter{}
			p := &runnerPool{idle: make(chan *runner, 1)}
			p.idle <- inProcessRunner(t, m)
			got := make(chan error, 1)
			go func() {
				_, err := p.render(context.Background(), templateKey(slow), slow, body)
				got <- err
			}()
			var err error
			hermodtest.CheckFor(t, 30*time.Second, watchdogTick, func() error {
				c.advance(m) // until the render's watchdog has seen it
				select {
				case err = <-got:
					return nil
				default:
					return errors.New("render still running")
				}
			})
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Errorf("render: %v, want %v mentioning %q", err, c.want, c.text)
			}
			if errors.Is(err, ErrTemplate) && errors.Is(err, ErrRunner) {
				t.Errorf("render blamed on both: %v", err)
			}
		})
	}
}

// A runner that no longer knows a template (it keeps a bounded number) is
// sent it again: the render works.
func TestRunnerForgotTheTemplate(t *testing.T) {
	body := envelope(t, "deployment.failed", map[string]any{"deployment_id": "d-1"})
	p := &runnerPool{idle: make(chan *runner, 1)}
	r := inProcessRunner(t, &fakeMeter{})
	p.idle <- r
	src := `{id}`
	for i := range runnerCache + 1 { // the last one makes the runner forget
		other := fmt.Sprintf(`{n: %d}`, i)
		if _, err := p.render(context.Background(), templateKey(other), other, body); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if out, err := p.render(context.Background(), templateKey(src), src, body); err != nil || string(out) != `{"id":"ev-1"}` {
				t.Fatalf("first: %s (%v)", out, err)
			}
		}
	}
	out, err := p.render(context.Background(), templateKey(src), src, body)
	if err != nil || string(out) != `{"id":"ev-1"}` {
		t.Errorf("after the runner forgot it: %s (%v)", out, err)
	}
}

// takeRunners takes every runner of the process's pool, started; the
// test gives them back (putBack).
func takeRunners(t *testing.T) []*runner {
	t.Helper()
	p := runners()
	var rs []*runner
	for range cap(p.idle) {
		r := <-p.idle
		if r.kill == nil {
			if err := r.start(); err != nil {
				t.Fatal(err)
			}
		}
		rs = append(rs, r)
	}
	return rs
}

func putBack(rs []*runner) {
	for _, r := range rs {
		runners().idle <- r
	}
}

// A caller that gives up (a preview whose client went away) gets ErrRunner
// at once and costs no runner: the runner finishes the render and serves
// the next one, the same process.
func TestCancelledRenderKeepsItsRunner(t *testing.T) {
	body := envelope(t, "deployment.failed", map[string]any{"deployment_id": "d-1"})
	rs := takeRunners(t)
	pids := map[int]bool{}
	for _, r := range rs {
		pids[r.pid] = true
	}
	putBack(rs)
	slow := mustCompile(t, Template, &Options{Template: `[range(1e9)] | length`})
	for range 2 * len(rs) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_, err := slow.Render(ctx, body, now)
		cancel()
		if !errors.Is(err, ErrRunner) && !errors.Is(err, ErrTemplate) {
			t.Fatalf("cancelled render: %v", err)
		}
		if errors.Is(err, ErrRunner) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("cancelled render: %v, want the context's error", err)
		}
	}
	out, err := mustCompile(t, Template, &Options{Template: `{id}`}).Render(context.Background(), body, now)
	if err != nil || string(out) != `{"id":"ev-1"}` {
		t.Fatalf("after cancelled renders: %s (%v)", out, err)
	}
	rs = takeRunners(t)
	putBack(rs)
	for _, r := range rs {
		if !pids[r.pid] {
			t.Errorf("runner %d was replaced (had %v)", r.pid, pids)
		}
	}
}

// Templates render side by side: with one runner of a pool busy, another
// renders.
func TestRunnersRenderSideBySide(t *testing.T) {
	body := envelope(t, "deployment.failed", map[string]any{"deployment_id": "d-1"})
	p := newRunnerPool(2)
	busy := <-p.idle // held by "another render" for the whole test
	src := `{id}`
	out, err := p.render(context.Background(), templateKey(src), src, body)
	if err != nil || string(out) != `{"id":"ev-1"}` {
		t.Errorf("with one runner busy: %s (%v)", out, err)
	}
	p.idle <- busy
	for range cap(p.idle) {
		(<-p.idle).stop()
	}
}

// A runner lost for another reason (killed from outside) fails no render:
// the render is tried again in a new runner.
func TestTemplateRunnerLostIsRetried(t *testing.T) {
	body := envelope(t, "deployment.failed", map[string]any{"deployment_id": "d-1"})
	r := mustCompile(t, Template, &Options{Template: `{id}`})
	rs := takeRunners(t)
	for _, rn := range rs {
		rn.stop() // as if killed: the pool still holds it as started
		rn.kill = func() {}
	}
	putBack(rs)
	out, err := r.Render(context.Background(), body, now)
	if err != nil || string(out) != `{"id":"ev-1"}` {
		t.Errorf("after the runner was killed: %s (%v)", out, err)
	}
}

// Good templates render on a host whose CPUs are all busy: their budget is
// their own CPU time, not the time the host takes to give it to them.
func TestTemplateOnABusyHost(t *testing.T) {
	body := envelope(t, "deployment.failed", map[string]any{"deployment_id": "d-1", "message": "image pull"})
	r := mustCompile(t, Template, &Options{Template: `{msg: "\(.event_type): \(.data.message)", n: ([range(2000)] | length)}`})
	done := make(chan struct{})
	var spinners sync.WaitGroup
	for range 3 * runtime.GOMAXPROCS(0) {
		spinners.Add(1)
		go func() {
			defer spinners.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
			}
		}()
	}
	defer func() { close(done); spinners.Wait() }()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := r.Render(context.Background(), body, now)
			if err == nil && string(out) != `{"msg":"deployment.failed: image pull","n":2000}` {
				err = fmt.Errorf("rendered %s", out)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
