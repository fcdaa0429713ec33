package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// activeMark is active/<id>: the job was claimed and has not ended. The
// sweep counts here the times it resumed the job without progress.
type activeMark struct {
	ClaimedAt  time.Time `json:"claimedAt"`
	Resumes    int       `json:"resumes,omitempty"`    // sweeps that resumed it since it last made progress
	DoneAtLast int       `json:"doneAtLast,omitempty"` // chunks done at the last resume
	LastResume time.Time `json:"lastResume,omitzero"`
}

// markActive records a claimed job (kept if it exists: its resume count
// goes on).
func (o *Orchestrator) markActive(ctx context.Context, id string) error {
	err := storage.CreateJSON(ctx, o.bucket, job.ActiveKey(id), activeMark{ClaimedAt: time.Now().UTC()})
	if err != nil && !errors.Is(err, storage.ErrExists) {
		return err
	}
	return nil
}

// markEnded removes a job from the sweep's view.
func (o *Orchestrator) markEnded(ctx context.Context, id string) {
	if err := o.bucket.Delete(ctx, job.ActiveKey(id)); err != nil && !storage.IsNotFound(err) {
		o.log.Warn("remove the active mark", "jobId", id, "error", err)
	}
}

// SweepOptions tune a sweep. Zero values take the defaults.
type SweepOptions struct {
	// Max is how many jobs one sweep resumes (default 20): a sweep stays
	// small however many jobs are stranded; the next one takes more.
	Max int
	// MaxResumes is how often the sweep resumes a job that makes no
	// progress before it fails it (default 5).
	MaxResumes int
	// Resume hands a job to a new orchestrator invocation (on Lambda an
	// asynchronous {"jobId"}; on Cloud Run a message on the jobs topic).
	Resume func(ctx context.Context, id string) error
}

// SweepReport says what a sweep did.
type SweepReport struct {
	Checked int      `json:"checked"`
	Resumed []string `json:"resumed,omitempty"`
	Failed  []string `json:"failed,omitempty"`
	Cleared int      `json:"cleared,omitempty"` // marks of ended jobs removed
}

// Sweep finds jobs left behind: claimed, not ended, and with no live lease
// (their orchestrator died, or every retry of the event that would have
// continued them was dropped). It resumes them, a bounded number per
// sweep; a job resumed MaxResumes times without finishing a chunk in
// between is failed, with the reason in its status. Resuming a job that
// another invocation resumes at the same time is harmless: one of them
// gets the lease.
func (o *Orchestrator) Sweep(ctx context.Context, opts SweepOptions) (SweepReport, error) {
	if opts.Resume == nil {
		return SweepReport{}, errors.New("sweep: no way to resume a job here")
	}
	if opts.Max <= 0 {
		opts.Max = 20
	}
	if opts.MaxResumes <= 0 {
		opts.MaxResumes = 5
	}
	var rep SweepReport
	keys, err := storage.List(ctx, o.bucket, job.ActivePrefix)
	if err != nil {
		return rep, err
	}
	for _, key := range keys {
		if len(rep.Resumed)+len(rep.Failed) >= opts.Max {
			break
		}
		id := strings.TrimPrefix(key, job.ActivePrefix)
		if !job.ValidID(id) {
			continue
		}
		rep.Checked++
		if err := o.sweepOne(ctx, id, opts, &rep); err != nil {
			o.log.Error("sweep", "jobId", id, "error", err)
		}
	}
	o.log.Info("sweep done", "checked", rep.Checked, "resumed", len(rep.Resumed), "failed", len(rep.Failed), "cleared", rep.Cleared)
	return rep, nil
}

func (o *Orchestrator) sweepOne(ctx context.Context, id string, opts SweepOptions, rep *SweepReport) error {
	st, err := ReadStatus(ctx, o.bucket, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if st != nil && st.State.Final() {
		o.markEnded(ctx, id)
		rep.Cleared++
		return nil
	}
	if live, err := o.leaseLive(ctx, id); err != nil || live {
		return err
	}
	var mark activeMark
	if err := storage.ReadJSON(ctx, o.bucket, job.ActiveKey(id), &mark); err != nil {
		return err
	}
	done := 0
	if st != nil {
		done = st.ChunksDone
	}
	if done > mark.DoneAtLast {
		mark.Resumes = 0 // it made progress since the last resume
	}
	if mark.Resumes >= opts.MaxResumes {
		if err := o.failStranded(ctx, id, mark.Resumes); err != nil {
			return err
		}
		rep.Failed = append(rep.Failed, id)
		return nil
	}
	mark.Resumes++
	mark.DoneAtLast, mark.LastResume = done, time.Now().UTC()
	if err := storage.WriteJSON(ctx, o.bucket, job.ActiveKey(id), mark); err != nil {
		return err
	}
	if err := opts.Resume(ctx, id); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	o.log.Warn("resumed a job that no orchestrator was running", "jobId", id, "resumes", mark.Resumes)
	rep.Resumed = append(rep.Resumed, id)
	return nil
}

// leaseLive reports whether an orchestrator holds the job's lease.
func (o *Orchestrator) leaseLive(ctx context.Context, id string) (bool, error) {
	gens, err := o.leaseGens(ctx, id)
	if err != nil || len(gens) == 0 {
		return false, err
	}
	var held lease
	err = storage.ReadJSON(ctx, o.bucket, job.LeaseKey(id, gens[len(gens)-1]), &held)
	if storage.IsNotFound(err) {
		return false, nil
	}
	return err == nil && time.Now().Before(held.ExpiresAt), err
}

// failStranded records, under the job's lease, that the sweep gave up.
func (o *Orchestrator) failStranded(ctx context.Context, id string, resumes int) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	l, err := o.acquireLease(ctx, id, false, stop, o.log.With("jobId", id))
	if errors.Is(err, ErrAlreadyRunning) {
		return nil // someone runs it after all
	}
	if err != nil {
		return err
	}
	defer l.release()
	st, err := ReadStatus(ctx, o.bucket, id)
	if errors.Is(err, ErrNotFound) {
		st, err = &job.Status{JobID: id}, nil
	}
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	st.State = job.StateFailed
	st.Error = job.Errorf(job.Permanent, job.CodeInternal,
		"resumed %d times by the sweep without finishing a chunk in between; given up (its finished chunks are kept: run or resume it again once the cause is fixed)", resumes)
	st.Timings.FinishedAt, st.Timings.UpdatedAt = now, now
	if err := storage.WriteJSON(ctx, o.bucket, job.StatusKey(id), st); err != nil {
		return err
	}
	o.markEnded(ctx, id)
	o.log.Error("job failed: stranded", "jobId", id, "resumes", resumes)
	return nil
}
