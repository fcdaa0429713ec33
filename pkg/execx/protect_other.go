//go:build unix && !linux

package execx

// ProtectEnviron is a no-op where /proc/<pid>/environ does not exist.
func ProtectEnviron() error { return nil }
