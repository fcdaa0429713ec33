//go:build !linux

package sandbox

import (
	"errors"
	"path/filepath"
)

// ErrUnsupported is returned by Self where commands cannot be confined.
var ErrUnsupported = errors.New("sandbox: commands are confined on Linux only")

// Launcher is not available on this system.
type Launcher struct{}

// Self reports that confinement is not available here.
func Self(bool, ...string) (*Launcher, error) { return nil, ErrUnsupported }

// Confine is never called where Self fails.
func (l *Launcher) Confine(work, home string, argv []string) []string {
	return append([]string{filepath.Clean(argv[0])}, argv[1:]...)
}

// Main does nothing here.
func Main() {}

// Support is what Probe found.
type Support struct {
	LandlockABI int
	Seccomp     bool
	NoExec      bool
	Limits      string
}

// Complete is false: nothing is confined here.
func (Support) Complete() bool { return false }

// Probe reports that nothing is confined here.
func Probe(bool) Support {
	return Support{Limits: "commands are not confined on this system (Linux only): they can write anywhere this process can and reach the network"}
}
