package job

import (
	"slices"
	"strings"
)

// Allowlist names the programs a job may run. An entry matches argv[0]
// exactly: "ffmpeg" allows "ffmpeg" (found on PATH) but not "./ffmpeg" or
// "/tmp/ffmpeg".
type Allowlist []string

// ParseAllowlist reads a comma- or space-separated list.
func ParseAllowlist(s string) Allowlist {
	return Allowlist(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }))
}

// Allows reports whether program may run.
func (a Allowlist) Allows(program string) bool { return slices.Contains(a, program) }

func (v *validator) program(path, name string) {
	if !v.allowed.Allows(name) {
		v.addf(path, "program %q is not on the allowlist (HELIOS_ALLOWED_COMMANDS=%s)", name, strings.Join(v.allowed, ","))
	}
}
