package layout

import "regexp"

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// IDRule says in words what ValidID accepts, for the messages that refuse
// an id: "jobId must be " + IDRule.
const IDRule = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"

// ValidID reports whether id can name a job.
func ValidID(id string) bool { return idPattern.MatchString(id) }
