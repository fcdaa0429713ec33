package orchestrator

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/helios-project/infrastructure/pkg/cost"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/periodic"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// tracker owns a job's Status during a run and writes status.json: at once
// on state changes, and at most every interval while chunks complete, so a
// 10,000-chunk job does not rewrite a large document 10,000 times.
type tracker struct {
	store    *jobstore.Store
	progress func(job.Status)
	model    cost.Model
	runStart time.Time
	ops      *storage.Ops // this run's own storage requests

	// guard, if set, says whether this run may still write the status (its
	// lease is surely still its own).
	guard func() bool

	writeMu   sync.Mutex // orders writes so an older snapshot never lands last
	mu        sync.Mutex
	st        job.Status
	dirty     bool
	lastWrite time.Time
	usage     job.Usage // earlier runs, and this run's invocations that ended
	inflight  int       // invocations running
	started   int64     // the sum of their start times, in Unix ns
}

// heartbeat is the longest a running job goes without writing its status,
// so a reader can tell a live job from a stopped one by timings.updatedAt.
const heartbeat = time.Minute

func newTracker(store *jobstore.Store, spec *job.Spec, chunks []job.Chunk, prev *job.Status, progress func(job.Status), model cost.Model, ops *storage.Ops) *tracker {
	now := time.Now().UTC()
	t := &tracker{store: store, progress: progress, model: model, runStart: now, ops: ops}
	st := job.Status{
		JobID:       spec.ID,
		State:       job.StatePending,
		TotalFrames: spec.Metadata.TotalFrames,
		ChunksTotal: len(chunks),
		Chunks:      make([]job.ChunkStatus, len(chunks)),
		Timings:     job.Timings{CreatedAt: now, StartedAt: now},
	}
	for i, c := range chunks {
		st.Chunks[i] = job.ChunkStatus{Index: c.Index, Start: c.Start, Count: c.Count, State: job.StatePending}
	}
	if prev != nil && len(prev.Chunks) == len(chunks) {
		// Resuming: keep the history, so attempt numbers keep counting up and
		// never reuse a segment key of an earlier run.
		st.Timings.CreatedAt = prev.Timings.CreatedAt
		st.WorkerSeconds = prev.WorkerSeconds
		st.Hedges, st.HedgeWorkerSeconds = prev.Hedges, prev.HedgeWorkerSeconds
		t.usage = prev.Usage
		for i := range st.Chunks {
			st.Chunks[i].Attempts = prev.Chunks[i].Attempts
			st.Chunks[i].Hedges = prev.Chunks[i].Hedges
		}
	}
	t.st = st
	return t
}

// update changes the status under the lock and reports progress.
func (t *tracker) update(f func(st *job.Status)) {
	t.mu.Lock()
	f(&t.st)
	t.dirty = true
	snap := t.st
	snap.Chunks = nil
	t.mu.Unlock()
	if t.progress != nil {
		t.progress(snap)
	}
}

func (t *tracker) attempts(i int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st.Chunks[i].Attempts
}

func (t *tracker) attemptStarted(i, attempt int, hedge bool) {
	t.update(func(st *job.Status) {
		st.Chunks[i].State = job.StateRunning
		st.Chunks[i].Attempts = attempt
		if hedge {
			st.Chunks[i].Hedges++
			st.Hedges++
		}
	})
}

// attemptUncounted records that an invocation never ran (throttled), or was abandoned
// before it finished: the chunk is back to its previous attempt count.
func (t *tracker) attemptUncounted(i, attempts int) {
	t.update(func(st *job.Status) {
		st.Chunks[i].Attempts = attempts
		st.Chunks[i].State = job.StatePending
	})
}

func (t *tracker) attemptFailed(i int, e *joberr.Error) {
	t.update(func(st *job.Status) { st.Chunks[i].Error = e })
}

func (t *tracker) chunkDone(i int, r job.WorkerResult) {
	t.update(func(st *job.Status) { t.markDone(st, i, r) })
}

func (t *tracker) markDone(st *job.Status, i int, r job.WorkerResult) {
	c := &st.Chunks[i]
	if c.State == job.StateDone {
		return
	}
	c.State, c.SegmentKey, c.DurationMs, c.Error = job.StateDone, r.SegmentKey, r.DurationMs, nil
	warnings := r.Warnings
	if st.ChunksTotal == 1 {
		warnings = slices.DeleteFunc(slices.Clone(warnings), job.IsLossyAudioWarning)
	}
	st.AddWarnings(c.Index, warnings)
	st.ChunksDone++
	st.FramesDone += c.Count
}

// chunkDamaged puts a done chunk whose segment turned out damaged back to
// pending, saying why.
func (t *tracker) chunkDamaged(i int, why *joberr.Error) {
	t.update(func(st *job.Status) {
		c := &st.Chunks[i]
		if c.State == job.StateDone {
			st.ChunksDone--
			st.FramesDone -= c.Count
		}
		c.State, c.SegmentKey, c.Error = job.StatePending, "", why
	})
}

// chunkStopped puts a chunk abandoned by a cancelled dispatch back to pending.
func (t *tracker) chunkStopped(i int) {
	t.update(func(st *job.Status) {
		if st.Chunks[i].State == job.StateRunning {
			st.Chunks[i].State = job.StatePending
		}
	})
}

func (t *tracker) chunkFailed(i int, e *joberr.Error) {
	t.update(func(st *job.Status) {
		st.Chunks[i].State = job.StateFailed
		st.Chunks[i].Error = e
		st.ChunksFailed++
	})
}

// invoked records what one invocation of fn cost: its time, billed as the
// platform rounds it, and the storage requests it reported.
func (t *tracker) invoked(fn string, took time.Duration, requests job.RequestCounts) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.usage = t.usage.Add(job.Usage{Requests: requests,
		Compute: map[string]job.Compute{fn: {Seconds: t.model.Billed(took).Seconds(), Invocations: 1}}})
}

// callStarted and callEnded bracket an invocation, so the budget sees
// the time of the ones still running.
func (t *tracker) callStarted(start time.Time) {
	t.mu.Lock()
	t.inflight++
	t.started += start.UnixNano()
	t.mu.Unlock()
}

// callEnded also adds the call's time to the worker time, whatever its
// outcome (it was billed; a throttled call was not), and to the hedges'
// share if it was one: at once, so the budget never loses sight of it.
func (t *tracker) callEnded(start time.Time, took time.Duration, hedge, billed bool) {
	t.update(func(st *job.Status) {
		t.inflight--
		t.started -= start.UnixNano()
		if !billed {
			return
		}
		st.WorkerSeconds += took.Seconds()
		if hedge {
			st.HedgeWorkerSeconds += took.Seconds()
		}
	})
}

// price fills in the status's usage and cost as of now: this run's own
// time and requests so far on top of what ended before. t.mu is held.
func (t *tracker) price(now time.Time) {
	run := job.Usage{Requests: t.ops.Counts(),
		Compute: map[string]job.Compute{job.FunctionOrchestrator: {Seconds: t.model.Billed(now.Sub(t.runStart)).Seconds(), Invocations: 1}}}
	t.st.Usage = t.usage.Add(run)
	t.st.Cost = t.model.Price(t.st.Usage)
	t.st.EstimatedCostUSD = t.st.Cost.USD
}

// overBudget returns the error that stops a job which reached b, counting
// the time of the invocations still running as worker time; nil if it has
// not.
func (t *tracker) overBudget(b, ceiling job.Budget, now time.Time) *joberr.Error {
	if b == (job.Budget{}) {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.price(now)
	running := time.Duration(int64(t.inflight)*now.UnixNano() - t.started).Seconds()
	ws := t.st.WorkerSeconds + running
	usd := t.st.Cost.USD + running*t.model.PerSecond(job.FunctionWorker)
	var why, variable string
	switch {
	case b.WorkerSeconds > 0 && ws >= b.WorkerSeconds:
		why = fmt.Sprintf("the job used %.1f worker-seconds of its budget of %g", ws, b.WorkerSeconds)
		if b.WorkerSeconds == ceiling.WorkerSeconds {
			variable = "HELIOS_BUDGET_WORKER_SECONDS"
		}
	case b.USD > 0 && usd >= b.USD:
		why = fmt.Sprintf("the job's cost reached $%.4f of its budget of $%g", usd, b.USD)
		if b.USD == ceiling.USD {
			variable = "HELIOS_BUDGET_USD"
		}
	default:
		return nil
	}
	if variable != "" {
		// The deployment's cap: no job's budget lifts it.
		return joberr.Errorf(joberr.Permanent, joberr.CodeBudgetExceeded,
			"%s, the deployment's cap (%s), which a job's budget cannot raise. Its finished chunks (%d of %d) are kept: raise the cap and run the job again",
			why, variable, t.st.ChunksDone, t.st.ChunksTotal)
	}
	return joberr.Errorf(joberr.Permanent, joberr.CodeBudgetExceeded,
		"%s. Its finished chunks (%d of %d) are kept: raise the budget (helios job budget %s --usd N or --worker-seconds N) and run the job again",
		why, t.st.ChunksDone, t.st.ChunksTotal, t.st.JobID)
}

// snapshot returns a deep copy of the status, priced as last written.
func (t *tracker) snapshot() *job.Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.st
	st.Chunks = append([]job.ChunkStatus(nil), t.st.Chunks...)
	return &st
}

// write stores the status if it changed since the last write.
func (t *tracker) write(ctx context.Context) error {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	if t.guard != nil && !t.guard() {
		return jobstore.ErrLeaseNotRenewed
	}
	t.mu.Lock()
	if !t.dirty {
		t.mu.Unlock()
		return nil
	}
	t.st.Timings.UpdatedAt = time.Now().UTC()
	t.price(t.st.Timings.UpdatedAt)
	data, err := jobstore.EncodeStatus(&t.st)
	t.dirty, t.lastWrite = false, time.Now()
	t.mu.Unlock()
	if err != nil {
		return err
	}
	if err := t.store.WriteEncodedStatus(ctx, t.st.JobID, data); err != nil {
		t.mu.Lock()
		t.dirty = true
		t.mu.Unlock()
		return err
	}
	return nil
}

// setState changes the job state and writes the status at once.
func (t *tracker) setState(ctx context.Context, s job.State, f func(st *job.Status)) error {
	t.update(func(st *job.Status) {
		st.State = s
		if f != nil {
			f(st)
		}
	})
	return t.write(ctx)
}

// flushEvery writes the status every interval until stop is called.
func (t *tracker) flushEvery(ctx context.Context, interval time.Duration, onErr func(error)) (stop func()) {
	return periodic.Every(ctx, interval, func(ctx context.Context) bool {
		t.mu.Lock()
		if time.Since(t.lastWrite) > heartbeat {
			t.dirty = true
		}
		t.mu.Unlock()
		if err := t.write(ctx); err != nil && ctx.Err() == nil {
			onErr(err)
		}
		return true
	})
}
