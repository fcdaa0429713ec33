// Package worker is the chunk worker's handler: WorkerJob in, WorkerResult
// out. It fetches the job's assets, runs the command in a fresh work dir,
// checks the segment has exactly the chunk's frames, uploads it and creates
// the chunk's completion marker if no other attempt has.
package worker

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/fmp4"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// Media is what the worker asks of ffmpeg (ffmpeg.Tool does it): count
// a segment's frames (containers other than the MP4 family), and
// stream-copy an MP4-family segment into fragments, cutting its audio.
type Media interface {
	CountFrames(ctx context.Context, path string) (int, error)
	Fragment(ctx context.Context, input, output string, audio *fmp4.AudioCut) error
}

// Handler renders chunks.
type Handler struct {
	// Store holds the chunk's markers and segments (and, in its bucket,
	// the assets).
	Store  *jobstore.Store
	Runner *execx.Runner // its allowlist is the worker's own: a worker may be invoked directly
	Media  Media
	// TempDir holds the per-attempt work dirs; "" means os.TempDir() (/tmp on Lambda).
	TempDir string
	// MaxAssetBytes caps the unpacked size of an asset bundle; 0 means 2 GiB.
	MaxAssetBytes int64
	// UploadReserve is the time kept, before the invocation's deadline, to
	// check and upload the segment; 0 means 30s.
	UploadReserve time.Duration
	// Plans returns the accepted spec of a job (jobstore.Accepted): the
	// worker renders only a chunk that spec plans, exactly as planned, and
	// trusts only markers that describe it. Deployments always set it; nil
	// skips the check (unit tests of the other checks).
	Plans jobstore.Plans
	// Fetcher, if set, serves what a rendered page asks of other origins
	// (commands without network); nil: none is offered.
	Fetcher PageFetcher
	Logger  *slog.Logger
}

// Handle renders one chunk. Errors are *joberr.Error. The result reports the
// storage requests this invocation made, for the job's cost.
func (h *Handler) Handle(ctx context.Context, w job.WorkerJob) (job.WorkerResult, error) {
	var ops storage.Ops
	res, err := h.handle(storage.WithOps(ctx, &ops), w)
	res.Requests = ops.Counts()
	return res, err
}

func (h *Handler) handle(ctx context.Context, w job.WorkerJob) (job.WorkerResult, error) {
	if err := w.Validate(); err != nil {
		return job.WorkerResult{}, joberr.AsError(err)
	}
	entered := time.Now()
	log := h.logger().With("jobId", w.JobID, "chunk", w.Chunk.Index, "attempt", w.Attempt)
	res, err := h.render(ctx, w, entered, log)
	if err != nil {
		return job.WorkerResult{}, failed(ctx, w, log, err)
	}
	return res, nil
}

// failed is err as the chunk's *joberr.Error, logged.
func failed(ctx context.Context, w job.WorkerJob, log *slog.Logger, err error) *joberr.Error {
	e := joberr.AsError(err).WithChunk(w.Chunk.Index)
	if errors.Is(ctx.Err(), context.Canceled) {
		// The caller gave up on this invocation (the job was cancelled,
		// or the orchestrator stopped): not a failure of the chunk.
		log.Info("chunk abandoned: the invocation was cancelled")
		return e
	}
	log.Warn("chunk failed", "code", e.Code, "kind", e.Kind, "error", e.Message)
	return e
}

// render takes the chunk from its payload to its completion marker: check
// the plan, skip a chunk already complete, then render it.
func (h *Handler) render(ctx context.Context, w job.WorkerJob, entered time.Time, log *slog.Logger) (job.WorkerResult, error) {
	spec, err := h.plan(ctx, w)
	if err != nil {
		return job.WorkerResult{}, err
	}
	// A duplicate invocation of a finished chunk does no work.
	if prev, ok, err := h.readMarker(ctx, w, spec); err != nil || ok {
		if ok {
			log.Info("chunk already complete", "segment", prev.SegmentKey)
		}
		return prev, err
	}
	return h.renderAttempt(ctx, w, spec, entered, log)
}

// renderAttempt is this attempt's work, in a fresh work dir: fetch the
// assets, run the command, make its output a segment, store it.
func (h *Handler) renderAttempt(ctx context.Context, w job.WorkerJob, spec *job.Spec, entered time.Time, log *slog.Logger) (job.WorkerResult, error) {
	dir, err := os.MkdirTemp(h.TempDir, "helios-chunk-*")
	if err != nil {
		return job.WorkerResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "create work dir: %v", err)
	}
	defer os.RemoveAll(dir)
	at, err := h.newAttempt(dir)
	if err != nil {
		return job.WorkerResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "create the attempt's dirs: %v", err)
	}
	defer at.close()
	if w.Assets != "" {
		if err := h.fetchAssets(ctx, w.Assets, dir, at.work); err != nil {
			return job.WorkerResult{}, err
		}
	}
	ran, err := h.run(ctx, w, at, entered, log)
	if err != nil {
		return job.WorkerResult{}, err
	}
	output, err := commandOutput(w, at.work, ran.Stderr)
	if err != nil {
		return job.WorkerResult{}, err
	}
	seg, err := h.segment(ctx, w, output, dir)
	if err != nil {
		return job.WorkerResult{}, err
	}
	if w.Timeline != nil && w.Chunk.Index > 0 {
		if err := h.checkJoinable(ctx, w, spec, seg.init); err != nil {
			return job.WorkerResult{}, err
		}
	}
	return h.complete(ctx, w, spec, seg, ran, at.warnings(), log)
}

// run runs the chunk's command in the attempt's work dir. It must end in
// time to check and upload the segment before the platform's own deadline
// (Lambda's function timeout) kills us.
func (h *Handler) run(ctx context.Context, w job.WorkerJob, at *attempt, entered time.Time, log *slog.Logger) (execx.Result, error) {
	timeout, capped := w.Timeout.Duration, false
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline) - h.uploadReserve()
		if left <= 0 {
			return execx.Result{}, joberr.Errorf(joberr.Retryable, joberr.CodeTimeout, "no time left before the worker's deadline")
		}
		if timeout == 0 || left < timeout {
			timeout, capped = left, true
		}
	}
	log.Info("running chunk", "command", w.Command, "start", w.Chunk.Start, "count", w.Chunk.Count, "timeout", timeout)
	res, err := h.Runner.Run(ctx, execx.Cmd{
		Argv:    append([]string{w.Command}, w.Args...),
		Dir:     at.work,
		Home:    at.home,
		Env:     at.env(w.Env),
		Timeout: timeout,
	})
	var te *joberr.Error
	if capped && errors.As(err, &te) && te.Code == joberr.CodeTimeout && time.Since(entered)-timeout < timeout/10 {
		// The command had (nearly) the whole invocation and still ran out:
		// it would time out again, the chunk is too long for this worker.
		// (If fetching assets ate the time, the timeout stays retryable.)
		e := joberr.Errorf(joberr.Permanent, joberr.CodeTimeout,
			"%s needed more than the %s this worker has per invocation; use smaller chunks (framesPerChunk)", w.Command, timeout.Round(time.Second))
		e.StderrTail = te.StderrTail
		return res, e
	}
	return res, err
}

// commandOutput returns the path of the file the command wrote, resolved
// inside the work dir only: a symlinked directory in outputFile must not
// lead the upload out of it. stderr is the command's, for a missing file.
func commandOutput(w job.WorkerJob, work, stderr string) (string, error) {
	root, err := os.OpenRoot(work)
	if err != nil {
		return "", joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "open work dir: %v", err)
	}
	defer root.Close()
	info, err := root.Lstat(filepath.FromSlash(w.OutputFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		e := joberr.Errorf(joberr.Retryable, joberr.CodeMissingOutput, "%s exited 0 but wrote no %s", w.Command, w.OutputFile)
		e.StderrTail = execx.LastLines(stderr, 20)
		return "", e
	case err != nil:
		return "", joberr.Errorf(joberr.Permanent, joberr.CodeMissingOutput, "%s cannot be read inside the work dir: %v", w.OutputFile, err)
	case !info.Mode().IsRegular():
		// A symlink could point anywhere on the worker; never upload one.
		return "", joberr.Errorf(joberr.Permanent, joberr.CodeMissingOutput, "%s is not a regular file", w.OutputFile)
	}
	return filepath.Join(work, filepath.FromSlash(w.OutputFile)), nil
}

// complete uploads the segment and creates the chunk's completion marker.
// If another attempt created it first, that attempt's segment is the one
// that counts, and ours (a key no marker names) is removed.
func (h *Handler) complete(ctx context.Context, w job.WorkerJob, spec *job.Spec, seg segment, ran execx.Result, warnings []string, log *slog.Logger) (job.WorkerResult, error) {
	up, err := h.Store.UploadAttempt(ctx, w, seg.path, seg.audioPath)
	if err != nil {
		return job.WorkerResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err)
	}
	if seg.audio != nil {
		seg.audio.Key = up.AudioKey
	}
	result := job.WorkerResult{
		JobID: w.JobID, Chunk: w.Chunk, Attempt: w.Attempt, SegmentKey: up.SegmentKey,
		Bytes: up.Bytes, SHA256: seg.sha256, MD5: seg.md5, Frames: seg.frames, ExitCode: ran.ExitCode, DurationMs: ran.Duration.Milliseconds(), Winner: true,
		Init: seg.init, Audio: seg.audio, Warnings: warnings,
	}
	if seg.audio != nil && !seg.audio.Lossless() && len(result.Warnings) < job.MaxWarnings {
		result.Warnings = append(result.Warnings, job.LossyAudioWarning(seg.audio.Codec))
	}
	err = h.Store.CreateMarker(ctx, result)
	if errors.Is(err, storage.ErrExists) {
		prev, ok, rerr := h.readMarker(ctx, w, spec)
		if rerr != nil || !ok {
			return job.WorkerResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "the chunk's marker exists but cannot be read or does not describe it: %v", rerr)
		}
		log.Info("another attempt completed the chunk first", "winner", prev.SegmentKey)
		h.removeUpload(context.WithoutCancel(ctx), result)
		return prev, nil
	}
	if err != nil {
		return job.WorkerResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err)
	}
	log.Info("chunk done", "segment", up.SegmentKey, "bytes", up.Bytes, "frames", seg.frames, "audio", seg.audio != nil, "ms", ran.Duration.Milliseconds(), "warnings", len(result.Warnings))
	return result, nil
}

// removeUpload deletes an attempt's segment and audio. Best effort: the
// orchestrator's clean-up and the segment tag's expiry catch what is left.
func (h *Handler) removeUpload(ctx context.Context, r job.WorkerResult) {
	if err := h.Store.RemoveUpload(ctx, r); err != nil {
		h.logger().Warn("remove the upload of an attempt that lost", "error", err)
	}
}

// plan returns the accepted spec, after checking that it plans w.
func (h *Handler) plan(ctx context.Context, w job.WorkerJob) (*job.Spec, error) {
	if h.Plans == nil {
		return nil, nil
	}
	return h.Plans.Check(ctx, w.JobID, func(s *job.Spec) error { return s.CheckWorkerJob(w) })
}

// readMarker reads the chunk's completion marker. One that does not
// describe the planned chunk (a stray or forged one) is not trusted: the
// chunk is not complete, and the orchestrator's next run removes it.
func (h *Handler) readMarker(ctx context.Context, w job.WorkerJob, spec *job.Spec) (job.WorkerResult, bool, error) {
	r, err := h.Store.Marker(ctx, w.JobID, w.Chunk.Index, spec)
	var stray *jobstore.StrayMarkerError
	switch {
	case errors.Is(err, jobstore.ErrNoMarker):
		return r, false, nil
	case errors.As(err, &stray):
		h.logger().Warn("ignoring a completion marker that does not describe the planned chunk", "jobId", w.JobID, "chunk", w.Chunk.Index, "why", stray.Why)
		return r, false, nil
	case err != nil:
		return r, false, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err)
	}
	r.Winner = false
	return r, true, nil
}

func (h *Handler) uploadReserve() time.Duration {
	if h.UploadReserve > 0 {
		return h.UploadReserve
	}
	return 30 * time.Second
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}
