package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/metrics"
)

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
	ids, err := o.store.Active(ctx)
	if err != nil {
		return rep, err
	}
	for _, id := range ids {
		if len(rep.Resumed)+len(rep.Failed) >= opts.Max {
			break
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
	st, err := o.store.Status(ctx, id)
	if err != nil && !errors.Is(err, jobstore.ErrNotFound) {
		return err
	}
	if st != nil && st.State.Final() {
		o.store.MarkEnded(ctx, id)
		rep.Cleared++
		return nil
	}
	if live, err := o.store.LeaseLive(ctx, id); err != nil || live {
		return err
	}
	mark, err := o.store.ActiveMarkOf(ctx, id)
	if err != nil {
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
	if err := o.store.WriteActiveMark(ctx, id, mark); err != nil {
		return err
	}
	if err := opts.Resume(ctx, id); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	o.log.Warn("resumed a job that no orchestrator was running", "jobId", id, "resumes", mark.Resumes)
	rep.Resumed = append(rep.Resumed, id)
	return nil
}

// failStranded records, under the job's lease, that the sweep gave up.
func (o *Orchestrator) failStranded(ctx context.Context, id string, resumes int) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	l, err := o.store.AcquireLease(ctx, id, jobstore.LeaseOptions{TTL: o.cfg.LeaseTTL, OnLost: stop, Log: o.log.With("jobId", id)})
	if errors.Is(err, jobstore.ErrAlreadyRunning) {
		return nil // someone runs it after all
	}
	if err != nil {
		return err
	}
	defer l.Release()
	st, err := o.store.Status(ctx, id)
	if errors.Is(err, jobstore.ErrNotFound) {
		st, err = &job.Status{JobID: id}, nil
	}
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	st.State = job.StateFailed
	st.Error = joberr.Errorf(joberr.Permanent, joberr.CodeInternal,
		"resumed %d times by the sweep without finishing a chunk in between; given up (its finished chunks are kept: run or resume it again once the cause is fixed)", resumes)
	st.Timings.FinishedAt, st.Timings.UpdatedAt = now, now
	if err := o.store.WriteStatus(ctx, st); err != nil {
		return err
	}
	o.store.MarkEnded(ctx, id)
	log := o.log.With("jobId", id)
	log.Error("job failed: stranded", "resumes", resumes)
	metrics.Log(log, metrics.Of(st), o.cfg.MetricsEMF)
	if spec, err := o.store.Accepted(ctx, id); err == nil {
		o.notify(ctx, spec.Webhook, st, log)
	}
	return nil
}
