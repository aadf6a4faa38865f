//go:build !linux

package formats

import (
	"runtime/debug"
	"syscall"
	"time"
)

// Off Linux a runner does not die with its parent by a signal (it ends
// when its input closes, which the parent's exit does), its address space
// is not capped (only the Go runtime's soft limit applies), and a render's
// budget is wall-clock time: there is no portable per-process CPU clock.

func runnerProcAttr() *syscall.SysProcAttr { return nil }

func limitMemory(extra uint64) { debug.SetMemoryLimit(int64(extra)) }

var processStart = time.Now()

func processCPU() time.Duration { return time.Since(processStart) }
