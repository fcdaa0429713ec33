package job

import (
	"path"

	"github.com/helios-project/infrastructure/pkg/layout"
)

// output checks where the spec publishes its video: a key the job may
// write (ValidOutputKey), in the segments' container.
func (v *validator) output(s *Spec) {
	switch o := s.Output; {
	case !layout.IsSafeRelative(o):
		v.addf("output", "must be a relative storage key without '..'; got %q", o)
	case !layout.ValidOutputKey(s.ID, o) && layout.ValidID(s.ID):
		v.addf("output", "must be a file directly in this job's folder %s or a key under %s%s/ (where the stitcher may write); got %q", layout.JobDir(s.ID), layout.OutputsPrefix, s.ID, o)
	case path.Ext(o) != "."+s.SegmentFormat:
		v.addf("output", "must end in .%s, the segments' container (they are joined without re-encoding); got %q", s.SegmentFormat, o)
	}
}
