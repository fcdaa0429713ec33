package job

import (
	"fmt"
	"slices"
	"strings"
)

// Arguments that make ffmpeg load and run native code or read its
// arguments from a file the job controls. The sandbox keeps a command from
// writing outside its work dir and from executing what it wrote, but a
// shared library loaded with dlopen is not an exec: these are refused.
var (
	// Filters that dlopen a plugin named by their options.
	codeLoadingFilters = []string{"ladspa", "lv2", "frei0r", "frei0r_src"}
	// Options that read a filtergraph (which could name those filters)
	// from a file, out of the validator's sight.
	fileGraphOptions = []string{"-filter_script", "-filter_complex_script"}
)

// codeLoading reports why an argument is refused, or "".
func codeLoading(arg string) string {
	opt, _, _ := strings.Cut(arg, ":") // -filter_script:v
	switch {
	case slices.Contains(fileGraphOptions, opt):
		return fmt.Sprintf("%s reads a filtergraph from a file; give the filtergraph in the arguments", opt)
	case strings.HasPrefix(arg, "-/"):
		return "options read from a file (-/option) are not allowed; give the value in the arguments"
	}
	// Filtergraph syntax lets a name be quoted or escaped ('lad''spa',
	// l\adspa): look at the words with both removed.
	plain := strings.NewReplacer(`\`, "", `'`, "", `"`, "").Replace(strings.ToLower(arg))
	for _, word := range strings.FieldsFunc(plain, func(r rune) bool { return strings.ContainsRune("=,;[]@: \t\r\n", r) }) {
		if slices.Contains(codeLoadingFilters, word) {
			return fmt.Sprintf("the %s filter loads native code (a plugin library) and is not allowed", word)
		}
	}
	return ""
}
