package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
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
	next           int           // number of the next attempt (attempts count on across runs)
	used           int           // attempts spent in this run
	last           *joberr.Error // the last attempt's error
	lastAttempt    int           // its number
	throttledSince time.Time     // start of the current stretch of throttling
}

// call is one invocation of the worker for the chunk.
type call struct {
	attempt    int
	lane       int
	hedge      bool // started beside a straggling attempt
	start, end time.Time
	res        job.WorkerResult
	err        error
	timedOut   bool // the worker did not answer within the invocation's limit
}

func (c call) took() time.Duration { return c.end.Sub(c.start) }

// try is one attempt of the chunk, with its hedge if it straggles. Its
// error is backoff.Permanent when no further attempt should be made.
func (a *chunkAttempts) try(ctx context.Context) (job.WorkerResult, error) {
	if e := a.r.overBudget(); e != nil {
		return job.WorkerResult{}, backoff.Permanent(e)
	}
	var lane int
	select {
	case lane = <-a.r.rec.lanes:
	case <-ctx.Done():
		return job.WorkerResult{}, backoff.Permanent(ctx.Err())
	}
	first := a.next
	calls := a.race(ctx, lane)
	k := slices.IndexFunc(calls, func(c call) bool { return c.err == nil })
	if ctx.Err() != nil && k < 0 {
		// Abandoned (cancel, or the run stopped): the attempts never
		// finished and are not counted.
		a.next = first
		a.r.tr.attemptUncounted(a.c.Index, first-1)
		for _, c := range calls {
			a.record(c, job.OutcomeAbandoned)
		}
		return job.WorkerResult{}, backoff.Permanent(ctx.Err())
	}
	if k >= 0 {
		return a.won(calls, k), nil
	}
	for _, c := range calls[:len(calls)-1] {
		a.failedBeside(c)
	}
	return a.settle(calls[len(calls)-1])
}

// race invokes the worker on lane and, if the hedger finds the invocation
// straggling, a second time on the lane it hands over. It returns when one
// has completed the chunk (the other is cancelled, and answers soon) or
// both have failed, with the calls in the order they answered.
func (a *chunkAttempts) race(ctx context.Context, lane int) []call {
	r := a.r
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan call, 2)
	f := r.hedge.track()
	a.launch(rctx, answers, lane, f)
	tracked, running := true, 1
	var calls []call
	for running > 0 {
		select {
		case l := <-f.lane:
			if rctx.Err() != nil || r.overBudget() != nil {
				r.rec.lanes <- l
				continue
			}
			r.hedge.hedgeStarted()
			a.launch(rctx, answers, l, nil)
			running++
		case c := <-answers:
			running--
			calls = append(calls, c)
			if tracked {
				// Hedge only an attempt still running alone.
				r.hedge.untrack(f, r.rec.lanes)
				tracked = false
			}
			if c.err == nil {
				cancel()
			}
		}
	}
	return calls
}

// launch starts one invocation on lane: the attempt the hedger watches as
// f, or a hedge (f nil). It answers on answers, after giving the lane back
// and ending f, so the lane is never handed to a hedge of itself.
func (a *chunkAttempts) launch(ctx context.Context, answers chan<- call, lane int, f *flight) {
	r := a.r
	hedge := f == nil
	c := call{attempt: a.next, lane: lane, hedge: hedge, start: time.Now()}
	a.next++
	r.tr.attemptStarted(a.c.Index, c.attempt, hedge)
	w := r.spec.WorkerJob(a.c, r.lease.Gen, c.attempt)
	limit := r.spec.ChunkTimeout.Duration + r.o.cfg.ChunkGrace
	fn := job.FunctionWorker // priced as the function that runs it
	if router, ok := r.o.workers.(functionRouter); ok {
		fn = router.FunctionFor(w)
	}
	r.tr.callStarted(c.start)
	go func() {
		actx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		c.res, c.err = r.o.workers.Execute(actx, w)
		c.end = time.Now()
		c.timedOut = ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded)
		billed := c.err == nil || joberr.AsError(c.err).Code != joberr.CodeThrottled // a refused call is not billed
		r.tr.callEnded(c.start, c.took(), hedge, billed)
		if billed {
			r.tr.invoked(fn, c.took(), c.res.Requests)
		}
		r.hedge.untrack(f, r.rec.lanes)
		if !r.hedge.offer(c.lane) {
			r.rec.lanes <- c.lane
		}
		answers <- c
	}()
}

// won records the calls of a try one of which, calls[k], completed the
// chunk: those that failed before it are failed attempts, those after it
// lost the race and were cancelled (their segments removed).
func (a *chunkAttempts) won(calls []call, k int) job.WorkerResult {
	r, i, win := a.r, a.c.Index, calls[k]
	for j, c := range calls {
		switch {
		case j < k:
			a.failedBeside(c)
		case j == k:
			r.tr.chunkDone(i, win.res)
			r.hedge.finishedIn(win.took())
			a.record(win, job.OutcomeDone)
		default:
			a.record(c, job.OutcomeSuperseded)
			r.removeLoser(r.spec.WorkerJob(a.c, r.lease.Gen, c.attempt), win.res)
		}
	}
	if win.hedge {
		r.log.Info("hedge won", "chunk", i, "attempt", win.attempt)
	}
	return win.res
}

// failedBeside records an attempt that failed while its hedge (or the
// attempt it hedged) went on: the chunk's fate is the other's.
func (a *chunkAttempts) failedBeside(c call) {
	r, i := a.r, a.c.Index
	e := a.errorOf(c)
	r.hedge.failed()
	if e.Code == joberr.CodeThrottled {
		a.record(c, job.OutcomeThrottled)
		return
	}
	r.tr.attemptFailed(i, e)
	a.used++
	a.record(c, job.OutcomeRetried)
}

// errorOf is a failed call's error, naming the chunk.
func (a *chunkAttempts) errorOf(c call) *joberr.Error {
	if c.timedOut {
		limit := a.r.spec.ChunkTimeout.Duration + a.r.o.cfg.ChunkGrace
		return joberr.Errorf(joberr.Retryable, joberr.CodeTimeout, "no answer from the worker within %s", limit).WithChunk(a.c.Index)
	}
	return joberr.AsError(c.err).WithChunk(a.c.Index)
}

// settle decides what follows the try's last failed call: another attempt
// (the error as it is), or none (backoff.Permanent).
func (a *chunkAttempts) settle(c call) (job.WorkerResult, error) {
	r, i := a.r, a.c.Index
	r.hedge.failed()
	a.last, a.lastAttempt = a.errorOf(c), c.attempt
	if a.last.Code == joberr.CodeThrottled {
		if a.throttledSince.IsZero() {
			a.throttledSince = c.start
		}
		if c.attempt == a.next-1 {
			a.next-- // it never ran: its number is free again
		}
		r.tr.attemptUncounted(i, a.next-1)
		a.record(c, job.OutcomeThrottled)
		if time.Since(a.throttledSince) > r.o.cfg.ThrottleBudget {
			return c.res, backoff.Permanent(a.last)
		}
		r.log.Info("worker throttled; retrying without spending an attempt", "chunk", i)
		return c.res, a.last
	}
	a.throttledSince = time.Time{}
	r.tr.attemptFailed(i, a.last)
	r.log.Warn("chunk attempt failed", "chunk", i, "attempt", c.attempt, "kind", a.last.Kind, "code", a.last.Code, "error", a.last.Message)
	a.used++
	if !a.last.Retryable() || a.used >= r.spec.Retry.MaxAttempts {
		a.record(c, job.OutcomeFailed)
		return c.res, backoff.Permanent(a.last)
	}
	a.record(c, job.OutcomeRetried)
	return c.res, a.last
}

// record adds a call to the job's history. Throttled calls spent no
// attempt and are recorded as attempt 0.
func (a *chunkAttempts) record(c call, o job.Outcome) {
	attempt := c.attempt
	if o == job.OutcomeThrottled {
		attempt = 0
	}
	a.r.rec.attempt(job.Attempt{Chunk: a.c.Index, Attempt: attempt, Lane: c.lane, Hedge: c.hedge,
		Start: c.start.UnixMilli(), End: c.end.UnixMilli(), Outcome: o})
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
	case a.last.Code == joberr.CodeThrottled:
		final.Message = fmt.Sprintf("%s (throttled for over %s)", a.last.Message, r.o.cfg.ThrottleBudget)
	case !a.last.Retryable():
		final.Message = fmt.Sprintf("%s (attempt %d, not retryable)", a.last.Message, a.lastAttempt)
	default:
		final.Message = fmt.Sprintf("%s (attempt %d; %d in this run, the limit)", a.last.Message, a.lastAttempt, a.used)
	}
	r.tr.chunkFailed(i, &final)
	return &final
}

// removeLoser deletes what an attempt that lost the race to complete its
// chunk may have uploaded, unless it is the winner's (a loser that found
// the chunk complete answers with the winner's result). Best effort: the
// worker deletes its own when it loses the marker, and the job's clean-up
// and the segment tag's expiry catch what is left.
func (r *run) removeLoser(w job.WorkerJob, winner job.WorkerResult) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), windDown)
	defer cancel()
	if err := r.store.RemoveAttempt(ctx, w, winner); err != nil {
		r.log.Warn("remove a losing attempt's upload", "error", err)
	}
}
