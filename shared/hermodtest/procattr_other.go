//go:build !linux

package hermodtest

import "syscall"

// ChildProcAttr is nil where the kernel cannot tie a child's life to its
// parent's: the process is only stopped by the test's Cleanup.
func ChildProcAttr() *syscall.SysProcAttr { return nil }
