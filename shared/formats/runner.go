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
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Templates run in a child process of the same binary, the template
// runner, so that no template can take down the process that delivers: a
// single jq builtin can build a value of gigabytes before the time and
// output budgets apply ("x" * 1e9). The runner's memory is limited
// (runnerMemory more than it has when it starts, as an address-space limit,
// and as the Go runtime's soft limit); a runner that dies, or overruns the
// time budget, is killed and started again, and that render fails with
// ErrTemplate. Renders go through one runner per process, one at a time.

// runnerEnv marks a process started as the template runner.
const runnerEnv = "HERMOD_TEMPLATE_RUNNER"

// runnerMemory bounds what one template may allocate.
const runnerMemory = 512 << 20

// RunnerMain makes this process the template runner when it was started as
// one, and then exits; otherwise it returns at once. Every binary that
// renders templates (and every test binary that does) calls it first.
func RunnerMain() {
	if os.Getenv(runnerEnv) != "1" {
		return
	}
	limitMemory(runnerMemory)
	os.Exit(serveRunner(os.Stdin, os.Stdout))
}

// limitMemory caps the process's address space at its current size plus
// extra, and the Go runtime's soft memory limit at extra.
func limitMemory(extra uint64) {
	debug.SetMemoryLimit(int64(extra))
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmSize:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return
			}
			lim := kb*1024 + extra
			_ = syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: lim, Max: lim})
			return
		}
	}
}

type runnerRequest struct {
	Src  string `json:"src"`
	Body []byte `json:"body"`
}

type runnerResponse struct {
	Out []byte `json:"out,omitempty"`
	Err string `json:"err,omitempty"`
}

// serveRunner answers render requests until its input ends.
func serveRunner(in io.Reader, out io.Writer) int {
	dec := json.NewDecoder(bufio.NewReader(in))
	enc := json.NewEncoder(out)
	compiled := map[string]*program{}
	for {
		var req runnerRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return 0
			}
			return 2
		}
		p, ok := compiled[req.Src]
		if !ok {
			var err error
			if p, err = compileTemplate(req.Src); err != nil {
				_ = enc.Encode(runnerResponse{Err: err.Error()})
				continue
			}
			if len(compiled) >= 256 {
				clear(compiled)
			}
			compiled[req.Src] = p
		}
		body, err := p.run(context.Background(), req.Body)
		res := runnerResponse{Out: body}
		if err != nil {
			res.Err = strings.TrimPrefix(err.Error(), ErrTemplate.Error()+": ")
		}
		if err := enc.Encode(res); err != nil {
			return 2
		}
	}
}

// templateRunner is this process's connection to its runner.
type templateRunner struct {
	mu    sync.Mutex
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *json.Encoder
	dec   *json.Decoder
}

var runnerProcess templateRunner

// start starts the runner (mu held).
func (r *templateRunner) start() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRunner, err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), runnerEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
	r.cmd, r.stdin, r.enc, r.dec = cmd, stdin, json.NewEncoder(stdin), json.NewDecoder(bufio.NewReader(stdout))
	return nil
}

// stop kills the runner (mu held); the next render starts another.
func (r *templateRunner) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.stdin.Close()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// ErrRunner is a template runner that could not be started: the host's
// failure, not the template's (a render that fails with it may be tried
// again).
var ErrRunner = errors.New("template runner could not start")

// errRunnerDied is a runner that stopped during a render.
var errRunnerDied = errors.New("the template runner stopped")

// render runs src over body in the runner, within the time budget. A
// runner that dies is tried once more in a new one, so a runner lost for
// another reason never fails a delivery; a template that kills two runners
// is the template's fault.
func (r *templateRunner) render(ctx context.Context, src string, body []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.renderOnce(ctx, src, body)
	if errors.Is(err, errRunnerDied) {
		out, err = r.renderOnce(ctx, src, body)
	}
	if errors.Is(err, errRunnerDied) {
		return nil, fmt.Errorf("%w: the template runner stopped (it ran out of memory: %d MiB)", ErrTemplate, runnerMemory>>20)
	}
	return out, err
}

// renderOnce is one try of render (mu held).
func (r *templateRunner) renderOnce(ctx context.Context, src string, body []byte) ([]byte, error) {
	if r.cmd == nil {
		if err := r.start(); err != nil {
			return nil, err
		}
	}
	if err := r.enc.Encode(runnerRequest{Src: src, Body: body}); err != nil {
		r.stop()
		return nil, errRunnerDied
	}
	got := make(chan error, 1)
	var res runnerResponse
	go func() { got <- r.dec.Decode(&res) }()
	timer := time.NewTimer(templateTime + time.Second) // the runner's own budget, plus its start
	defer timer.Stop()
	select {
	case err := <-got:
		if err != nil {
			r.stop()
			return nil, errRunnerDied
		}
	case <-timer.C:
		r.stop()
		<-got
		return nil, fmt.Errorf("%w: took longer than %s", ErrTemplate, templateTime)
	case <-ctx.Done():
		r.stop()
		<-got
		return nil, fmt.Errorf("%w: %v", ErrTemplate, ctx.Err())
	}
	if res.Err != "" {
		return nil, fmt.Errorf("%w: %s", ErrTemplate, res.Err)
	}
	return res.Out, nil
}
