package execx

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// processAttr puts a command in its own process group and kills it when
// this process dies.
func processAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// ProtectEnviron makes this process non-dumpable, so the commands it starts
// (same user) cannot read /proc/<our pid>/environ or its memory — where
// Lambda puts the function role's credentials. Call it once at start-up of
// any process that runs jobs' commands.
func ProtectEnviron() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
