//go:build unix && !linux

package execx

import "syscall"

// processAttr puts a command in its own process group (no parent-death
// signal here).
func processAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// ProtectEnviron is a no-op where /proc/<pid>/environ does not exist.
func ProtectEnviron() error { return nil }
