// Package jobstore is the stored state of jobs in one bucket, and the only
// code that knows its layout (pkg/job names the keys): uploaded and
// accepted specs, status, cancel requests, leases, completion markers and
// segments, the history, the output, the stitch lock, and the marks of
// active jobs the sweep reads. The CLI, the triggers, the orchestrator, the
// worker and the stitcher all go through a Store; internal/archtest fails
// if another package builds the keys of markers, segments, the history or
// the output.
//
// Every write that a duplicate would hurt is create-if-not-exists: the
// accepted spec, each lease generation, completion markers, the stitch lock,
// the cancel request, the output.
package jobstore

import (
	"errors"
	"log/slog"
	"sync/atomic"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/pkg/ffargs"
	"github.com/helios-project/infrastructure/pkg/job"
)

// Store is the jobs of one bucket.
type Store struct {
	bucket *blob.Bucket
	rules  job.Rules
	log    *slog.Logger

	statusBytes atomic.Int64 // written to status.json through this store
}

// New returns the store of jobs in b. Specs are validated against allowed
// (ffmpeg if empty); log (nil: slog.Default) hears about objects the store
// ignores or fails to clean up.
func New(b *blob.Bucket, allowed job.Allowlist, log *slog.Logger) *Store {
	if len(allowed) == 0 {
		allowed = job.Allowlist{"ffmpeg"}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Store{bucket: b, rules: job.Rules{Programs: allowed}, log: log}
}

// WithFFmpeg returns a store that also lets specs use what extra adds to
// the ffmpeg allowlists (HELIOS_FFMPEG_FILTERS, HELIOS_FFMPEG_OPTIONS).
func (s *Store) WithFFmpeg(extra ffargs.Extra) *Store {
	c := &Store{bucket: s.bucket, rules: s.rules, log: s.log}
	c.rules.FFmpeg = extra
	return c
}

// Bucket is the bucket the store keeps its jobs in.
func (s *Store) Bucket() *blob.Bucket { return s.bucket }

// Errors of the store, matched with errors.Is.
var (
	// ErrNotFound means no job has the id.
	ErrNotFound = errors.New("job not found")
	// ErrConflict means a job id is taken by a different spec.
	ErrConflict = errors.New("job id already used by a different spec")
	// ErrNotAccepted means no orchestrator has accepted a job with the id.
	ErrNotAccepted = errors.New("job not accepted")
	// ErrEnded means a job has already ended (done, failed or cancelled):
	// there is nothing to cancel.
	ErrEnded = errors.New("job already ended")
	// ErrAlreadyRunning means another orchestrator holds the job's lease: a
	// duplicate trigger, or a second `helios job run` of the same job.
	ErrAlreadyRunning = errors.New("job is already being run by another orchestrator")
	// ErrLeaseLost means another orchestrator took the job over (a newer
	// lease generation exists); the job, and its status, are the other's.
	ErrLeaseLost = errors.New("lease lost to another orchestrator")
	// ErrLeaseNotRenewed means a lease went unrenewed for half its life:
	// another orchestrator may take over at any moment, so its holder stops
	// writing. Unlike ErrLeaseLost the job may have no holder now: it must
	// be resumed.
	ErrLeaseNotRenewed = errors.New("lease could not be renewed in time")
)
