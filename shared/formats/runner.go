package formats

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"time"
)

// Templates run in child processes of the same binary, template runners, so
// that no template can take down the process that delivers: a single jq
// builtin can build a value of gigabytes before any budget applies
// ("x" * 1e9). A runner's memory is limited (runnerMemory more than it has
// when it starts); its own watchdog holds each render to templateCPU of CPU
// time (runner_child.go).
//
// Whose failure a render's failure is decides what becomes of the delivery:
//   - the template's (an error, over a budget, a runner killed twice by the
//     same render): ErrTemplate, the delivery is dead;
//   - this host's (a runner that cannot start or does not answer in time, a
//     render that could not get its CPU time before runnerWall passed, a
//     caller that gave up): ErrRunner, the delivery is tried again later.
//
// A process renders through a pool of runners, one render per runner at a
// time, so one slow template does not hold every other template webhook.

// runnerEnv marks a process started as the template runner.
const runnerEnv = "HERMOD_TEMPLATE_RUNNER"

// Limits of the runners. runnerMemory bounds what one template may allocate.
// A runner must say it is ready within runnerStart and answer a render
// within runnerAnswer (its own watchdog answers long before: runnerWall);
// otherwise it is stuck or this host is, and it is replaced.
const (
	runnerMemory = 512 << 20
	runnerStart  = 15 * time.Second
	runnerAnswer = 10 * time.Second
	maxRunners   = 4
)

// ErrRunner is a render the template runner could not carry out for a
// reason that is not the template's: this host's failure (a render that
// fails with it may be tried again).
var ErrRunner = errors.New("template runner unavailable")

// errRunnerDied is a runner that stopped during a render.
var errRunnerDied = errors.New("the template runner stopped")

type runnerRequest struct {
	ID   uint64 `json:"id"`
	Key  string `json:"key"`           // the template's identity (templateKey)
	Src  string `json:"src,omitempty"` // the template, when the runner may not know Key
	Body []byte `json:"body"`
}

type runnerResponse struct {
	ID    uint64 `json:"id"`
	Ready bool   `json:"ready,omitempty"` // the first line a runner writes
	Out   []byte `json:"out,omitempty"`
	Err   string `json:"err,omitempty"`  // the template's failure
	Host  string `json:"host,omitempty"` // this host's failure
	// Unknown: Key is not compiled in this runner and Src was not sent.
	Unknown bool `json:"unknown,omitempty"`
}

// runner is one template runner process, used by one render at a time.
type runner struct {
	kill  func() // ends the process and waits for it; nil: not started
	pid   int
	enc   *json.Encoder
	dec   *json.Decoder
	seq   uint64
	known map[string]bool // templates sent to this process
}

// runnerPool hands out runners; a runner's process starts when first used
// and again after it stopped.
type runnerPool struct {
	idle chan *runner
}

func newRunnerPool(n int) *runnerPool {
	p := &runnerPool{idle: make(chan *runner, n)}
	for range n {
		p.idle <- &runner{}
	}
	return p
}

// runners is this process's pool: one runner per CPU, at most maxRunners.
var runners = sync.OnceValue(func() *runnerPool {
	return newRunnerPool(min(max(runtime.GOMAXPROCS(0), 1), maxRunners))
})

// render renders body through the template src (identified by key). A
// runner that dies during a render is started again and the render tried
// once more, so a runner lost for another reason fails no delivery; a
// template that kills a fresh runner too is the template's fault.
func (p *runnerPool) render(ctx context.Context, key, src string, body []byte) ([]byte, error) {
	var r *runner
	select {
	case r = <-p.idle:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrRunner, ctx.Err())
	}
	req := runnerRequest{Key: key, Src: src, Body: body}
	res, err := p.exchange(ctx, r, req)
	if errors.Is(err, errRunnerDied) {
		res, err = p.exchange(ctx, r, req)
		if errors.Is(err, errRunnerDied) {
			err = fmt.Errorf("%w: the template runner stopped (it ran out of memory: %d MiB)", ErrTemplate, runnerMemory>>20)
		}
	}
	if !errors.Is(err, errGaveUp) {
		p.idle <- r
	}
	switch {
	case err != nil:
		return nil, err
	case res.Host != "":
		return nil, fmt.Errorf("%w: %s", ErrRunner, res.Host)
	case res.Err != "":
		return nil, fmt.Errorf("%w: %s", ErrTemplate, res.Err)
	}
	return res.Out, nil
}

// errGaveUp is a render whose caller gave up: its runner goes back to the
// pool when it answered (exchange).
var errGaveUp = errors.New("gave up")

// exchange sends req to r (starting its process if needed) and waits for
// the answer; a runner that died or did not answer in time is stopped
// (the next exchange starts it again). When ctx ends first, exchange
// returns at once and r goes back to the pool once it answered: a
// cancelled preview never costs a runner.
func (p *runnerPool) exchange(ctx context.Context, r *runner, req runnerRequest) (runnerResponse, error) {
	if r.kill == nil {
		if err := r.start(); err != nil {
			return runnerResponse{}, err
		}
	}
	if !r.known[req.Key] {
		r.known[req.Key] = true
	} else {
		req.Src = ""
	}
	r.seq++
	req.ID = r.seq
	if err := r.enc.Encode(req); err != nil {
		r.stop()
		return runnerResponse{}, errRunnerDied
	}
	type answer struct {
		res runnerResponse
		err error
	}
	got := make(chan answer, 1)
	go func() {
		res, err := r.read(req)
		got <- answer{res, err}
	}()
	timer := time.NewTimer(runnerAnswer)
	// finish ends the exchange with a: a runner that died, or did not
	// answer in time, is stopped.
	finish := func(a answer, answered bool) answer {
		timer.Stop()
		if !answered {
			r.stop() // ends the read
			<-got
			return answer{err: fmt.Errorf("%w: no answer within %s", ErrRunner, runnerAnswer)}
		}
		if a.err != nil {
			r.stop()
		}
		return a
	}
	select {
	case a := <-got:
		a = finish(a, true)
		return a.res, a.err
	case <-timer.C:
		a := finish(answer{}, false)
		return a.res, a.err
	case <-ctx.Done():
	}
	go func() {
		select {
		case a := <-got:
			finish(a, true)
		case <-timer.C:
			finish(answer{}, false)
		}
		p.idle <- r
	}()
	return runnerResponse{}, fmt.Errorf("%w: %w: %w", ErrRunner, errGaveUp, ctx.Err())
}

// read reads r's answer to req, sending the template again if r no longer
// knows it (a runner keeps a bounded number compiled).
func (r *runner) read(req runnerRequest) (runnerResponse, error) {
	for {
		var res runnerResponse
		if err := r.dec.Decode(&res); err != nil {
			return res, errRunnerDied
		}
		switch {
		case res.ID != req.ID:
			continue // an answer to an earlier request: never expected, never used
		case res.Unknown && req.Src == "":
			return res, errRunnerDied // the process is not the one that was sent the template
		case res.Unknown:
			r.seq++
			req.ID = r.seq
			if err := r.enc.Encode(req); err != nil {
				return res, errRunnerDied
			}
			continue
		}
		return res, nil
	}
}

// start starts r's process and waits until it says it is ready: its start
// is never counted against a render.
func (r *runner) start() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRunner, err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), runnerEnv+"=1")
	cmd.SysProcAttr = runnerProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRunner, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRunner, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: %w", ErrRunner, err)
	}
	r.attach(stdin, stdout, cmd.Process.Pid, func() {
		_ = cmd.Process.Kill()
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		var res runnerResponse
		err := r.dec.Decode(&res)
		if err == nil && !res.Ready {
			err = errors.New("it did not say it was ready")
		}
		ready <- err
	}()
	timer := time.NewTimer(runnerStart)
	defer timer.Stop()
	select {
	case err = <-ready:
	case <-timer.C:
		r.stop()
		<-ready
		return fmt.Errorf("%w: not ready within %s", ErrRunner, runnerStart)
	}
	if err != nil {
		r.stop()
		return fmt.Errorf("%w: %w", ErrRunner, err)
	}
	return nil
}

// attach connects r to a runner that reads requests from w and writes
// answers to rd; kill ends it.
func (r *runner) attach(w io.Writer, rd io.Reader, pid int, kill func()) {
	r.kill, r.pid, r.known = kill, pid, map[string]bool{}
	r.enc, r.dec = json.NewEncoder(w), json.NewDecoder(bufio.NewReader(rd))
}

// stop kills r's process; the next render through r starts another.
func (r *runner) stop() {
	if r.kill == nil {
		return
	}
	r.kill()
	r.kill = nil
}
