package layout

import "strings"

// IsSafeRelative reports whether p is a non-empty, clean, relative slash path
// that stays inside its root: no leading '/', no '.', '..' or empty segments.
// Storage keys and archive entries are checked with it.
func IsSafeRelative(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.ContainsRune(p, 0) {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}
