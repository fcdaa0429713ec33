package job

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/helios-project/infrastructure/pkg/joberr"
)

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// AllowedEnv are the variables a job may set: the time zone and locale its
// program formats dates and text with, a fixed build time, and ffmpeg's
// log colours. Nothing that chooses what a program loads (libraries,
// plugins, drivers, configuration) or where from: so many loaders read so
// many variables (Vulkan, OpenCL, VA-API, GL, fontconfig, glibc, OpenSSL,
// …) that only an allowlist keeps up.
var AllowedEnv = []string{
	"TZ", "LANG", "LANGUAGE", "LC_ALL", "LC_ADDRESS", "LC_COLLATE", "LC_CTYPE", "LC_IDENTIFICATION", "LC_MEASUREMENT",
	"LC_MESSAGES", "LC_MONETARY", "LC_NAME", "LC_NUMERIC", "LC_PAPER", "LC_TELEPHONE", "LC_TIME",
	"SOURCE_DATE_EPOCH", "AV_LOG_FORCE_NOCOLOR", "AV_LOG_FORCE_COLOR",
}

// localeValue is a locale name (en_US.UTF-8, de_DE@euro, C): never a
// path, which glibc would read locale data from.
var localeValue = regexp.MustCompile(`^[A-Za-z0-9_.@+=,:-]*$`)

func (v *validator) env(env map[string]string) {
	for _, k := range sortedKeys(env) {
		val := env[k]
		switch {
		case !envNamePattern.MatchString(k):
			v.addf("env."+k, "is not a valid environment variable name")
		case !slices.Contains(AllowedEnv, k):
			v.addf("env."+k, "may not be set by a job (a job may set TZ, LANG, LANGUAGE, LC_*, SOURCE_DATE_EPOCH, AV_LOG_FORCE_NOCOLOR, AV_LOG_FORCE_COLOR)")
		case strings.ContainsRune(val, 0):
			v.addf("env."+k, "must not contain a NUL byte")
		case (k == "LANG" || k == "LANGUAGE" || strings.HasPrefix(k, "LC_")) && !localeValue.MatchString(val):
			v.addf("env."+k, "%s: expected a locale name such as en_US.UTF-8 (not a path)", fmt.Sprintf("%q", joberr.Shorten(val, 60)))
		}
	}
}
