package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/sync/errgroup"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// errCancelRequested is the cause of a dispatch stopped by the cancel object.
var errCancelRequested = errors.New("cancellation requested")

// Run claims a prepared spec and runs the job until it is done, failed or
// cancelled, and returns the final status. A job that fails is not a Go
// error: the status says why. Errors are for what stopped the orchestrator
// itself: ErrConflict, storage failures, or ctx ending (the status written
// so far then allows a resume).
func (o *Orchestrator) Run(ctx context.Context, spec *job.Spec, opts RunOptions) (*job.Status, error) {
	id := spec.ID
	log := o.log.With("jobId", id)
	canonical, err := spec.Canonical()
	if err != nil {
		return nil, err
	}
	if err := o.createOnce(ctx, job.SpecKey(id), canonical); err != nil {
		return nil, fmt.Errorf("claim job %q: %w", id, err)
	}

	// From here on, ctx also ends if another orchestrator takes the job over.
	outer := ctx
	ctx, lose := context.WithCancelCause(ctx)
	defer lose(nil)
	lease, err := o.acquireLease(ctx, id, opts.Exclusive, lose, log)
	if err != nil {
		return nil, err
	}
	defer lease.release()
	if err := o.markActive(ctx, id); err != nil {
		return nil, fmt.Errorf("mark job %q active: %w", id, err)
	}

	prev, err := ReadStatus(ctx, o.bucket, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if prev != nil && prev.State == job.StateDone {
		if ok, err := o.bucket.Exists(ctx, prev.Output); err == nil && ok {
			log.Info("job already done", "output", prev.Output)
			o.markEnded(ctx, id)
			return prev, nil
		}
	}

	chunks := spec.Plan()
	tr := newTracker(o, spec, chunks, prev, opts.Progress)
	tr.guard = lease.valid
	if cancelled, err := o.cancelRequested(ctx, id); err != nil {
		return nil, err
	} else if cancelled {
		return o.finish(ctx, tr, job.StateCancelled, job.Errorf(job.Permanent, job.CodeCancelled, "cancelled before rendering"), nil)
	}

	results, err := o.loadMarkers(ctx, spec)
	if err != nil {
		return nil, err
	}
	var pending []job.Chunk
	tr.update(func(st *job.Status) {
		for _, c := range chunks {
			if r, ok := results[c.Index]; ok {
				tr.markDone(st, c.Index, r)
			} else {
				pending = append(pending, c)
			}
		}
	})
	if err := tr.setState(ctx, job.StateRunning, nil); err != nil {
		return nil, fmt.Errorf("write status: %w", err)
	}
	log.Info("dispatching", "chunks", len(chunks), "pending", len(pending), "concurrency", o.cfg.Concurrency)

	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := o.watchCancel(dctx, id, cancel)
	// The status is written through the stitch too: a reader tells a live
	// job from a stopped one by timings.updatedAt.
	stopFlush := tr.flushEvery(ctx, o.cfg.StatusInterval, func(err error) { log.Warn("status write failed", "error", err) })
	defer stopFlush()
	fresh, err := o.dispatch(dctx, spec, lease.gen, pending, tr, log)
	stopWatch()
	for i, r := range fresh {
		results[i] = r
	}

	switch {
	case errors.Is(context.Cause(dctx), errCancelRequested):
		return o.finish(ctx, tr, job.StateCancelled, job.Errorf(job.Permanent, job.CodeCancelled, "cancelled by request"), nil)
	case ctx.Err() != nil:
		return o.interrupted(outer, ctx, tr, id)
	case err != nil:
		return o.finish(ctx, tr, job.StateFailed, job.AsError(err), nil)
	}
	// A cancel that arrived as the last chunk finished still stops the stitch.
	if cancelled, err := o.cancelRequested(ctx, id); err == nil && cancelled {
		return o.finish(ctx, tr, job.StateCancelled, job.Errorf(job.Permanent, job.CodeCancelled, "cancelled by request"), nil)
	}

	tr.update(func(st *job.Status) {
		st.Timings.RenderedAt = time.Now().UTC()
		st.Timings.RenderMs = st.Timings.RenderedAt.Sub(st.Timings.StartedAt).Milliseconds()
	})
	return o.stitchAndFinish(outer, ctx, spec, lease, results, tr, log)
}

// interrupted handles a run whose context ended. The caller's end (Ctrl-C,
// a function about to time out) leaves the progress written for a resume. A
// lease taken over writes nothing: the job is another orchestrator's now. A
// lease not renewed in time writes nothing either, and is reported as an
// interruption so the job gets resumed.
func (o *Orchestrator) interrupted(outer, ctx context.Context, tr *tracker, id string) (*job.Status, error) {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, ErrLeaseLost):
		return tr.snapshot(), fmt.Errorf("job %q: %w", id, ErrLeaseLost)
	case errors.Is(cause, errLeaseNotRenewed):
		return tr.snapshot(), fmt.Errorf("job %q interrupted: %w", id, errLeaseNotRenewed)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), windDown)
	defer cancel()
	_ = tr.write(wctx)
	return tr.snapshot(), fmt.Errorf("job %q interrupted: %w", id, outer.Err())
}

// windDown bounds the writes a stopping run still makes, so they fit in the
// margin before a function's deadline.
const windDown = 10 * time.Second

// stopped maps an error from a run whose context has ended to the reason it
// ended (interrupted, lease lost), and leaves other errors as they are.
func (o *Orchestrator) stopped(outer, ctx context.Context, tr *tracker, id string, err error) (*job.Status, error) {
	if ctx.Err() != nil {
		return o.interrupted(outer, ctx, tr, id)
	}
	return nil, err
}

// dispatch renders the pending chunks with bounded concurrency. The first
// chunk that fails for good stops the others: the job has failed, and
// rendering the rest would only cost money.
func (o *Orchestrator) dispatch(ctx context.Context, spec *job.Spec, run int, pending []job.Chunk, tr *tracker, log *slog.Logger) (map[int]job.WorkerResult, error) {
	var mu sync.Mutex
	results := make(map[int]job.WorkerResult, len(pending))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.cfg.Concurrency)
	for _, c := range pending {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			r, err := o.runChunk(gctx, spec, run, c, tr, log)
			if err != nil {
				return err
			}
			mu.Lock()
			results[c.Index] = r
			mu.Unlock()
			return nil
		})
	}
	return results, g.Wait()
}

// runChunk renders one chunk, retrying retryable errors with exponential
// backoff and jitter up to retry.maxAttempts. Throttling is the platform
// being busy, not the chunk failing: it is retried without spending an
// attempt, for up to ThrottleBudget.
func (o *Orchestrator) runChunk(ctx context.Context, spec *job.Spec, run int, c job.Chunk, tr *tracker, log *slog.Logger) (job.WorkerResult, error) {
	attempt := tr.attempts(c.Index) + 1 // number of the next attempt (attempts continue across runs)
	used := 0
	var last *job.Error
	var throttledSince time.Time
	op := func() (job.WorkerResult, error) {
		tr.attemptStarted(c.Index, attempt)
		actx, cancel := context.WithTimeout(ctx, spec.ChunkTimeout.Duration+o.cfg.ChunkGrace)
		defer cancel()
		start := time.Now()
		r, err := o.workers.Execute(actx, spec.WorkerJob(c, run, attempt))
		took := time.Since(start)
		if err == nil {
			tr.chunkDone(c.Index, r, took)
			return r, nil
		}
		if ctx.Err() != nil {
			return r, backoff.Permanent(ctx.Err())
		}
		last = job.AsError(err).WithChunk(c.Index)
		if actx.Err() != nil {
			last = job.Errorf(job.Retryable, job.CodeTimeout, "no answer from the worker within %s", spec.ChunkTimeout.Duration+o.cfg.ChunkGrace).WithChunk(c.Index)
		}
		if last.Code == job.CodeThrottled {
			if throttledSince.IsZero() {
				throttledSince = start
			}
			tr.attemptThrottled(c.Index, attempt-1)
			if time.Since(throttledSince) > o.cfg.ThrottleBudget {
				return r, backoff.Permanent(last)
			}
			log.Info("worker throttled; retrying without spending an attempt", "chunk", c.Index)
			return r, last
		}
		throttledSince = time.Time{}
		tr.attemptFailed(c.Index, last, took)
		log.Warn("chunk attempt failed", "chunk", c.Index, "attempt", attempt, "kind", last.Kind, "code", last.Code, "error", last.Message)
		attempt++
		used++
		if !last.Retryable() || used >= spec.Retry.MaxAttempts {
			return r, backoff.Permanent(last)
		}
		return r, last
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     spec.Retry.InitialBackoff.Duration,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         spec.Retry.MaxBackoff.Duration,
	}
	r, err := backoff.Retry(ctx, op, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
	if err == nil {
		return r, nil
	}
	if ctx.Err() != nil || last == nil {
		tr.chunkStopped(c.Index)
		return r, err
	}
	final := *last
	switch {
	case last.Code == job.CodeThrottled:
		final.Message = fmt.Sprintf("%s (throttled for over %s)", last.Message, o.cfg.ThrottleBudget)
	case !last.Retryable():
		final.Message = fmt.Sprintf("%s (attempt %d, not retryable)", last.Message, attempt-1)
	default:
		final.Message = fmt.Sprintf("%s (attempt %d; %d in this run, the limit)", last.Message, attempt-1, used)
	}
	tr.chunkFailed(c.Index, &final)
	return r, &final
}

// loadMarkers reads the completion markers already in storage. A marker
// whose segment has gone (cleaned up, or lost) is deleted so the chunk is
// rendered again; so is one that does not describe a planned chunk of this
// job (stray, or written by someone else): it is logged, never trusted.
func (o *Orchestrator) loadMarkers(ctx context.Context, spec *job.Spec) (map[int]job.WorkerResult, error) {
	id := spec.ID
	keys, err := storage.List(ctx, o.bucket, job.ChunksPrefix(id))
	if err != nil {
		return nil, err
	}
	exists := make(map[string]bool, len(keys))
	var markers []string
	for _, k := range keys {
		exists[k] = true
		if strings.HasSuffix(k, ".json") {
			markers = append(markers, k)
		}
	}
	results := make(map[int]job.WorkerResult, len(markers))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, key := range markers {
		g.Go(func() error {
			index, ok := job.MarkerIndex(id, key)
			var r job.WorkerResult
			err := storage.ReadJSON(gctx, o.bucket, key, &r)
			if err != nil && !storage.IsNotFound(err) && !errors.As(err, new(*json.SyntaxError)) && !errors.As(err, new(*json.UnmarshalTypeError)) {
				return err
			}
			if err == nil && ok {
				err = spec.CheckMarker(index, r)
			}
			switch {
			case storage.IsNotFound(err):
				return nil
			case !ok || err != nil:
				o.log.Warn("ignoring and removing a completion marker that does not describe a planned chunk", "jobId", id, "key", key, "why", err)
				if derr := o.bucket.Delete(gctx, key); derr != nil && !storage.IsNotFound(derr) {
					o.log.Warn("could not remove the stray marker", "key", key, "error", derr)
				}
				return nil
			case !exists[r.SegmentKey]:
				o.log.Info("segment of a completed chunk is gone; rendering it again", "jobId", id, "chunk", index)
				return o.bucket.Delete(gctx, key)
			}
			mu.Lock()
			results[index] = r
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("load completion markers: %w", err)
	}
	return results, nil
}

func (o *Orchestrator) cancelRequested(ctx context.Context, id string) (bool, error) {
	ok, err := o.bucket.Exists(ctx, job.CancelKey(id))
	if err != nil {
		return false, fmt.Errorf("check cancel: %w", err)
	}
	return ok, nil
}

// watchCancel polls for the cancel object and cancels the dispatch when it
// appears.
func (o *Orchestrator) watchCancel(ctx context.Context, id string, cancel context.CancelCauseFunc) (stop func()) {
	return every(ctx, o.cfg.CancelPollInterval, func(ctx context.Context) bool {
		if ok, err := o.cancelRequested(ctx, id); err == nil && ok {
			o.log.Info("cancel requested", "jobId", id)
			cancel(errCancelRequested)
			return false
		}
		return true
	})
}

// finish records a final state.
func (o *Orchestrator) finish(ctx context.Context, tr *tracker, state job.State, e *job.Error, also func(*job.Status)) (*job.Status, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), windDown)
	defer cancel()
	err := tr.setState(ctx, state, func(st *job.Status) {
		st.Error = e
		now := time.Now().UTC()
		st.Timings.FinishedAt = now
		st.Timings.TotalMs = now.Sub(st.Timings.StartedAt).Milliseconds()
		if also != nil {
			also(st)
		}
	})
	st := tr.snapshot()
	o.log.Info("job finished", "jobId", st.JobID, "state", st.State, "chunksDone", st.ChunksDone, "error", e)
	if err != nil {
		return st, fmt.Errorf("write final status: %w", err)
	}
	o.markEnded(ctx, st.JobID)
	return st, nil
}
