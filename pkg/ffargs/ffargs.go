// Package ffargs checks an ffmpeg command line from a job against
// allowlists, reading it the way ffmpeg does: global, per-input and
// per-output options (with their -opt:stream specifiers and the "no"
// prefix of boolean options), inputs and outputs, and every filtergraph
// (in -vf, -af, -filter_complex and lavfi inputs) with ffmpeg's quoting
// and escaping. An allowed program can still load code: ffmpeg opens
// plugins named in filter options, in filtergraphs read from files, in
// hardware-device options and through loaders that search the job's
// files. So only options, filters, formats and inputs known to load
// nothing are accepted, and everything else is refused, naming the
// argument and the way out. The lists are in this package, one file
// each: options.go, filters.go.
package ffargs

import (
	"fmt"
	"path"
	"strings"
)

// Problem is one argument refused, by its index in the arguments.
type Problem struct {
	Index   int
	Message string
}

// Extra is what a deployment adds to the allowlists
// (HELIOS_FFMPEG_FILTERS, HELIOS_FFMPEG_OPTIONS): filters, and options
// that take a value. What the package refuses outright stays refused.
type Extra struct {
	Filters []string
	Options []string
}

// CheckExtra says why a deployment may not add name to the allowlist of
// filters (filter true) or of options, or nil.
func CheckExtra(filter bool, name string) error {
	if !validName(name) {
		return fmt.Errorf("a %s name (letters, digits, _ and -)", map[bool]string{true: "filter", false: "option"}[filter])
	}
	if filter {
		if why, refused := refusedFilters[strings.ToLower(name)]; refused {
			return fmt.Errorf("a filter that may be added; %s %s", name, why)
		}
		for _, suf := range refusedFilterSuffixes {
			if strings.HasSuffix(strings.ToLower(name), suf) {
				return fmt.Errorf("a filter that may be added; %s runs on a hardware device", name)
			}
		}
		return nil
	}
	if why, refused := refusedOptions[name]; refused {
		return fmt.Errorf("an option that may be added; -%s %s", name, why)
	}
	return nil
}

// Check reads args (ffmpeg's arguments, without the program) and returns
// every argument it refuses.
func Check(args []string, extra Extra) []Problem {
	c := &checker{extra: extra}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			c.output(i, a)
			continue
		}
		name, spec, _ := strings.Cut(a[1:], ":")
		if strings.HasPrefix(a, "-/") {
			c.addf(i, "%s reads its value from a file (-/option); give the value in the arguments", a)
			continue
		}
		if why, refused := refusedOptions[name]; refused {
			c.addf(i, "-%s is not allowed: it %s", name, why)
			if optionTakesValue(name) {
				i++
			}
			continue
		}
		o, ok := c.lookup(name)
		if !ok {
			c.addf(i, "-%s is not an ffmpeg option this deployment allows (HELIOS_FFMPEG_OPTIONS adds one that takes a value)", name)
			continue
		}
		if spec != "" && !streamSpec(spec) {
			c.addf(i, "%s: %q is not a stream specifier", a, spec)
		}
		if !o.arg {
			continue
		}
		if i+1 >= len(args) {
			c.addf(i, "%s needs a value", a)
			continue
		}
		i++
		if o.check != nil {
			o.check(c, i, args[i])
		}
	}
	return c.problems
}

// checker is the state of one command line: what the next input gets.
type checker struct {
	extra    Extra
	problems []Problem
	format   string // -f for the next input or output
}

func (c *checker) addf(i int, format string, a ...any) {
	c.problems = append(c.problems, Problem{Index: i, Message: fmt.Sprintf(format, a...)})
}

func (c *checker) lookup(name string) (option, bool) {
	if o, ok := options[name]; ok {
		return o, true
	}
	// -noautorotate, -nostdin: the negation of a boolean option.
	if base, ok := strings.CutPrefix(name, "no"); ok {
		if o, ok := options[base]; ok && !o.arg {
			return o, true
		}
	}
	for _, e := range c.extra.Options {
		if e == name {
			return option{arg: true}, true
		}
	}
	return option{}, false
}

func optionTakesValue(name string) bool {
	o, ok := options[name]
	return !ok || o.arg // refused options take a value unless known not to
}

// streamSpec is a stream specifier (v, a:0, 0:v:1, p:1, m:key:value, #0x1):
// letters, digits and a few separators, nothing else.
func streamSpec(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(":#_.-+", r)) {
			return false
		}
	}
	return true
}

// input checks an -i: a filtergraph after -f lavfi, the standard input, or
// a file of the work dir.
func (c *checker) input(i int, url string) {
	format := c.format
	c.format = ""
	if format == "lavfi" {
		c.graph(i, url)
		return
	}
	if url == "-" || url == "pipe:" || url == "pipe:0" {
		return
	}
	if why := localPath(url); why != "" {
		c.addf(i, "input %q %s", short(url), why)
	}
}

// output checks an output: a file of the work dir or the standard output.
func (c *checker) output(i int, url string) {
	format := c.format
	c.format = ""
	if format == "lavfi" {
		c.addf(i, "lavfi is an input format, not an output one")
	}
	if url == "-" || url == "pipe:" || url == "pipe:1" {
		return
	}
	if why := localPath(url); why != "" {
		c.addf(i, "output %q %s", short(url), why)
	}
}

// localPath says why a name is not a file of the work dir: an absolute
// path, one that climbs out, or a URL of another protocol (ffmpeg reads
// "proto:…" as a protocol). "file:" names a file explicitly.
func localPath(name string) string {
	p := strings.TrimPrefix(name, "file:")
	switch {
	case p == "":
		return "is empty"
	case strings.HasPrefix(p, "/") || strings.HasPrefix(p, "~"):
		return "must be a file of the work dir (a relative path)"
	case strings.Contains(p, ":"):
		return "names a protocol or device; inputs and outputs are files of the work dir (or - for the standard streams)"
	}
	clean := path.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "climbs out of the work dir"
	}
	return ""
}

// graph checks a filtergraph and each of its filters.
func (c *checker) graph(i int, g string) {
	filters, err := ParseGraph(g)
	if err != nil {
		c.addf(i, "filtergraph %q: %v", short(g), err)
		return
	}
	for _, f := range filters {
		if ok, why := FilterAllowed(f.Name, c.extra.Filters); !ok {
			c.addf(i, "filter %s %s", f.Name, why)
			continue
		}
		c.filterFiles(i, f)
	}
}

// filterFiles checks the options of a filter that name files.
func (c *checker) filterFiles(i int, f Filter) {
	spec, ok := fileOptions[strings.ToLower(f.Name)]
	if !ok {
		return
	}
	for n, o := range ParseOptions(f.Args) {
		key := o.Key
		if key == "" && n < len(spec.positional) {
			key = spec.positional[n]
		}
		for _, named := range spec.named {
			if key == named {
				if why := localPath(o.Value); why != "" {
					c.addf(i, "filter %s: %s=%q %s", f.Name, key, short(o.Value), why)
				}
			}
		}
	}
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
