package hermodtest

import "syscall"

// ChildProcAttr makes a process a test starts die with the test binary,
// even when the binary is killed (a -timeout panic runs no Cleanup).
func ChildProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
