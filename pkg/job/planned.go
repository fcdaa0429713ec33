package job

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/helios-project/infrastructure/pkg/layout"
)

// The worker and the stitcher may be invoked directly, not only by the
// orchestrator: before acting, each checks that the accepted spec of the
// job (renders/<id>/spec.json, written once) planned what it is asked to do.
// A marker is likewise trusted only if it describes a planned chunk.

// CheckWorkerJob returns an error unless w is a chunk this spec plans, with
// the command, arguments, environment, output file and assets it plans.
func (s *Spec) CheckWorkerJob(w WorkerJob) error {
	plan := s.Plan()
	if w.JobID != s.ID {
		return fmt.Errorf("job %q is not the accepted job %q", w.JobID, s.ID)
	}
	if w.Chunk.Index < 0 || w.Chunk.Index >= len(plan) {
		return fmt.Errorf("chunk %d is not planned: the job has %d chunks", w.Chunk.Index, len(plan))
	}
	want := s.WorkerJob(plan[w.Chunk.Index], w.Run, w.Attempt)
	switch {
	case w.Chunk != want.Chunk:
		return fmt.Errorf("chunk %d covers frames [%d, %d), not the planned [%d, %d)", w.Chunk.Index, w.Chunk.Start, w.Chunk.End(), want.Chunk.Start, want.Chunk.End())
	case w.Command != want.Command || !slices.Equal(w.Args, want.Args):
		return fmt.Errorf("chunk %d: the command is not the one the spec plans", w.Chunk.Index)
	case !maps.Equal(w.Env, want.Env) && (len(w.Env) > 0 || len(want.Env) > 0):
		return fmt.Errorf("chunk %d: the environment is not the spec's", w.Chunk.Index)
	case w.OutputFile != want.OutputFile || w.Assets != want.Assets || w.KeepSegment != want.KeepSegment:
		return fmt.Errorf("chunk %d: output file, assets or keepChunks differ from the spec's", w.Chunk.Index)
	case !sameTimeline(w.Timeline, want.Timeline):
		return fmt.Errorf("chunk %d: the timeline (fps, audio) is not the spec's", w.Chunk.Index)
	}
	return nil
}

// CheckStitchRequest returns an error unless r joins, in plan order, one
// segment of every planned chunk into the spec's output.
func (s *Spec) CheckStitchRequest(r StitchRequest) error {
	plan := s.Plan()
	switch {
	case r.JobID != s.ID:
		return fmt.Errorf("job %q is not the accepted job %q", r.JobID, s.ID)
	case r.OutputKey != s.Output:
		return fmt.Errorf("output %q is not the spec's output %q", r.OutputKey, s.Output)
	case len(r.Segments) != len(plan):
		return fmt.Errorf("%d segments for %d planned chunks", len(r.Segments), len(plan))
	}
	if r.Faststart != s.Faststart || !sameTimeline(r.Timeline, s.timeline()) {
		return fmt.Errorf("the timeline (fps, audio) or faststart is not the spec's")
	}
	for i, seg := range r.Segments {
		if idx, ok := SegmentIndex(s.ID, seg.Key); !ok || idx != i || seg.Frames != plan[i].Count {
			return fmt.Errorf("segment %d (%s, %d frames) is not chunk %d of the plan (%d frames)", i, seg.Key, seg.Frames, i, plan[i].Count)
		}
	}
	return nil
}

// CheckMarker returns an error unless r, read from the marker of chunk
// index, describes that planned chunk and a segment of it.
func (s *Spec) CheckMarker(index int, r WorkerResult) error {
	plan := s.Plan()
	switch {
	case index < 0 || index >= len(plan):
		return fmt.Errorf("chunk %d is not planned: the job has %d chunks", index, len(plan))
	case r.JobID != s.ID || r.Chunk != plan[index]:
		return fmt.Errorf("describes job %q chunk %+v, not planned chunk %+v", r.JobID, r.Chunk, plan[index])
	case r.Frames != plan[index].Count:
		return fmt.Errorf("promises %d frames; chunk %d has %d", r.Frames, index, plan[index].Count)
	}
	if idx, ok := SegmentIndex(s.ID, r.SegmentKey); !ok || idx != index {
		return fmt.Errorf("names segment %q, not one of chunk %d", r.SegmentKey, index)
	}
	if r.Audio != nil && r.Audio.Key != layout.AudioKeyFor(r.SegmentKey) {
		return fmt.Errorf("names audio %q, not its segment's", r.Audio.Key)
	}
	return nil
}

// SegmentIndex returns the chunk index of a segment key of job id.
func SegmentIndex(id, key string) (int, bool) {
	if !IsSegmentKey(id, key) {
		return 0, false
	}
	name := strings.TrimPrefix(key, layout.ChunksPrefix(id))
	digits, _, _ := strings.Cut(name, ".")
	n, err := strconv.Atoi(digits)
	return n, err == nil
}

// MarkerIndex returns the chunk index of a marker key of job id.
func MarkerIndex(id, key string) (int, bool) {
	name, ok := strings.CutPrefix(key, layout.ChunksPrefix(id))
	digits, ext, found := strings.Cut(name, ".")
	if !ok || !found || ext != "json" || len(digits) < 6 {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil && n >= 0 && layout.MarkerKey(id, n) == key
}
