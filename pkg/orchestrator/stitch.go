package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// stitchLock is the content of renders/<id>/stitch.lock.
type stitchLock struct {
	CreatedAt time.Time `json:"createdAt"`
	Run       int       `json:"run"` // the lease generation that stitched
}

// stitchAndFinish takes the stitch lock, stitches the winning segments in
// frame order, records the final status and cleans up the segments. A
// segment the stitcher finds damaged (not the size or checksum its marker
// promises, or gone) has its chunk rendered again, once per chunk and run,
// and the stitch is tried again: the video comes out frame-exact instead of
// the job failing on a segment a worker rendered well.
func (o *Orchestrator) stitchAndFinish(outer, ctx context.Context, spec *job.Spec, lease *heldLease, results map[int]job.WorkerResult, tr *tracker, log *slog.Logger) (*job.Status, error) {
	rerendered := make(map[int]bool)
	var stitchTime time.Duration // this run's stitching, re-renders left out
	for {
		req, err := stitchRequest(spec, results)
		if err != nil {
			return nil, err
		}
		done, err := o.takeStitchLock(ctx, spec, lease.gen, lease.exclusive, log)
		switch {
		case err != nil:
			return o.stopped(outer, ctx, tr, spec.ID, err)
		case done:
			log.Info("output already stitched", "output", spec.Output)
			return o.succeed(ctx, spec, tr, job.StitchResult{OutputKey: spec.Output, Frames: req.TotalFrames()}, log)
		}
		if err := tr.setState(ctx, job.StateStitching, nil); err != nil {
			return o.stopped(outer, ctx, tr, spec.ID, fmt.Errorf("write status: %w", err))
		}
		start := time.Now()
		res, err := o.stitch(ctx, spec, req, log)
		stitchTime += time.Since(start)
		tr.update(func(st *job.Status) { st.Timings.StitchMs = stitchTime.Milliseconds() })
		if err == nil {
			return o.succeed(ctx, spec, tr, res, log)
		}
		if ctx.Err() != nil {
			// The stitcher may still be running (a remote function outlives its
			// caller): the lock stays, and the run that resumes the job waits
			// for its output before stitching again.
			return o.interrupted(outer, ctx, tr, spec.ID)
		}
		// Release the lock so that a re-render, or running the job again,
		// can stitch.
		if derr := o.bucket.Delete(context.WithoutCancel(ctx), job.StitchLockKey(spec.ID)); derr != nil {
			log.Warn("release stitch lock", "error", derr)
		}
		e := *job.AsError(err)
		if i, ok := damagedChunk(&e); ok && !rerendered[i] {
			rerendered[i] = true
			log.Warn("a segment is damaged; rendering its chunk again", "chunk", i, "code", e.Code, "error", e.Message)
			r, rerr := o.rerender(ctx, spec, lease.gen, i, results[i], &e, tr, log)
			if rerr == nil {
				results[i] = r
				continue
			}
			if ctx.Err() != nil {
				return o.interrupted(outer, ctx, tr, spec.ID)
			}
			e = *job.AsError(rerr)
			e.Message = fmt.Sprintf("rendering chunk %d again after its segment was found damaged: %s", i, e.Message)
		} else {
			e.Message = "stitch failed: " + e.Message
		}
		return o.finish(ctx, tr, job.StateFailed, &e, nil)
	}
}

// stitchRequest lists the segments of results in frame order.
func stitchRequest(spec *job.Spec, results map[int]job.WorkerResult) (job.StitchRequest, error) {
	req := job.StitchRequest{JobID: spec.ID, OutputKey: spec.Output, Segments: make([]job.Segment, len(results))}
	for i := range req.Segments {
		r, ok := results[i]
		if !ok {
			return req, fmt.Errorf("internal: chunk %d has no result before stitching", i)
		}
		req.Segments[i] = job.Segment{Key: r.SegmentKey, Frames: r.Frames}
	}
	return req, nil
}

// stitch invokes the stitcher, retrying retryable failures with backoff.
func (o *Orchestrator) stitch(ctx context.Context, spec *job.Spec, req job.StitchRequest, log *slog.Logger) (job.StitchResult, error) {
	op := func() (job.StitchResult, error) {
		sctx, cancel := context.WithTimeout(ctx, o.cfg.StitchTimeout)
		defer cancel()
		res, err := o.stitcher.Stitch(sctx, req)
		if err == nil || ctx.Err() != nil {
			return res, err
		}
		e := job.AsError(err)
		log.Warn("stitch attempt failed", "code", e.Code, "error", e.Message)
		if !e.Retryable() {
			return res, backoff.Permanent(e)
		}
		return res, e
	}
	b := &backoff.ExponentialBackOff{InitialInterval: spec.Retry.InitialBackoff.Duration, RandomizationFactor: 0.5,
		Multiplier: 2, MaxInterval: spec.Retry.MaxBackoff.Duration}
	return backoff.Retry(ctx, op, backoff.WithBackOff(b),
		backoff.WithMaxTries(uint(spec.Retry.MaxAttempts)), backoff.WithMaxElapsedTime(0))
}

// damagedChunk says which chunk's segment a stitch failure blames, when
// rendering that chunk again can fix it: the segment is missing, is not
// the one its marker names, or is not what the marker promises.
func damagedChunk(e *job.Error) (int, bool) {
	if e.Chunk == nil {
		return 0, false
	}
	switch e.Code {
	case job.CodeFrameMismatch, job.CodeMissingOutput, job.CodeInvalid:
		return *e.Chunk, true
	}
	return 0, false
}

// rerender forgets chunk i's damaged result (its marker first, so no later
// run trusts it, then its segment) and renders the chunk again.
func (o *Orchestrator) rerender(ctx context.Context, spec *job.Spec, run, i int, damaged job.WorkerResult, why *job.Error, tr *tracker, log *slog.Logger) (job.WorkerResult, error) {
	if err := o.bucket.Delete(ctx, job.MarkerKey(spec.ID, i)); err != nil && !storage.IsNotFound(err) {
		return job.WorkerResult{}, job.Errorf(job.Retryable, job.CodeStorage, "remove the marker of chunk %d: %v", i, err).WithChunk(i)
	}
	if damaged.SegmentKey != "" {
		if err := o.bucket.Delete(ctx, damaged.SegmentKey); err != nil && !storage.IsNotFound(err) {
			log.Warn("remove a damaged segment", "key", damaged.SegmentKey, "error", err)
		}
	}
	tr.chunkDamaged(i, why)
	if err := tr.setState(ctx, job.StateRunning, nil); err != nil {
		return job.WorkerResult{}, fmt.Errorf("write status: %w", err)
	}
	return o.runChunk(ctx, spec, run, spec.Plan()[i], tr, log)
}

// takeStitchLock creates the stitch lock. done is true when the output
// exists (an earlier run stitched it). A lock without output belongs to a
// run that stopped mid-stitch; its stitcher may still be running, so this
// run waits for the output until the lock is StitchTimeout old, then takes
// the lock over (it holds the job's lease: no other orchestrator can be
// stitching).
func (o *Orchestrator) takeStitchLock(ctx context.Context, spec *job.Spec, run int, exclusive bool, log *slog.Logger) (done bool, err error) {
	key := job.StitchLockKey(spec.ID)
	for range 2 {
		if ok, err := o.bucket.Exists(ctx, spec.Output); err != nil || ok {
			return ok, err
		}
		err := storage.CreateJSON(ctx, o.bucket, key, stitchLock{CreatedAt: time.Now().UTC(), Run: run})
		if !errors.Is(err, storage.ErrExists) {
			return false, err
		}
		var held stitchLock
		if err := storage.ReadJSON(ctx, o.bucket, key, &held); err != nil && !storage.IsNotFound(err) {
			return false, err
		}
		// An exclusive run knows the stitch that took the lock died with
		// its process: no output is coming.
		if wait := o.cfg.StitchTimeout - time.Since(held.CreatedAt); wait > 0 && !exclusive {
			log.Info("an interrupted run's stitch may still finish; waiting for its output", "upTo", wait.Round(time.Second))
			if ok, err := o.waitFor(ctx, spec.Output, wait); err != nil || ok {
				return ok, err
			}
		}
		log.Info("taking over the stitch lock of an interrupted run", "run", held.Run)
		if err := o.bucket.Delete(ctx, key); err != nil && !storage.IsNotFound(err) {
			return false, err
		}
	}
	return false, fmt.Errorf("stitch lock of job %q keeps reappearing", spec.ID)
}

// waitFor polls until key exists (true), d passes (false) or ctx ends.
func (o *Orchestrator) waitFor(ctx context.Context, key string, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		if ok, err := o.bucket.Exists(ctx, key); err != nil || ok {
			return ok, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(min(2*time.Second, time.Until(deadline)+time.Millisecond)):
		}
	}
}

// succeed records the done state, removes the stitch lock, then removes the
// segments unless the spec keeps them. The markers stay: they are small, and they say which chunks
// were done.
func (o *Orchestrator) succeed(ctx context.Context, spec *job.Spec, tr *tracker, res job.StitchResult, log *slog.Logger) (*job.Status, error) {
	if res.Bytes == 0 {
		if attrs, err := o.bucket.Attributes(ctx, res.OutputKey); err == nil {
			res.Bytes = attrs.Size
		}
	}
	st, err := o.finish(ctx, tr, job.StateDone, nil, func(s *job.Status) {
		s.Output, s.OutputBytes = res.OutputKey, res.Bytes
	})
	if err != nil {
		return st, err
	}
	// The output now says the stitch is done; the lock only ever stands for
	// a stitch that may still be in flight.
	if err := o.bucket.Delete(ctx, job.StitchLockKey(spec.ID)); err != nil && !storage.IsNotFound(err) {
		log.Warn("remove stitch lock", "error", err)
	}
	if !spec.KeepChunks {
		keys, err := storage.List(ctx, o.bucket, job.ChunksPrefix(spec.ID))
		if err == nil {
			var segments []string
			for _, k := range keys {
				if !strings.HasSuffix(k, ".json") {
					segments = append(segments, k)
				}
			}
			err = storage.DeleteKeys(ctx, o.bucket, segments)
		}
		if err != nil {
			log.Warn("clean up segments", "error", err)
		}
	}
	return st, nil
}
