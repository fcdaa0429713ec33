package job

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/helios-project/infrastructure/pkg/framerate"
)

// Placeholders understood in args and Helios commands. "{{" and "}}" stand for
// literal braces; a brace not followed by a name is left as it is.
var knownPlaceholders = []string{"start", "end", "count", "last", "chunk", "output", "fps", "width", "height", "jobId"}

func knownPlaceholderList() string {
	parts := make([]string, len(knownPlaceholders))
	for i, k := range knownPlaceholders {
		parts[i] = "{" + k + "}"
	}
	return strings.Join(parts, " ")
}

func isKnownPlaceholder(name string) bool { return slices.Contains(knownPlaceholders, name) }

// scanPlaceholders returns the known and unknown placeholder names in s.
func scanPlaceholders(s string) (known, unknown []string) {
	expand(s, func(name string) (string, bool) {
		if isKnownPlaceholder(name) {
			known = append(known, name)
		} else {
			unknown = append(unknown, name)
		}
		return "", true
	})
	return known, unknown
}

// expand replaces each {name} in s by lookup(name); names lookup does not know
// are left as they are.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.ContainsAny(s, "{}") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c == '{' || c == '}') && i+1 < len(s) && s[i+1] == c {
			b.WriteByte(c)
			i++
			continue
		}
		if c == '{' {
			if n := nameLen(s[i+1:]); n > 0 && i+1+n < len(s) && s[i+1+n] == '}' {
				if v, ok := lookup(s[i+1 : i+1+n]); ok {
					b.WriteString(v)
					i += n + 1
					continue
				}
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// nameLen is the length of the name at the start of s: a letter, then
// letters, digits and '_' (so {start_seconds} is an unknown placeholder, not
// text that passes through).
func nameLen(s string) int {
	n := 0
	for n < len(s) && (s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z' || n > 0 && (s[n] >= '0' && s[n] <= '9' || s[n] == '_')) {
		n++
	}
	return n
}

// Vars are the values the placeholders of one chunk take.
type Vars struct {
	JobID  string
	Chunk  Chunk
	Output string
	FPS    float64
	Width  int
	Height int
}

func (v Vars) lookup(name string) (string, bool) {
	switch name {
	case "start":
		return strconv.Itoa(v.Chunk.Start), true
	case "end":
		return strconv.Itoa(v.Chunk.End()), true
	case "count":
		return strconv.Itoa(v.Chunk.Count), true
	case "last":
		return strconv.Itoa(v.Chunk.End() - 1), true
	case "chunk":
		return strconv.Itoa(v.Chunk.Index), true
	case "output":
		return v.Output, true
	case "fps":
		// An NTSC rate is written exactly (30000/1001, not 29.97), so a
		// command renders frames on the ticks the job's timeline uses.
		if r, err := framerate.Of(v.FPS); err == nil {
			return r.String(), true
		}
		return strconv.FormatFloat(v.FPS, 'f', -1, 64), true
	case "width":
		return strconv.Itoa(v.Width), true
	case "height":
		return strconv.Itoa(v.Height), true
	case "jobId":
		return v.JobID, true
	}
	return "", false
}

// Expand fills the placeholders of every argument.
func (v Vars) Expand(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, v.lookup)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// placeholders reports unknown placeholders in one argument and returns the
// names it uses.
func (v *validator) placeholders(path, arg string) []string {
	names, unknown := scanPlaceholders(arg)
	for _, u := range unknown {
		v.addf(path, "unknown placeholder {%s}; known: %s", u, knownPlaceholderList())
	}
	return names
}
