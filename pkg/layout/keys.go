// Package layout is where a job's objects are in the bucket: the keys of
// specs, status, chunks, leases and outputs, the rule for job ids, and
// which relative paths are safe.
package layout

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Storage layout. The trigger prefix (jobs/) and the write prefix (renders/)
// never overlap, so the orchestrator cannot trigger itself.
const (
	JobsPrefix    = "jobs/"
	RendersPrefix = "renders/"
	AssetsPrefix  = "assets/"
	OutputsPrefix = "outputs/" // where a spec may name its output, besides renders/<id>/
	ActivePrefix  = "active/"  // one object per claimed job that has not ended: what the sweep looks at
)

var assetKeyPattern = regexp.MustCompile(`^assets/[0-9a-f]{64}\.tar\.gz$`)

// AssetDigest returns the sha256 hex named by an asset key.
func AssetDigest(key string) (string, bool) {
	if !assetKeyPattern.MatchString(key) {
		return "", false
	}
	return strings.TrimSuffix(strings.TrimPrefix(key, AssetsPrefix), ".tar.gz"), true
}

// JobKey is where a submitted spec is uploaded; an upload there starts the job.
func JobKey(id string) string { return JobsPrefix + id + ".json" }

// JobIDFromKey returns the id of a jobs/<id>.json key.
func JobIDFromKey(key string) (string, bool) {
	name, ok := strings.CutPrefix(key, JobsPrefix)
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(name, ".json")
	if !ok || !idPattern.MatchString(id) {
		return "", false
	}
	return id, true
}

func renders(id string) string { return RendersPrefix + id + "/" }

// JobDir is the folder of job id's objects, renders/<id>/.
func JobDir(id string) string { return renders(id) }

// ValidAssetKey reports whether key names an asset bundle by its digest.
func ValidAssetKey(key string) bool { return assetKeyPattern.MatchString(key) }

// SpecKey holds the accepted, normalized spec, written once.
func SpecKey(id string) string { return renders(id) + "spec.json" }

// ActiveKey marks a job claimed by an orchestrator and not ended yet, so a
// sweep finds the jobs that may have been stranded without listing them all.
func ActiveKey(id string) string { return ActivePrefix + id }

// StatusKey holds the job's progress; only the orchestrator writes it.
func StatusKey(id string) string { return renders(id) + "status.json" }

// ChunksPrefix is the folder of segments and completion markers.
func ChunksPrefix(id string) string { return renders(id) + "chunks/" }

// SegmentKey is one attempt's segment: chunk index (zero-padded, so lexical
// order is frame order), the run (lease generation) and the attempt, so no
// two invocations ever write the same key, even across a crash.
func SegmentKey(id string, index, run, attempt int, format string) string {
	return fmt.Sprintf("%s%06d.%d-%d.%s", ChunksPrefix(id), index, run, attempt, format)
}

// AudioKeyFor is the key of one attempt's audio, beside its segment
// segmentKey: raw PCM.
func AudioKeyFor(segmentKey string) string {
	return strings.TrimSuffix(segmentKey, path.Ext(segmentKey)) + ".pcm"
}

// MarkerKey is a chunk's completion marker, created if not exists: the first
// attempt to create it wins.
func MarkerKey(id string, index int) string {
	return fmt.Sprintf("%s%06d.json", ChunksPrefix(id), index)
}

// StitchLockKey is created if not exists, so the stitch runs once.
func StitchLockKey(id string) string { return renders(id) + "stitch.lock" }

// CancelKey is the cancellation request.
func CancelKey(id string) string { return renders(id) + "cancel" }

// DefaultOutputKey is the final video unless the spec names another key.
func DefaultOutputKey(id, format string) string { return renders(id) + "output." + format }

// LeasePrefix holds the job's leases, one per run: renders/<id>/lease.<gen>.
// The orchestrator running the job holds the highest generation, so a
// duplicate trigger does not render the job a second time alongside it.
func LeasePrefix(id string) string { return renders(id) + "lease." }

// LeaseKey is the lease of one generation (run) of the job.
func LeaseKey(id string, gen int) string { return fmt.Sprintf("%s%06d", LeasePrefix(id), gen) }

// LeaseGen parses the generation of a lease key.
func LeaseGen(id, key string) (int, bool) {
	rest, ok := strings.CutPrefix(key, LeasePrefix(id))
	if !ok || len(rest) != 6 {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n > 0
}

// isJobObject reports whether key is one of job id's own objects, made by
// the constructors above, or lies in one of its own folders. Only
// DefaultOutputKey is left out: it is the output. A new constructor belongs
// here (TestReservedOutputKeys fails until it is listed) so that no job can
// name it as its output and have the stitcher overwrite it.
func isJobObject(id, key string) bool {
	switch key {
	case JobKey(id), ActiveKey(id), SpecKey(id), StatusKey(id), StitchLockKey(id), CancelKey(id), HistoryKey(id), BudgetKey(id):
		return true
	}
	return strings.HasPrefix(key, ChunksPrefix(id)) || strings.HasPrefix(key, LeasePrefix(id)) || strings.HasPrefix(key, renders(id)+"webhook.")
}

// HistoryKey is where a job's history is kept.
func HistoryKey(id string) string { return renders(id) + "history.json" }

// BudgetKey is a raised budget for job id, written by `helios job budget`:
// it replaces the spec's for the job's next runs (the spec itself is
// immutable once accepted).
func BudgetKey(id string) string { return renders(id) + "budget.json" }

// WebhookKey marks that the webhook of one outcome of a job was sent:
// created before sending, so each outcome is sent at most once.
func WebhookKey(id, state string) string { return renders(id) + "webhook." + state }

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
