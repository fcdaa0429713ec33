//go:build linux

package sandbox

// RefuseNetwork lets the tests install the seccomp filter alone, as on a
// kernel without Landlock.
var RefuseNetwork = refuseNetwork

// WithoutLandlock is l leaving Landlock out, as on a kernel without it.
func WithoutLandlock(l *Launcher) *Launcher {
	c := *l
	c.skipLandlock = true
	return &c
}
