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
// frame order, records the final status and cleans up the segments.
func (o *Orchestrator) stitchAndFinish(outer, ctx context.Context, spec *job.Spec, lease *heldLease, results map[int]job.WorkerResult, tr *tracker, log *slog.Logger) (*job.Status, error) {
	run := lease.gen
	req := job.StitchRequest{JobID: spec.ID, OutputKey: spec.Output, Segments: make([]job.Segment, len(results))}
	for i := range req.Segments {
		r, ok := results[i]
		if !ok {
			return nil, fmt.Errorf("internal: chunk %d has no result before stitching", i)
		}
		req.Segments[i] = job.Segment{Key: r.SegmentKey, Frames: r.Frames}
	}

	done, err := o.takeStitchLock(ctx, spec, run, lease.exclusive, log)
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
	res, err := backoff.Retry(ctx, op, backoff.WithBackOff(b),
		backoff.WithMaxTries(uint(spec.Retry.MaxAttempts)), backoff.WithMaxElapsedTime(0))
	tr.update(func(st *job.Status) { st.Timings.StitchMs = time.Since(start).Milliseconds() })
	if err != nil {
		if ctx.Err() != nil {
			// The stitcher may still be running (a remote function outlives its
			// caller): the lock stays, and the run that resumes the job waits
			// for its output before stitching again.
			return o.interrupted(outer, ctx, tr, spec.ID)
		}
		// Release the lock so that running the job again can stitch.
		if derr := o.bucket.Delete(context.WithoutCancel(ctx), job.StitchLockKey(spec.ID)); derr != nil {
			log.Warn("release stitch lock", "error", derr)
		}
		e := *job.AsError(err)
		e.Message = "stitch failed: " + e.Message
		return o.finish(ctx, tr, job.StateFailed, &e, nil)
	}
	return o.succeed(ctx, spec, tr, res, log)
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
