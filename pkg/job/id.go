package job

import "regexp"

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidID reports whether id can name a job.
func ValidID(id string) bool { return idPattern.MatchString(id) }
