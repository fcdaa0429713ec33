package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/metrics"
	"github.com/helios-project/infrastructure/pkg/periodic"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// errCancelRequested is the cause of a render stopped by the cancel object.
var errCancelRequested = errors.New("cancellation requested")

// Run claims a prepared spec and runs the job until it is done, failed or
// cancelled, and returns the final status. A job that fails is not a Go
// error: the status says why. Errors are for what stopped the orchestrator
// itself: jobstore.ErrConflict, ErrAlreadyRunning or ErrLeaseLost, storage
// failures, or ctx ending (the status written so far then allows a resume).
func (o *Orchestrator) Run(ctx context.Context, spec *job.Spec, opts RunOptions) (*job.Status, error) {
	r, err := o.claim(ctx, spec, opts)
	if err != nil {
		return nil, err
	}
	defer r.release()
	return r.live()
}

// run is one run of one job, from its claim to a final or interrupted
// state. Its methods read in the order a job lives: claim, live (plan,
// render), stitch (stitch.go), finish.
type run struct {
	o     *Orchestrator
	store *jobstore.Store
	spec  *job.Spec
	log   *slog.Logger

	// caller is the caller's context: its end (Ctrl-C, a function about to
	// time out) interrupts the run, which leaves its progress for a resume.
	// ctx ends with it, and also when the lease is lost (lose).
	caller context.Context
	ctx    context.Context
	lose   context.CancelCauseFunc

	chunks []job.Chunk // the plan
	lease  *jobstore.Lease
	prev   *job.Status // the status an earlier run left, if any
	tr     *tracker
	rec    *recorder // invocations, for the job's history
	hedge  *hedger   // while rendering, if the job is hedged; nil methods do nothing
	budget job.Budget

	// stopDispatch ends the render with a cause (a cancel request, the
	// budget reached).
	stopDispatch context.CancelCauseFunc
}

// claim accepts the spec, takes the job's lease, marks the job active and
// reads what an earlier run left.
func (o *Orchestrator) claim(ctx context.Context, spec *job.Spec, opts RunOptions) (*run, error) {
	if err := o.store.Accept(ctx, spec); err != nil {
		return nil, err
	}
	r := &run{o: o, store: o.store, spec: spec, log: o.log.With("jobId", spec.ID), caller: ctx}
	ops := new(storage.Ops) // this run's own storage requests, for the job's cost
	r.ctx, r.lose = context.WithCancelCause(storage.WithOps(ctx, ops))
	lease, err := o.store.AcquireLease(r.ctx, spec.ID, jobstore.LeaseOptions{
		TTL: o.cfg.LeaseTTL, Exclusive: opts.Exclusive, OnLost: r.lose, Log: r.log})
	if err != nil {
		r.lose(nil)
		return nil, err
	}
	r.lease = lease
	if err := o.store.MarkActive(r.ctx, spec.ID); err != nil {
		r.release()
		return nil, fmt.Errorf("mark job %q active: %w", spec.ID, err)
	}
	r.prev, err = o.store.Status(r.ctx, spec.ID)
	if err != nil && !errors.Is(err, jobstore.ErrNotFound) {
		r.release()
		return nil, err
	}
	raised, err := o.store.RaisedBudget(r.ctx, spec.ID)
	if err != nil {
		r.release()
		return nil, err
	}
	r.budget = cmp.Or(raised, spec.Budget).Within(o.cfg.Budget)
	r.chunks = spec.Plan()
	r.tr = newTracker(o.store, spec, r.chunks, r.prev, opts.Progress, o.cfg.Cost, ops)
	r.tr.guard = lease.Valid
	r.rec = newRecorder(spec.ID, o.cfg.Concurrency)
	return r, nil
}

// release lets the lease go.
func (r *run) release() {
	r.lease.Release()
	r.lose(nil)
}

// live takes the claimed job from where it is to its end.
func (r *run) live() (*job.Status, error) {
	id := r.spec.ID
	if r.prev != nil && r.prev.State == job.StateDone {
		if ok, err := r.store.Exists(r.ctx, r.prev.Output); err == nil && ok {
			r.log.Info("job already done", "output", r.prev.Output)
			r.store.MarkEnded(r.ctx, id)
			return r.prev, nil
		}
	}
	results, pending, err := r.plan()
	if err != nil {
		return nil, err
	}
	if cancelled, err := r.store.CancelRequested(r.ctx, id); err != nil {
		return nil, err
	} else if cancelled {
		// After plan, so the status counts the chunks finished before.
		return r.finish(job.StateCancelled, joberr.Errorf(joberr.Permanent, joberr.CodeCancelled, "cancelled before rendering"), nil)
	}
	if err := r.tr.setState(r.ctx, job.StateRunning, nil); err != nil {
		return nil, fmt.Errorf("write status: %w", err)
	}
	r.log.Info("dispatching", "chunks", len(r.chunks), "pending", len(pending), "concurrency", r.o.cfg.Concurrency)
	// The status is written through the stitch too: a reader tells a live
	// job from a stopped one by timings.updatedAt.
	stopFlush := r.tr.flushEvery(r.ctx, r.o.cfg.StatusInterval, func(err error) { r.log.Warn("status write failed", "error", err) })
	defer stopFlush()

	fresh, err := r.render(pending)
	for i, res := range fresh {
		results[i] = res
	}
	switch {
	case errors.Is(err, errCancelRequested):
		return r.finish(job.StateCancelled, joberr.Errorf(joberr.Permanent, joberr.CodeCancelled, "cancelled by request"), nil)
	case r.ctx.Err() != nil:
		return r.interrupted()
	case err != nil:
		return r.finish(job.StateFailed, joberr.AsError(err), nil)
	}
	// A cancel that arrived as the last chunk finished still stops the stitch.
	if cancelled, err := r.store.CancelRequested(r.ctx, id); err == nil && cancelled {
		return r.finish(job.StateCancelled, joberr.Errorf(joberr.Permanent, joberr.CodeCancelled, "cancelled by request"), nil)
	}
	r.tr.update(func(st *job.Status) {
		st.Timings.RenderedAt = time.Now().UTC()
		st.Timings.RenderMs = st.Timings.RenderedAt.Sub(st.Timings.StartedAt).Milliseconds()
	})
	return r.stitch(results)
}

// plan splits the job's chunks into those an earlier run completed (their
// results, from the completion markers) and those still to render.
func (r *run) plan() (map[int]job.WorkerResult, []job.Chunk, error) {
	results, err := r.store.Markers(r.ctx, r.spec)
	if err != nil {
		return nil, nil, err
	}
	var pending []job.Chunk
	r.tr.update(func(st *job.Status) {
		for _, c := range r.chunks {
			if res, ok := results[c.Index]; ok {
				r.tr.markDone(st, c.Index, res)
			} else {
				pending = append(pending, c)
			}
		}
	})
	return results, pending, nil
}

// render renders the pending chunks with bounded concurrency, watching for
// a cancel request. The first chunk that fails for good stops the others:
// the job has failed, and rendering the rest would only cost money. The
// error is errCancelRequested if the job was cancelled.
func (r *run) render(pending []job.Chunk) (map[int]job.WorkerResult, error) {
	ctx, cancel := context.WithCancelCause(r.ctx)
	defer cancel(nil)
	r.stopDispatch = cancel
	stopWatch := r.watch(ctx, cancel)
	var mu sync.Mutex
	results := make(map[int]job.WorkerResult, len(pending))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.o.cfg.Concurrency)
	hedging := r.startHedging(gctx, len(pending))
	for _, c := range pending {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			// g.Go waited for a slot: the run may have stopped meanwhile.
			if err := gctx.Err(); err != nil {
				return err
			}
			res, err := r.renderChunk(gctx, c)
			if err != nil {
				return err
			}
			mu.Lock()
			results[c.Index] = res
			mu.Unlock()
			return nil
		})
	}
	r.hedge.drain()
	err := g.Wait()
	cancel(nil)
	<-hedging
	r.hedge = nil
	stopWatch()
	if err == nil {
		return results, nil // every chunk is in, whatever stopped after
	}
	return results, stopCause(ctx, err)
}

// watch polls, while the render runs, for a cancel request, which cancels
// it with errCancelRequested, and for the budget (the invocations running
// count: one that runs away is stopped here). It returns what stops it.
func (r *run) watch(ctx context.Context, cancel context.CancelCauseFunc) (stop func()) {
	return periodic.Every(ctx, r.o.cfg.CancelPollInterval, func(ctx context.Context) bool {
		if ok, err := r.store.CancelRequested(ctx, r.spec.ID); err == nil && ok {
			r.log.Info("cancel requested")
			cancel(errCancelRequested)
			return false
		}
		return r.overBudget() == nil
	})
}

// startHedging starts the hedger of a hedged job's render of chunks
// chunks, until ctx ends; the channel is closed once it has stopped.
func (r *run) startHedging(ctx context.Context, chunks int) <-chan struct{} {
	if r.spec.Hedged() {
		r.hedge = newHedger(r.o.cfg.Hedge, chunks)
	}
	hedging := make(chan struct{})
	go func() {
		defer close(hedging)
		if r.hedge != nil {
			r.hedge.run(ctx, r.rec.lanes)
		}
	}()
	return hedging
}

// stopCause is the error of a render that stopped with err: the reason the
// dispatch was stopped for (a cancel request, the budget), if any.
func stopCause(ctx context.Context, err error) error {
	var stopped *joberr.Error
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errCancelRequested):
		return errCancelRequested
	case errors.As(cause, &stopped) && stopped.Code == joberr.CodeBudgetExceeded:
		return stopped
	}
	return err
}

// overBudget returns the reason the job stops if it has reached its
// budget, and stops the dispatch with it; nil if it has not.
func (r *run) overBudget() *joberr.Error {
	e := r.tr.overBudget(r.budget, r.o.cfg.Budget, time.Now())
	if e == nil {
		return nil
	}
	r.log.Warn("budget reached; dispatch stops", "error", e.Message)
	if r.stopDispatch != nil {
		r.stopDispatch(e)
	}
	return e
}

// interrupted ends a run whose context ended. The caller's end (Ctrl-C, a
// function about to time out) leaves the progress written for a resume. A
// lease taken over writes nothing: the job is another orchestrator's now.
// A lease not renewed in time writes nothing either, and is reported as an
// interruption so the job gets resumed.
func (r *run) interrupted() (*job.Status, error) {
	id := r.spec.ID
	switch cause := context.Cause(r.ctx); {
	case errors.Is(cause, jobstore.ErrLeaseLost):
		return r.tr.snapshot(), fmt.Errorf("job %q: %w", id, jobstore.ErrLeaseLost)
	case errors.Is(cause, jobstore.ErrLeaseNotRenewed):
		return r.tr.snapshot(), fmt.Errorf("job %q interrupted: %w", id, jobstore.ErrLeaseNotRenewed)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), windDown)
	defer cancel()
	_ = r.tr.write(wctx)
	r.rec.save(wctx, r)
	return r.tr.snapshot(), fmt.Errorf("job %q interrupted: %w", id, r.caller.Err())
}

// windDown bounds the writes a stopping run still makes, so they fit in the
// margin before a function's deadline.
const windDown = 10 * time.Second

// stopped maps an error of a run whose context has ended to the reason it
// ended (interrupted, lease lost), and leaves other errors as they are.
func (r *run) stopped(err error) (*job.Status, error) {
	if r.ctx.Err() != nil {
		return r.interrupted()
	}
	return nil, err
}

// finish records a final state, and takes the job out of the sweep's view.
func (r *run) finish(state job.State, e *joberr.Error, also func(*job.Status)) (*job.Status, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), windDown)
	defer cancel()
	r.rec.save(ctx, r) // first, so the final status counts its requests
	err := r.tr.setState(ctx, state, func(st *job.Status) {
		st.Error = e
		now := time.Now().UTC()
		st.Timings.FinishedAt = now
		st.Timings.TotalMs = now.Sub(st.Timings.StartedAt).Milliseconds()
		if also != nil {
			also(st)
		}
	})
	st := r.tr.snapshot()
	r.log.Info("job finished", "state", st.State, "chunksDone", st.ChunksDone, "error", e)
	if err != nil {
		return st, fmt.Errorf("write final status: %w", err)
	}
	r.store.MarkEnded(ctx, st.JobID)
	metrics.Log(r.log, metrics.Of(st), r.o.cfg.MetricsEMF)
	r.notify(st)
	return st, nil
}

// webhookTimeout bounds the delivery of a job's end, retries included.
const webhookTimeout = 3 * time.Minute

// webhookEvent is the body of a webhook delivery: the status without its
// per-chunk record, its type (job.done, job.failed, job.cancelled) and a
// signed URL of the output when there is one.
func webhookEvent(st *job.Status, outputURL string) ([]byte, error) {
	summary := *st
	summary.Chunks = nil
	extra := map[string]any{"type": "job." + string(st.State)}
	if outputURL != "" {
		extra["outputUrl"] = outputURL
	}
	return (&summary).MarshalWithFields(extra)
}

// notify sends the spec's webhook for the job's final state, once per
// outcome. A delivery that fails is logged; the job's outcome stands.
func (r *run) notify(st *job.Status) { r.o.notify(r.caller, r.spec.Webhook, st, r.log) }

// notify delivers st to webhookURL (if any) within caller's deadline: a
// delivery the platform cuts off would be lost, its outcome claimed.
func (o *Orchestrator) notify(caller context.Context, webhookURL string, st *job.Status, log *slog.Logger) {
	if webhookURL == "" {
		return
	}
	log = log.With("state", st.State)
	if o.cfg.Webhooks == nil {
		log.Error("webhook not sent: the deployment has no signing key (HELIOS_WEBHOOK_SECRET)")
		return
	}
	limit := webhookTimeout
	if d, ok := caller.Deadline(); ok {
		limit = min(limit, time.Until(d)-windDown)
	}
	if limit <= 0 {
		log.Error("webhook not sent: no time left before the function's deadline")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(caller), limit)
	defer cancel()
	if first, err := o.store.ClaimWebhook(ctx, st.JobID, st.State); err != nil || !first {
		log.Info("webhook not sent again", "sentBefore", !first, "error", err)
		return
	}
	var outputURL string
	if st.State == job.StateDone && st.Output != "" {
		if u, err := o.store.OutputURL(ctx, st.Output, webhookURLExpiry); err == nil {
			outputURL = u
		}
	}
	body, err := webhookEvent(st, outputURL)
	if err != nil {
		log.Error("webhook not sent", "error", err)
		return
	}
	if err := o.cfg.Webhooks.Send(ctx, webhookURL, st.JobID+"."+string(st.State), body); err != nil {
		log.Error("webhook not delivered", "error", err)
		return
	}
	log.Info("webhook delivered")
}

// webhookURLExpiry is how long the signed output URL in a webhook works.
const webhookURLExpiry = 24 * time.Hour
