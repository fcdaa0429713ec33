package job

import (
	"path"
	"strings"
)

// output checks where the spec publishes its video: a key the job may
// write (ValidOutputKey), in the segments' container.
func (v *validator) output(s *Spec) {
	switch o := s.Output; {
	case !IsSafeRelative(o):
		v.addf("output", "must be a relative storage key without '..'; got %q", o)
	case !ValidOutputKey(s.ID, o) && idPattern.MatchString(s.ID):
		v.addf("output", "must be a file directly in this job's folder %s or a key under %s%s/ (where the stitcher may write); got %q", renders(s.ID), OutputsPrefix, s.ID, o)
	case path.Ext(o) != "."+s.SegmentFormat:
		v.addf("output", "must end in .%s, the segments' container (they are joined without re-encoding); got %q", s.SegmentFormat, o)
	}
}

// ValidOutputKey reports whether a job may publish its video at key: a file
// directly in renders/<id>/, or a key under outputs/<id>/. Nothing else, so
// a job can overwrite neither inputs nor another job's files, and the
// stitcher's write permission stays two prefixes wide.
func ValidOutputKey(id, key string) bool {
	if !IsSafeRelative(key) {
		return false
	}
	if rest, ok := strings.CutPrefix(key, renders(id)); ok {
		// Not a folder, nor one of the job's own objects (keys.go).
		return rest != "" && !strings.Contains(rest, "/") && !isJobObject(id, key)
	}
	return strings.HasPrefix(key, OutputsPrefix+id+"/")
}
