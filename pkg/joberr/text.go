package joberr

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// LongWord is the longest run of non-space characters a message keeps
// whole: a data: URI or a base64 blob in an argument can be megabytes,
// and would fill logs and the status.
const LongWord = 200

// Shorten returns s, or, when it is longer than n bytes, its first n bytes
// (whole characters) and its length.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d characters)", s[:cut], utf8.RuneCountInString(s))
}

// ShortenWords shortens each run of non-space characters in s longer than
// LongWord, keeping the rest of the message as it is.
func ShortenWords(s string) string {
	if len(s) <= LongWord {
		return s
	}
	var b strings.Builder
	start := -1
	flush := func(end int) {
		if start >= 0 {
			b.WriteString(Shorten(s[start:end], LongWord/2))
			start = -1
		}
	}
	for i, r := range s {
		if r == ' ' || r == '\n' || r == '\t' || r == '\r' {
			flush(i)
			b.WriteRune(r)
		} else if start < 0 {
			start = i
		}
	}
	flush(len(s))
	return b.String()
}
