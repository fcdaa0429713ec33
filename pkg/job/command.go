package job

import (
	"fmt"
	"strings"

	"github.com/google/shlex"
)

// SplitCommand splits a Helios command string into argv with shell-word rules
// (quotes and backslashes honoured). Nothing is expanded and no shell runs it.
func SplitCommand(command string) ([]string, error) {
	argv, err := shlex.Split(command)
	if err != nil {
		return nil, fmt.Errorf("cannot split into words: %w", err)
	}
	return argv, nil
}

// commandSize checks one command's arguments for NUL bytes and code
// loading (codeload.go), and the total size against MaxCommandBytes.
func (v *validator) commandSize(path string, args []string, env map[string]string) {
	n := 0
	for i, a := range args {
		n += len(a) + 1
		if strings.ContainsRune(a, 0) {
			v.addf(fmt.Sprintf("%s[%d]", path, i), "must not contain a NUL byte")
		}
		if why := codeLoading(a); why != "" {
			v.addf(fmt.Sprintf("%s[%d]", path, i), "%s", why)
		}
	}
	for k, val := range env {
		n += len(k) + len(val) + 2
	}
	if n > MaxCommandBytes {
		v.addf(path, "and env together are %d bytes; at most %d are allowed", n, MaxCommandBytes)
	}
}
