//go:build linux

package sandbox

// RefuseNetwork lets the tests install the seccomp filter alone, as on a
// kernel without Landlock.
var RefuseNetwork = refuseNetwork
