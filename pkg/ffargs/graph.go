package ffargs

import (
	"fmt"
	"strings"
)

// Filter is one filter of a filtergraph, as ffmpeg reads it.
type Filter struct {
	Name string // the filter's name, quotes and escapes removed
	Args string // its arguments, as ffmpeg passes them to the filter
}

// token reads one token of s as ffmpeg's av_get_token does: leading
// whitespace skipped; a backslash makes the next character literal; text
// between single quotes is literal; it ends at the first of term outside
// quotes and escapes; trailing whitespace (not escaped or quoted) is
// dropped. It returns the token and the rest of s, starting at the
// terminator.
func token(s, term string) (string, string) {
	i := 0
	for i < len(s) && strings.IndexByte(" \n\t\r", s[i]) >= 0 {
		i++
	}
	var b strings.Builder
	end := 0 // length of b up to its last character that is not trailing whitespace
	for i < len(s) && strings.IndexByte(term, s[i]) < 0 {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			b.WriteByte(s[i+1])
			end = b.Len()
			i += 2
		case c == '\\':
			i++ // a trailing backslash is dropped, as ffmpeg does
		case c == '\'':
			i++
			for i < len(s) && s[i] != '\'' {
				b.WriteByte(s[i])
				i++
			}
			end = b.Len()
			if i < len(s) {
				i++ // the closing quote
			}
		default:
			b.WriteByte(c)
			if strings.IndexByte(" \n\t\r", c) < 0 {
				end = b.Len()
			}
			i++
		}
	}
	return b.String()[:end], s[i:]
}

// skipSpace drops leading whitespace.
func skipSpace(s string) string { return strings.TrimLeft(s, " \n\t\r") }

// labels skips link labels ([in], [0:v]) before or after a filter.
func labels(s string) (string, error) {
	for s = skipSpace(s); strings.HasPrefix(s, "["); s = skipSpace(s) {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return s, fmt.Errorf("unterminated label %q", trim(s))
		}
		s = s[end+1:]
	}
	return s, nil
}

// ParseGraph reads a filtergraph (-vf, -af, -filter_complex, a lavfi input)
// the way libavfilter does (avfilter_graph_parse2): chains separated by ';',
// filters separated by ',', each a name (with an optional @instance), its
// arguments after '=', and link labels around it; names and arguments are
// tokens with ffmpeg's quoting and escaping. A leading "sws_flags=…;" sets
// the scaler's flags.
func ParseGraph(graph string) ([]Filter, error) {
	s := skipSpace(graph)
	if rest, ok := strings.CutPrefix(s, "sws_flags="); ok {
		_, s = token(rest, ";")
		if !strings.HasPrefix(s, ";") {
			return nil, fmt.Errorf("sws_flags must end with ';'")
		}
		s = s[1:]
	}
	var filters []Filter
	for {
		var err error
		if s, err = labels(s); err != nil {
			return nil, err
		}
		var name, args string
		name, s = token(s, "=,;[")
		if name == "" {
			return nil, fmt.Errorf("a filter has no name at %q", trim(s))
		}
		if strings.HasPrefix(s, "=") {
			args, s = token(s[1:], "[],;")
		}
		name, _, _ = strings.Cut(name, "@") // scale@first: the instance's name
		if name == "" {
			return nil, fmt.Errorf("a filter has no name before '@'")
		}
		filters = append(filters, Filter{Name: name, Args: args})
		if s, err = labels(s); err != nil {
			return nil, err
		}
		if s == "" {
			return filters, nil
		}
		switch sep := s[0]; sep {
		case ',', ';':
			s = s[1:]
			if skipSpace(s) == "" {
				return nil, fmt.Errorf("the graph ends with %q", string(sep))
			}
		default:
			return nil, fmt.Errorf("unexpected %q after filter %s", trim(s), name)
		}
	}
}

// Option is one option of a filter's arguments.
type Option struct {
	Key   string // "" for a value given by position
	Value string
}

// ParseOptions splits a filter's arguments into its options, as
// av_opt_set_from_string reads them: key=value or value, separated by
// ':', each a token with ffmpeg's quoting and escaping.
func ParseOptions(args string) []Option {
	var opts []Option
	s := args
	for s != "" {
		var part string
		part, s = token(s, ":")
		raw := part
		if k, v, ok := strings.Cut(part, "="); ok && isKey(k) {
			opts = append(opts, Option{Key: k, Value: v})
		} else {
			opts = append(opts, Option{Value: raw})
		}
		if strings.HasPrefix(s, ":") {
			s = s[1:]
		}
	}
	return opts
}

// isKey reports whether k can be an option's name.
func isKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func trim(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
