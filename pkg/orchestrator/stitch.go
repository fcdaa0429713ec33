package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// stitch takes the stitch lock, stitches the winning segments in frame
// order, records the final status and cleans up the segments. A segment the
// stitcher finds damaged (not the size or checksum its marker promises, or
// gone) has its chunk rendered again, once per chunk and run, and the stitch
// is tried again: the video comes out frame-exact instead of the job failing
// on a segment a worker rendered well.
func (r *run) stitch(results map[int]job.WorkerResult) (*job.Status, error) {
	rerendered := make(map[int]bool)
	var stitchTime time.Duration // this run's stitching, re-renders left out
	for {
		req, err := r.stitchRequest(results)
		if err != nil {
			return nil, err
		}
		done, err := r.takeStitchLock()
		switch {
		case err != nil:
			return r.stopped(err)
		case done:
			r.log.Info("output already stitched", "output", r.spec.Output)
			return r.succeed(job.StitchResult{OutputKey: r.spec.Output, Frames: req.TotalFrames()})
		}
		if err := r.tr.setState(r.ctx, job.StateStitching, nil); err != nil {
			return r.stopped(fmt.Errorf("write status: %w", err))
		}
		start := time.Now()
		res, err := r.stitchWithRetries(req)
		stitchTime += time.Since(start)
		r.rec.stitch(start, time.Now())
		r.tr.update(func(st *job.Status) { st.Timings.StitchMs = stitchTime.Milliseconds() })
		if err == nil {
			return r.succeed(res)
		}
		if r.ctx.Err() != nil {
			// The stitcher may still be running (a remote function outlives its
			// caller): the lock stays, and the run that resumes the job waits
			// for its output before stitching again.
			return r.interrupted()
		}
		// Release the lock so that a re-render, or running the job again,
		// can stitch.
		if err := r.store.UnlockStitch(context.WithoutCancel(r.ctx), r.spec.ID); err != nil {
			r.log.Warn("release stitch lock", "error", err)
		}
		e := *joberr.AsError(err)
		if i, ok := damagedChunk(&e); ok && !rerendered[i] {
			rerendered[i] = true
			r.log.Warn("a segment is damaged; rendering its chunk again", "chunk", i, "code", e.Code, "error", e.Message)
			res, rerr := r.rerender(i, results[i], &e)
			if rerr == nil {
				results[i] = res
				continue
			}
			if r.ctx.Err() != nil {
				return r.interrupted()
			}
			e = *joberr.AsError(rerr)
			e.Message = fmt.Sprintf("rendering chunk %d again after its segment was found damaged: %s", i, e.Message)
		} else {
			e.Message = "stitch failed: " + e.Message
		}
		return r.finish(job.StateFailed, &e, nil)
	}
}

// stitchRequest lists the segments of results in frame order.
func (r *run) stitchRequest(results map[int]job.WorkerResult) (job.StitchRequest, error) {
	req := r.spec.StitchRequest(make([]job.Segment, len(results)))
	for i := range req.Segments {
		res, ok := results[i]
		if !ok {
			return req, fmt.Errorf("internal: chunk %d has no result before stitching", i)
		}
		req.Segments[i] = job.Segment{Key: res.SegmentKey, Frames: res.Frames}
	}
	return req, nil
}

// stitchWithRetries invokes the stitcher, retrying retryable failures with
// the spec's backoff.
func (r *run) stitchWithRetries(req job.StitchRequest) (job.StitchResult, error) {
	op := func() (job.StitchResult, error) {
		ctx, cancel := context.WithTimeout(r.ctx, r.o.cfg.StitchTimeout)
		defer cancel()
		start := time.Now()
		res, err := r.o.stitcher.Stitch(ctx, req)
		r.tr.invoked(job.FunctionStitcher, time.Since(start), res.Requests)
		if err == nil || r.ctx.Err() != nil {
			return res, err
		}
		e := joberr.AsError(err)
		r.log.Warn("stitch attempt failed", "code", e.Code, "error", e.Message)
		if !e.Retryable() {
			return res, backoff.Permanent(e)
		}
		return res, e
	}
	return backoff.Retry(r.ctx, op, backoff.WithBackOff(backoffFor(r.spec.Retry)),
		backoff.WithMaxTries(uint(r.spec.Retry.MaxAttempts)), backoff.WithMaxElapsedTime(0))
}

// damagedChunk says which chunk's segment a stitch failure blames, when
// rendering that chunk again can fix it: the segment is missing, is not
// the one its marker names, or is not what the marker promises.
func damagedChunk(e *joberr.Error) (int, bool) {
	if e.Chunk == nil {
		return 0, false
	}
	switch e.Code {
	case joberr.CodeFrameMismatch, joberr.CodeMissingOutput, joberr.CodeInvalid:
		return *e.Chunk, true
	}
	return 0, false
}

// rerender forgets chunk i's damaged result and renders the chunk again.
func (r *run) rerender(i int, damaged job.WorkerResult, why *joberr.Error) (job.WorkerResult, error) {
	if err := r.store.ForgetChunk(r.ctx, r.spec.ID, i, damaged); err != nil {
		return job.WorkerResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err).WithChunk(i)
	}
	r.tr.chunkDamaged(i, why)
	if err := r.tr.setState(r.ctx, job.StateRunning, nil); err != nil {
		return job.WorkerResult{}, fmt.Errorf("write status: %w", err)
	}
	return r.renderChunk(r.ctx, r.chunks[i])
}

// takeStitchLock creates the stitch lock. done is true when the output
// exists (an earlier run stitched it). A lock without output belongs to a
// run that stopped mid-stitch; its stitcher may still be running, so this
// run waits for the output until the lock is StitchTimeout old, then takes
// the lock over (it holds the job's lease: no other orchestrator can be
// stitching). An exclusive run knows that stitch died with its process.
func (r *run) takeStitchLock() (done bool, err error) {
	id, output := r.spec.ID, r.spec.Output
	for range 2 {
		if ok, err := r.store.Exists(r.ctx, output); err != nil || ok {
			return ok, err
		}
		err := r.store.LockStitch(r.ctx, id, r.lease.Gen)
		if !errors.Is(err, storage.ErrExists) {
			return false, err
		}
		held, _, err := r.store.StitchLockHeld(r.ctx, id)
		if err != nil {
			return false, err
		}
		if wait := r.o.cfg.StitchTimeout - time.Since(held.CreatedAt); wait > 0 && !r.lease.Exclusive {
			r.log.Info("an interrupted run's stitch may still finish; waiting for its output", "upTo", wait.Round(time.Second))
			if ok, err := r.waitFor(output, wait); err != nil || ok {
				return ok, err
			}
		}
		r.log.Info("taking over the stitch lock of an interrupted run", "run", held.Run)
		if err := r.store.UnlockStitch(r.ctx, id); err != nil {
			return false, err
		}
	}
	return false, fmt.Errorf("stitch lock of job %q keeps reappearing", id)
}

// waitFor polls until key exists (true), d passes (false) or the run ends.
func (r *run) waitFor(key string, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		if ok, err := r.store.Exists(r.ctx, key); err != nil || ok {
			return ok, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-r.ctx.Done():
			return false, r.ctx.Err()
		case <-time.After(min(2*time.Second, time.Until(deadline)+time.Millisecond)):
		}
	}
}

// succeed records the done state, removes the stitch lock, then removes the
// segments unless the spec keeps them (the markers stay: they are small, and
// they say which chunks were done).
func (r *run) succeed(res job.StitchResult) (*job.Status, error) {
	if res.Bytes == 0 {
		if size, err := r.store.OutputSize(r.ctx, res.OutputKey); err == nil {
			res.Bytes = size
		}
	}
	st, err := r.finish(job.StateDone, nil, func(s *job.Status) {
		s.Output, s.OutputBytes = res.OutputKey, res.Bytes
		if !r.spec.KeepChunks {
			for i := range s.Chunks { // removed below: the status names no object that is gone
				s.Chunks[i].SegmentKey = ""
			}
		}
	})
	if err != nil {
		return st, err
	}
	// The output now says the stitch is done; the lock only ever stands for
	// a stitch that may still be in flight.
	if err := r.store.UnlockStitch(r.ctx, r.spec.ID); err != nil {
		r.log.Warn("remove stitch lock", "error", err)
	}
	if !r.spec.KeepChunks {
		if err := r.store.RemoveSegments(r.ctx, r.spec.ID); err != nil {
			r.log.Warn("clean up segments", "error", err)
		}
	}
	return st, nil
}
