package formats

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The runner's side: it compiles each template once and renders requests
// one at a time, each under a watchdog that holds it to its budgets.
//
// A render's budget is CPU time, not wall-clock time, so a good template
// on an overloaded host is not taken for a slow one: the watchdog stops a
// render that has used templateCPU of this process's CPU time (the
// template's fault) and one still unfinished after runnerWall while under
// that (the host's fault: it did not get the CPU). jq checks for the stop
// between steps; a single builtin that does not (a huge sort) is stopped
// by the watchdog answering and exiting once the render has used
// runnerHardCPU.
const (
	runnerWall    = 3 * time.Second
	runnerHardCPU = 2 * time.Second
	watchdogTick  = 5 * time.Millisecond
	runnerCache   = 256 // compiled templates kept by one runner
)

// Why the watchdog stopped a render.
var (
	errOverCPU  = errors.New("over the CPU budget")
	errHostSlow = errors.New("host too busy")
)

// RunnerMain makes this process the template runner when it was started as
// one, and then exits; otherwise it returns at once. Every binary that
// renders templates (and every test binary that does) calls it first.
func RunnerMain() {
	if os.Getenv(runnerEnv) != "1" {
		return
	}
	limitMemory(runnerMemory)
	os.Exit(serveRunner(os.Stdin, os.Stdout, processMeter{}))
}

// meter tells the watchdog how much CPU time this process has used, and
// the time.
type meter interface {
	CPU() time.Duration
	Now() time.Time
}

// processMeter is the real one: this process's CPU time (runner_linux.go).
type processMeter struct{}

func (processMeter) CPU() time.Duration { return processCPU() }
func (processMeter) Now() time.Time     { return time.Now() }

// answerer writes answers: at most one per request, from the render or
// from the watchdog, whichever comes first.
type answerer struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (a *answerer) answer(done *atomic.Bool, res runnerResponse) error {
	if !done.CompareAndSwap(false, true) {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.enc.Encode(res)
}

// serveRunner says it is ready, then answers render requests until its
// input ends; its result is the exit code.
func serveRunner(in io.Reader, out io.Writer, m meter) int {
	dec := json.NewDecoder(bufio.NewReader(in))
	a := &answerer{enc: json.NewEncoder(out)}
	var ready atomic.Bool
	if err := a.answer(&ready, runnerResponse{Ready: true}); err != nil {
		return 2
	}
	compiled := map[string]*program{}
	for {
		var req runnerRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return 0
			}
			return 2
		}
		var done atomic.Bool
		p, ok := compiled[req.Key]
		if !ok && req.Src == "" {
			if err := a.answer(&done, runnerResponse{ID: req.ID, Unknown: true}); err != nil {
				return 2
			}
			continue
		}
		if !ok {
			var err error
			if p, err = compileTemplate(req.Src); err != nil {
				if err := a.answer(&done, runnerResponse{ID: req.ID, Err: err.Error()}); err != nil {
					return 2
				}
				continue
			}
			if len(compiled) >= runnerCache {
				clear(compiled)
			}
			compiled[req.Key] = p
		}
		res := renderWatched(p, req, m, func(res runnerResponse) {
			// The render did not stop: answer for it, and end this
			// process (the parent starts another).
			_ = a.answer(&done, res)
			os.Exit(3)
		})
		if err := a.answer(&done, res); err != nil {
			return 2
		}
	}
}

// renderWatched renders req under the watchdog; abandon answers and ends
// the process when the render does not stop.
func renderWatched(p *program, req runnerRequest, m meter, abandon func(runnerResponse)) runnerResponse {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		watch(m, cancel, stop, func() {
			abandon(runnerResponse{ID: req.ID, Err: overCPU()})
		})
	}()
	out, err := p.run(ctx, req.Body)
	close(stop)
	<-watched
	res := runnerResponse{ID: req.ID, Out: out}
	switch cause := context.Cause(ctx); {
	case err == nil:
	case errors.Is(cause, errOverCPU):
		res.Out, res.Err = nil, overCPU()
	case errors.Is(cause, errHostSlow):
		res.Out, res.Host = nil, fmt.Sprintf("the render did not get %s of CPU time within %s", templateCPU, runnerWall)
	default:
		res.Out, res.Err = nil, strings.TrimPrefix(err.Error(), ErrTemplate.Error()+": ")
	}
	return res
}

func overCPU() string { return fmt.Sprintf("took longer than %s of CPU time", templateCPU) }

// watch stops the render (cancel) when it has used templateCPU, or when
// runnerWall passed first; it calls abandon if the render still runs after
// runnerHardCPU. It returns when stop is closed.
func watch(m meter, cancel context.CancelCauseFunc, stop <-chan struct{}, abandon func()) {
	cpu0, t0 := m.CPU(), m.Now()
	tick := time.NewTicker(watchdogTick)
	defer tick.Stop()
	stopped := false
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		used := m.CPU() - cpu0
		switch {
		case used >= runnerHardCPU:
			abandon()
			return
		case stopped:
		case used >= templateCPU:
			cancel(errOverCPU)
			stopped = true
		case m.Now().Sub(t0) >= runnerWall:
			cancel(errHostSlow)
			stopped = true
		}
	}
}
