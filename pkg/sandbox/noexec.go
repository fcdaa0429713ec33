//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// Mapping code from the job's files. Landlock's execute right covers
// execve, not mmap with PROT_EXEC: an allowed program could still dlopen a
// library that the job's asset bundle brought. Where the kernel lets this
// process make a user namespace (Linux allows it unprivileged unless a
// sysctl or a security module says otherwise), the confine stage starts in
// a new user and mount namespace, mapping only this process's own uid and
// gid, and bind-mounts the work dir and the home onto themselves noexec:
// the kernel then refuses to map a file there executable, as it refuses
// to execute one. Elsewhere the command runs without that layer, and
// Probe says so.

// namespaceAttr starts a process in a new user and mount namespace in
// which it is this process's own uid and gid, and dies with its parent.
func namespaceAttr() *syscall.SysProcAttr {
	uid, gid := os.Getuid(), os.Getgid()
	return &syscall.SysProcAttr{
		Pdeathsig:                  syscall.SIGKILL,
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
		GidMappingsEnableSetgroups: false,
	}
}

// noexec makes dirs noexec, nosuid and nodev in this process's mount
// namespace, which must be its own: the mounts are made private first,
// so nothing propagates out.
func noexec(dirs ...string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the mounts private: %w", err)
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if err := unix.Mount(d, d, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", d, err)
		}
		// A remount in a user namespace must keep the flags the mount had
		// (they are locked); it may add noexec, nosuid and nodev.
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err != nil {
			return fmt.Errorf("statfs %s: %w", d, err)
		}
		flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV)
		for bit, ms := range map[int64]uintptr{unix.ST_RDONLY: unix.MS_RDONLY, unix.ST_NOATIME: unix.MS_NOATIME,
			unix.ST_NODIRATIME: unix.MS_NODIRATIME, unix.ST_RELATIME: unix.MS_RELATIME} {
			if int64(st.Flags)&bit != 0 {
				flags |= ms
			}
		}
		if err := unix.Mount("", d, "", flags, ""); err != nil {
			return fmt.Errorf("remount %s noexec: %w", d, err)
		}
	}
	return nil
}

// probeArg, as os.Args[1], makes Main run the probe of noexec: in a new
// user and mount namespace, make a directory noexec.
const probeArg = "__helios_sandbox_probe_noexec__"

// probeNoExec reports whether commands can run with their work dir
// noexec here, and if not, why.
func probeNoExec() (bool, string) {
	exe, err := os.Executable()
	if err != nil {
		return false, err.Error()
	}
	dir, err := os.MkdirTemp("", "helios-probe-")
	if err != nil {
		return false, err.Error()
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(exe, probeArg, dir)
	cmd.SysProcAttr = namespaceAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return false, string(out)
		}
		return false, err.Error() // the namespace itself was refused
	}
	return true, ""
}

func runProbe(dir string) int {
	if err := noexec(dir); err != nil {
		fmt.Fprint(os.Stderr, err)
		return 1
	}
	return 0
}
