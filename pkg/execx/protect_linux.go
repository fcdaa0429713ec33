package execx

import "golang.org/x/sys/unix"

// ProtectEnviron makes this process non-dumpable, so the commands it starts
// (same user) cannot read /proc/<our pid>/environ or its memory — where
// Lambda puts the function role's credentials. Call it once at start-up of
// any process that runs jobs' commands.
func ProtectEnviron() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
