// Package orchestrator runs a job's life: claim the spec, plan the chunks,
// dispatch them to workers with bounded concurrency, retries and a per-chunk
// timeout, watch for cancellation, keep status.json current, stitch exactly
// once, and record the final status.
//
// Every step is safe to repeat. Completion markers, the spec claim and the
// stitch lock are created if not exists, so a duplicate trigger, a retry or a
// second orchestrator finds the work done and does not redo it; a crashed run
// resumes by re-rendering only the chunks without a marker.
package orchestrator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// WorkerAdapter executes one chunk wherever workers run (the seed's interface).
type WorkerAdapter interface {
	Execute(ctx context.Context, w job.WorkerJob) (job.WorkerResult, error)
}

// StitchInvoker runs the stitcher function.
type StitchInvoker interface {
	Stitch(ctx context.Context, r job.StitchRequest) (job.StitchResult, error)
}

// Config tunes an Orchestrator. Zero values take the defaults.
type Config struct {
	// Allowed is the allowlist specs are validated against.
	Allowed job.Allowlist
	// Concurrency is how many chunks are in flight at once (default: CPUs).
	Concurrency int
	// StatusInterval is the least time between two status.json writes while
	// chunks complete (default 1s); state changes are written at once.
	StatusInterval time.Duration
	// CancelPollInterval is how often the cancel object is looked for
	// (default 2s).
	CancelPollInterval time.Duration
	// ChunkGrace is added to a spec's chunkTimeout for the whole invocation
	// (fetching assets, uploading) before the orchestrator gives up on it
	// (default 2m).
	ChunkGrace time.Duration
	// StitchTimeout bounds one stitch attempt. A run that finds the stitch
	// lock of an interrupted run waits for that stitch's output until the
	// lock is this old, then stitches itself (default 15m).
	StitchTimeout time.Duration
	// CostPerWorkerSecond prices the status's cost estimate (default 0).
	CostPerWorkerSecond float64
	// LeaseTTL is how long a job's lease lasts without renewal; a crashed
	// orchestrator's job can be resumed after it (default 30s, shorter than
	// the minute Lambda waits before retrying an event).
	LeaseTTL time.Duration
	// ThrottleBudget is how long a chunk keeps retrying while the platform
	// throttles its invocations before the job fails (default 30m).
	ThrottleBudget time.Duration
}

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = runtime.NumCPU()
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = time.Second
	}
	if c.CancelPollInterval <= 0 {
		c.CancelPollInterval = 2 * time.Second
	}
	if c.ChunkGrace <= 0 {
		c.ChunkGrace = 2 * time.Minute
	}
	if c.StitchTimeout <= 0 {
		c.StitchTimeout = 15 * time.Minute
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.ThrottleBudget <= 0 {
		c.ThrottleBudget = 30 * time.Minute
	}
	if len(c.Allowed) == 0 {
		c.Allowed = job.Allowlist{"ffmpeg"}
	}
	return c
}

// Orchestrator runs jobs against one bucket.
type Orchestrator struct {
	bucket   *blob.Bucket
	workers  WorkerAdapter
	stitcher StitchInvoker
	cfg      Config
	log      *slog.Logger
}

// New makes an Orchestrator.
func New(bucket *blob.Bucket, workers WorkerAdapter, stitcher StitchInvoker, cfg Config, log *slog.Logger) *Orchestrator {
	if log == nil {
		log = slog.Default()
	}
	return &Orchestrator{bucket: bucket, workers: workers, stitcher: stitcher, cfg: cfg.withDefaults(), log: log}
}

// ErrConflict means a job id is taken by a different spec.
var ErrConflict = errors.New("job id already used by a different spec")

// ErrNotFound means no job has the id.
var ErrNotFound = errors.New("job not found")

// Prepare decodes, normalizes and validates a spec. id, if not empty, is the
// id the job must have (from its key or file name); a spec that names a
// different one is refused. Nothing is written.
func (o *Orchestrator) Prepare(r io.Reader, id string) (*job.Spec, error) {
	spec, err := job.Decode(r)
	if err != nil {
		return nil, err
	}
	if id != "" {
		if spec.ID != "" && spec.ID != id {
			return nil, &job.ValidationError{Problems: []job.Problem{{Path: "id",
				Message: fmt.Sprintf("is %q but the job is submitted as %q; remove id or make them match", spec.ID, id)}}}
		}
		spec.ID = id
	}
	spec.Normalize()
	if err := spec.Validate(o.cfg.Allowed); err != nil {
		return nil, err
	}
	return spec, nil
}

// Submit validates a spec and uploads it to jobs/<id>.json, where the upload
// itself starts the render (S3 or GCS trigger). An existing upload with the
// same bytes is accepted again; a different one is ErrConflict.
func (o *Orchestrator) Submit(ctx context.Context, spec *job.Spec) error {
	data, err := spec.Canonical()
	if err != nil {
		return err
	}
	return o.createOnce(ctx, job.JobKey(spec.ID), data)
}

// createOnce creates key with data, or accepts key if it already holds data.
func (o *Orchestrator) createOnce(ctx context.Context, key string, data []byte) error {
	err := storage.Create(ctx, o.bucket, key, data)
	if !errors.Is(err, storage.ErrExists) {
		return err
	}
	existing, rerr := o.bucket.ReadAll(ctx, key)
	if rerr != nil {
		return fmt.Errorf("read %s: %w", key, rerr)
	}
	if !bytes.Equal(existing, data) {
		return fmt.Errorf("%s: %w", key, ErrConflict)
	}
	return nil
}

// RunOptions are per-run hooks.
type RunOptions struct {
	// Progress is called after each change of the job's progress with a
	// snapshot (without the per-chunk list). It must be quick.
	Progress func(job.Status)
	// Exclusive says that no other orchestrator can be running the job (the
	// CLI holds a per-job file lock on its local folder): a lease or stitch
	// lock left by an earlier run belongs to a process that is gone, and is
	// taken over at once instead of after it expires.
	Exclusive bool
}

// RunKey runs the job uploaded at jobs/<id>.json: what an S3 or GCS upload
// event triggers. An invalid spec is refused before anything is written.
func (o *Orchestrator) RunKey(ctx context.Context, key string, opts RunOptions) (*job.Status, error) {
	id, ok := job.JobIDFromKey(key)
	if !ok {
		return nil, &job.ValidationError{Problems: []job.Problem{{Path: "key",
			Message: fmt.Sprintf("%q is not %s<id>.json with an id of letters, digits, '.', '_' or '-'", key, job.JobsPrefix)}}}
	}
	r, err := o.bucket.NewReader(ctx, key, nil)
	if storage.IsNotFound(err) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer r.Close()
	spec, err := o.Prepare(r, id)
	if err != nil {
		return nil, err
	}
	return o.Run(ctx, spec, opts)
}

// Resume runs again the job whose spec was accepted before, re-rendering
// only the chunks without a completion marker.
func (o *Orchestrator) Resume(ctx context.Context, id string, opts RunOptions) (*job.Status, error) {
	if !job.ValidID(id) {
		return nil, fmt.Errorf("job id %q: %w", id, ErrNotFound)
	}
	r, err := o.bucket.NewReader(ctx, job.SpecKey(id), nil)
	if storage.IsNotFound(err) {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read spec of %q: %w", id, err)
	}
	defer r.Close()
	spec, err := o.Prepare(r, id)
	if err != nil {
		return nil, err
	}
	return o.Run(ctx, spec, opts)
}

// Lookup returns a job's status as a user should see it: status.json once
// the job has run; for a spec uploaded to jobs/ but not started, pending, or
// failed with every problem listed if the spec is invalid (an invalid
// upload never runs, so nothing else would ever say why). Nothing is written.
func (o *Orchestrator) Lookup(ctx context.Context, id string) (*job.Status, error) {
	st, err := ReadStatus(ctx, o.bucket, id)
	if !errors.Is(err, ErrNotFound) || !job.ValidID(id) {
		return st, err
	}
	r, err := o.bucket.NewReader(ctx, job.JobKey(id), nil)
	if storage.IsNotFound(err) {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := o.Prepare(r, id); err != nil {
		return &job.Status{JobID: id, State: job.StateFailed, Error: job.AsError(err)}, nil
	}
	return &job.Status{JobID: id, State: job.StatePending}, nil
}

// ReadStatus returns a job's status.
func ReadStatus(ctx context.Context, b *blob.Bucket, id string) (*job.Status, error) {
	if !job.ValidID(id) {
		return nil, fmt.Errorf("job id %q: %w", id, ErrNotFound)
	}
	var st job.Status
	err := storage.ReadJSON(ctx, b, job.StatusKey(id), &st)
	if storage.IsNotFound(err) {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// Cancel asks a job to stop: running chunks are abandoned, nothing is
// stitched, and the final state is cancelled. It is idempotent.
func Cancel(ctx context.Context, b *blob.Bucket, id string) error {
	if !job.ValidID(id) {
		return fmt.Errorf("job id %q: %w", id, ErrNotFound)
	}
	if ok, err := b.Exists(ctx, job.SpecKey(id)); err != nil {
		return err
	} else if !ok {
		if ok, err := b.Exists(ctx, job.JobKey(id)); err != nil || !ok {
			return fmt.Errorf("job %q: %w", id, ErrNotFound)
		}
	}
	err := storage.Create(ctx, b, job.CancelKey(id), []byte(time.Now().UTC().Format(time.RFC3339)))
	if errors.Is(err, storage.ErrExists) {
		return nil
	}
	return err
}
