package job

import (
	"regexp"
	"slices"
	"strings"
)

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Variables a job may not set: they change which binaries, libraries,
// locales, proxies or certificates the command loads, or reach into the
// platform's credentials and our own configuration. A job's variables are
// for its own program; these are the environment's.
var (
	reservedEnv = []string{
		"PATH", "HOME", "TMPDIR", "IFS", "SHELL", "BASH_ENV", "ENV", "CDPATH", "PS4",
		"GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "RESOLV_HOST_CONF",
		"TZDIR", "GLIBC_TUNABLES", "NODE_OPTIONS", "NODE_PATH", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME",
		"PERL5LIB", "PERL5OPT", "RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
		"SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "FONTCONFIG_FILE", "FONTCONFIG_PATH",
		// Plugin and driver search paths: each names libraries to load.
		"LADSPA_PATH", "FREI0R_PATH", "LV2_PATH", "VDPAU_DRIVER_PATH", "DRI_DRIVER_PATH",
		"OPENSSL_CONF", "OPENSSL_MODULES", "OPENSSL_ENGINES", "GST_PLUGIN_PATH", "GST_PLUGIN_SYSTEM_PATH",
		"GIO_MODULE_DIR", "GTK_PATH", "QT_PLUGIN_PATH", "LUA_PATH", "LUA_CPATH", "PYTHONUSERBASE",
		// ffmpeg's own report file, written wherever it says.
		"FFREPORT",
	}
	reservedEnvPrefixes = []string{"LD_", "DYLD_", "MALLOC_", "AWS_", "HELIOS_", "GOOGLE_", "GCE_", "CLOUDSDK_", "K_", "LAMBDA_", "_LAMBDA",
		"VK_", "LIBVA_", "OCL_", "LIBGL_", "MESA_", "__EGL_", "__GLX_"}
)

func reservedEnvName(k string) bool {
	upper := strings.ToUpper(k)
	if slices.Contains(reservedEnv, upper) || strings.HasSuffix(upper, "_PROXY") {
		return true
	}
	for _, p := range reservedEnvPrefixes {
		if strings.HasPrefix(upper, p) {
			return true
		}
	}
	return false
}

func (v *validator) env(env map[string]string) {
	for _, k := range sortedKeys(env) {
		switch {
		case !envNamePattern.MatchString(k):
			v.addf("env."+k, "is not a valid environment variable name")
		case reservedEnvName(k):
			v.addf("env."+k, "is reserved and may not be set by a job")
		case strings.ContainsRune(env[k], 0):
			v.addf("env."+k, "must not contain a NUL byte")
		}
	}
}
