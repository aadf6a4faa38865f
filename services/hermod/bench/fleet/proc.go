package fleet

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

// Proc is one OS process a test or benchmark started: a Hermod binary,
// nats-server, the receiver or the publisher. Its output goes to a log
// file (standard output is kept too, for the publisher's result); it is
// stopped when the test ends, also on failure, and dies with the test
// process (Pdeathsig) if that is killed.
type Proc struct {
	Name   string
	Log    string // the file its standard error goes to
	cmd    *exec.Cmd
	stdout bytes.Buffer
	done   chan struct{}
	once   sync.Once
}

// StartProc runs path with args and exactly env (plus PATH and HOME), its
// standard error appended to logDir/name.log.
func StartProc(tb testing.TB, name, path string, args []string, env map[string]string, logDir string) *Proc {
	tb.Helper()
	p := &Proc{Name: name, Log: filepath.Join(logDir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatal(err)
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
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); _ = f.Close(); close(p.done) }()
	tb.Cleanup(func() {
		p.Stop(15 * time.Second)
		if tb.Failed() {
			tb.Logf("--- %s log (%s) ---\n%s", name, p.Log, p.Tail(3000))
		}
	})
	return p
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited says whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to timeout, then kills. Idempotent, and
// a no-op once Kill or Stop has run.
func (p *Proc) Stop(timeout time.Duration) {
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

// Kill sends SIGKILL (kill -9) and waits until the process is gone.
func (p *Proc) Kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
}

// Wait waits for the process to exit on its own, at most timeout, and
// fails unless it exited with status 0.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		if !p.cmd.ProcessState.Success() {
			return fmt.Errorf("%s: %s\n%s", p.Name, p.cmd.ProcessState, p.Tail(2000))
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %s", p.Name, timeout)
	}
}

// Stdout is what the process wrote to its standard output; read it only
// after it exited.
func (p *Proc) Stdout() []byte { return p.stdout.Bytes() }

// ExitedCPU is the CPU time of a process that has exited.
func (p *Proc) ExitedCPU() time.Duration {
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// Tail is the last n bytes of the process's log.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.Log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// ClockTick is the unit of /proc/<pid>/stat's times: 1 s / CLK_TCK, asked
// of getconf; 100 Hz, the Linux value, when getconf cannot answer. The
// string says where it came from.
var ClockTick = sync.OnceValues(func() (time.Duration, string) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if hz, perr := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && perr == nil && hz > 0 {
		return time.Second / time.Duration(hz), "getconf CLK_TCK = " + strconv.Itoa(hz)
	}
	return 10 * time.Millisecond, "CLK_TCK assumed 100 (getconf unavailable)"
})

// ProcessCPU is the user + system CPU time pid has used so far (all its
// threads), from /proc/<pid>/stat.
func ProcessCPU(pid int) (time.Duration, error) {
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
	tick, _ := ClockTick()
	return time.Duration(utime+stime) * tick, nil
}
