package orchestrator

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/helios-project/infrastructure/pkg/job"
)

// renderChunk renders one chunk, retrying retryable errors with backoff
// (backoffFor) up to retry.maxAttempts in this run. Throttling is the
// platform being busy, not the chunk failing: it is retried without
// spending an attempt, for up to Config.ThrottleBudget.
func (r *run) renderChunk(ctx context.Context, c job.Chunk) (job.WorkerResult, error) {
	a := &chunkAttempts{r: r, c: c, next: r.tr.attempts(c.Index) + 1}
	res, err := backoff.Retry(ctx, func() (job.WorkerResult, error) { return a.try(ctx) },
		backoff.WithBackOff(backoffFor(r.spec.Retry)), backoff.WithMaxElapsedTime(0))
	if err == nil {
		return res, nil
	}
	return res, a.failed(ctx, err)
}

// chunkAttempts is one chunk's way through its attempts in one run.
type chunkAttempts struct {
	r              *run
	c              job.Chunk
	next           int        // number of the next attempt (attempts count on across runs)
	used           int        // attempts spent in this run
	last           *job.Error // the last attempt's error
	throttledSince time.Time  // start of the current stretch of throttling
}

// try is one invocation of the worker. Its error is backoff.Permanent when
// no further attempt should be made.
func (a *chunkAttempts) try(ctx context.Context) (job.WorkerResult, error) {
	r, i := a.r, a.c.Index
	var lane int
	select {
	case lane = <-r.rec.lanes:
	case <-ctx.Done():
		return job.WorkerResult{}, backoff.Permanent(ctx.Err())
	}
	r.tr.attemptStarted(i, a.next)
	limit := r.spec.ChunkTimeout.Duration + r.o.cfg.ChunkGrace
	actx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	start := time.Now()
	res, err := r.o.workers.Execute(actx, r.spec.WorkerJob(a.c, r.lease.Gen, a.next))
	end := time.Now()
	r.rec.lanes <- lane
	took := end.Sub(start)
	record := func(attempt int, o job.Outcome) {
		r.rec.attempt(job.Attempt{Chunk: i, Attempt: attempt, Lane: lane, Start: start.UnixMilli(), End: end.UnixMilli(), Outcome: o})
	}
	if err == nil {
		r.tr.chunkDone(i, res, took)
		record(a.next, job.OutcomeDone)
		return res, nil
	}
	if ctx.Err() != nil {
		// Abandoned (cancel, or the run stopped): the attempt never finished
		// and is not counted.
		r.tr.attemptUncounted(i, a.next-1)
		record(a.next, job.OutcomeAbandoned)
		return res, backoff.Permanent(ctx.Err())
	}
	a.last = job.AsError(err).WithChunk(i)
	if actx.Err() != nil {
		a.last = job.Errorf(job.Retryable, job.CodeTimeout, "no answer from the worker within %s", limit).WithChunk(i)
	}
	if a.last.Code == job.CodeThrottled {
		if a.throttledSince.IsZero() {
			a.throttledSince = start
		}
		r.tr.attemptUncounted(i, a.next-1)
		record(0, job.OutcomeThrottled)
		if time.Since(a.throttledSince) > r.o.cfg.ThrottleBudget {
			return res, backoff.Permanent(a.last)
		}
		r.log.Info("worker throttled; retrying without spending an attempt", "chunk", i)
		return res, a.last
	}
	a.throttledSince = time.Time{}
	r.tr.attemptFailed(i, a.last, took)
	r.log.Warn("chunk attempt failed", "chunk", i, "attempt", a.next, "kind", a.last.Kind, "code", a.last.Code, "error", a.last.Message)
	a.next++
	a.used++
	if !a.last.Retryable() || a.used >= r.spec.Retry.MaxAttempts {
		record(a.next-1, job.OutcomeFailed)
		return res, backoff.Permanent(a.last)
	}
	record(a.next-1, job.OutcomeRetried)
	return res, a.last
}

// failed records why the chunk gave up and returns the error that fails
// the job, or the context's error if the run stopped.
func (a *chunkAttempts) failed(ctx context.Context, err error) error {
	r, i := a.r, a.c.Index
	if ctx.Err() != nil || a.last == nil {
		r.tr.chunkStopped(i)
		return err
	}
	final := *a.last
	switch {
	case a.last.Code == job.CodeThrottled:
		final.Message = fmt.Sprintf("%s (throttled for over %s)", a.last.Message, r.o.cfg.ThrottleBudget)
	case !a.last.Retryable():
		final.Message = fmt.Sprintf("%s (attempt %d, not retryable)", a.last.Message, a.next-1)
	default:
		final.Message = fmt.Sprintf("%s (attempt %d; %d in this run, the limit)", a.last.Message, a.next-1, a.used)
	}
	r.tr.chunkFailed(i, &final)
	return &final
}
