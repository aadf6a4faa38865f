package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// proc is one OS process the external benchmark started: a Hermod binary,
// nats-server, the receiver or the publisher. Its output goes to a log
// file; it is stopped when the benchmark ends, also on failure, and dies
// with the benchmark process (Pdeathsig) if that is killed.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	stdout bytes.Buffer // for the publisher's result
	done   chan struct{}
	once   sync.Once
}

// startProc runs path with args and exactly env (plus PATH and HOME).
func startProc(b testing.TB, name, path string, args []string, env map[string]string, logDir string) *proc {
	b.Helper()
	p := &proc{name: name, log: filepath.Join(logDir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, f
	p.cmd.SysProcAttr = hermodtest.ChildProcAttr()
	if err := p.cmd.Start(); err != nil {
		_ = f.Close()
		b.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); _ = f.Close(); close(p.done) }()
	b.Cleanup(func() {
		p.stop(15 * time.Second)
		if b.Failed() {
			b.Logf("--- %s log (%s) ---\n%s", name, p.log, p.tail(3000))
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to timeout, then kills. Idempotent.
func (p *proc) stop(timeout time.Duration) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(timeout):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// wait waits for the process to exit on its own, at most timeout.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		if !p.cmd.ProcessState.Success() {
			return fmt.Errorf("%s: %s\n%s", p.name, p.cmd.ProcessState, p.tail(2000))
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %s", p.name, timeout)
	}
}

// exitedCPU is the CPU time of a process that has exited.
func (p *proc) exitedCPU() time.Duration {
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// clockTick is the unit of /proc/<pid>/stat's times: 1 s / CLK_TCK, asked
// of getconf; 100 Hz, the Linux value, when getconf cannot answer.
var clockTick = sync.OnceValues(func() (time.Duration, string) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if hz, perr := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && perr == nil && hz > 0 {
		return time.Second / time.Duration(hz), "getconf CLK_TCK = " + strconv.Itoa(hz)
	}
	return 10 * time.Millisecond, "CLK_TCK assumed 100 (getconf unavailable)"
})

// processCPU is the user + system CPU time pid has used so far (all its
// threads), from /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing parenthesis, which is field 3.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	tick, _ := clockTick()
	return time.Duration(utime+stime) * tick, nil
}
