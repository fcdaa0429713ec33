//go:build linux

package sandbox

import (
	"fmt"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/sys/unix"
)

// refuseNetwork installs a seccomp filter, inherited by everything the
// command starts, under which socket(2) fails with EPERM for every address
// family but Unix and netlink, and io_uring, which could open sockets past
// the filter, is not available. It backs Landlock's TCP rules up and covers
// what they do not: kernels before Landlock ABI 4, UDP, raw and vsock
// sockets. Unix sockets stay, for programs talking to their own helpers
// (their paths and abstract names are Landlock's to confine).
func refuseNetwork() error {
	filter := seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync,
		Policy: seccomp.Policy{
			DefaultAction: seccomp.ActionAllow,
			Syscalls: []seccomp.SyscallGroup{{
				Action: seccomp.ActionErrno,
				Names:  []string{"io_uring_setup"},
				NamesWithCondtions: []seccomp.NameWithConditions{{
					Name: "socket",
					Conditions: seccomp.ArgumentConditions{
						{Argument: 0, Operation: seccomp.NotEqual, Value: unix.AF_UNIX},
						{Argument: 0, Operation: seccomp.NotEqual, Value: unix.AF_NETLINK},
					},
				}},
			}},
		},
	}
	if err := seccomp.LoadFilter(filter); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}
