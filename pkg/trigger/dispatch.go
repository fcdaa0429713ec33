package trigger

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
)

// kind is what an event asks of the orchestrator.
type kind int

const (
	// upload: an object landed in a bucket (or, over HTTP, its key was
	// handed on again). Notifications come at least once, so one that
	// finds the job running is a duplicate; keys not jobs/<id>.json are
	// ignored.
	upload kind = iota + 1
	// start: a direct call to run the job jobs/<id>.json names; any other
	// key is refused.
	start
	// resume: a direct call to go on with an accepted job, most often a
	// continuation.
	resume
)

// event is what a transport decodes its envelope into (an S3 record, a
// Lambda direct invocation, a CloudEvent, a Pub/Sub push, a JSON body):
// all the dispatcher acts on.
type event struct {
	kind   kind
	bucket string // upload: the bucket the object is in
	key    string // upload, start: the object's key
	jobID  string // resume
	// skip says why a notification is not of an upload (a deletion): it
	// is acknowledged and ignored.
	skip string
}

// call reports whether the event is a direct call rather than a
// notification: only a call is subject to the platform's whenHeld.
func (ev event) call() bool { return ev.kind == start || ev.kind == resume }

// whenHeld is the one rule for a direct call (start, resume) that finds
// the job's lease held by another run and the job not done; the transport
// picks it. A notification that does is a duplicate on every platform:
// uploads are delivered at least once. A call is not: a continuation can
// arrive before the run it continues has let its lease go (releasing is
// best effort), so "held" is no proof that someone will finish the job,
// and dropping the call could strand it. The lease (HELIOS_LEASE_TTL,
// 30 s by default) runs out if its holder has stopped; the platforms
// differ in who waits for that.
type whenHeld int

const (
	// retryWhenHeld (Lambda): fail retryably. Lambda delivers a failed
	// asynchronous invocation again a minute or more later, after the lease
	// has run out if nobody renews it, and never while the first delivery
	// still runs, so the invocation need not spend billed time waiting.
	retryWhenHeld whenHeld = iota + 1
	// waitWhenHeld (HTTP, Cloud Run): keep trying up to ResumeWait, then
	// answer that the job runs elsewhere. A push is redelivered while its
	// first delivery still renders (past the ack deadline), so a lease held
	// longer than its TTL is a live run, usually this very message's: a 5xx
	// would have Pub/Sub push it again for as long as that run lasts.
	waitWhenHeld
)

// Outcome is what became of one upload or direct call.
type Outcome struct {
	Key   string    `json:"key,omitempty"`
	JobID string    `json:"jobId,omitempty"`
	State job.State `json:"state,omitempty"`
	Note  string    `json:"note,omitempty"`
}

// fate is how the dispatcher disposed of an event, for the answers that
// say more than the Outcome (Lambda's direct call).
type fate int

const (
	ran        fate = iota // the run ended, or the job was found done
	ignored                // not an event to act on
	continuing             // handed to a new invocation
	elsewhere              // another run holds the job (a duplicate)
	takenOver              // the run lost the job to another
)

// result is what the dispatcher made of one event.
type result struct {
	Outcome
	fate   fate
	status *job.Status // ran: the status the run ended with, or found done
}

const (
	noteContinuing = "continuing in a new invocation"
	noteElsewhere  = "already running elsewhere (duplicate event)"
)

// dispatch acts on one event, whatever carried it: it ignores what is not
// the orchestrator's, runs the job, applies the platform's whenHeld to a
// call that finds the job held elsewhere, and settles the outcome (a run
// stopped by the margin continues in a new invocation). The error is a
// *joberr.Error: permanent if the job cannot run, retryable if the platform
// should deliver the event again; the result says what became of the
// event even then.
func (h *Handler) dispatch(ctx context.Context, ev event, held whenHeld) (result, error) {
	out, err := h.admit(ev)
	if err != nil || out.Note != "" {
		return result{Outcome: out, fate: ignored}, err
	}
	st, err := h.run(ctx, ev)
	if ev.call() && errors.Is(err, jobstore.ErrAlreadyRunning) {
		if done := h.done(ctx, out.JobID); done != nil {
			return finished(out, done), nil
		}
		switch held {
		case retryWhenHeld:
			h.log().Info("job's lease is held; the platform will deliver the call again", "jobId", out.JobID)
			return result{Outcome: out, fate: elsewhere}, joberr.Errorf(joberr.Retryable, joberr.CodeThrottled, "%v", err)
		case waitWhenHeld:
			st, err = h.waitForLease(ctx, ev, out.JobID, err)
		}
	}
	return h.settle(ctx, out, st, err)
}

// admit applies the rules on what the orchestrator acts on: the outcome
// has a note if the event is ignored, an error if it is refused.
func (h *Handler) admit(ev event) (Outcome, error) {
	switch ev.kind {
	case resume:
		return Outcome{Key: layout.JobKey(ev.jobID), JobID: ev.jobID}, nil
	case start:
		id, ok := layout.JobIDFromKey(ev.key)
		if !ok {
			return Outcome{Key: ev.key}, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "key %q: expected %s<id>.json with an id of %s", ev.key, layout.JobsPrefix, layout.IDRule)
		}
		return Outcome{Key: ev.key, JobID: id}, nil
	}
	out := Outcome{Key: ev.key}
	if out.Note = h.ignored(ev); out.Note == "" {
		out.JobID, _ = layout.JobIDFromKey(ev.key)
		return out, nil
	}
	h.log().Info("upload ignored", "bucket", ev.bucket, "key", ev.key, "why", out.Note)
	return out, nil
}

// ignored says why an upload is not one the orchestrator acts on, or "".
func (h *Handler) ignored(ev event) string {
	_, ok := layout.JobIDFromKey(ev.key)
	switch {
	case ev.skip != "":
		return "ignored: " + ev.skip
	case h.BucketName != "" && ev.bucket != h.BucketName:
		return "ignored: bucket " + ev.bucket + " is not " + h.BucketName
	case !strings.HasPrefix(ev.key, layout.JobsPrefix) || !strings.HasSuffix(ev.key, ".json"):
		return "ignored: not under " + layout.JobsPrefix + " with suffix .json"
	case !ok:
		return "ignored: not " + layout.JobsPrefix + "<id>.json with an id of " + layout.IDRule
	}
	return ""
}

// run runs the job an admitted event names, once.
func (h *Handler) run(ctx context.Context, ev event) (*job.Status, error) {
	if ev.kind == resume {
		return h.Orch.Resume(ctx, ev.jobID, orchestrator.RunOptions{})
	}
	return h.Orch.RunKey(ctx, ev.key, orchestrator.RunOptions{})
}

// waitForLease runs a call again every 2 s while the job's lease stays
// held, up to ResumeWait (waitWhenHeld), unless the job turns out done.
func (h *Handler) waitForLease(ctx context.Context, ev event, id string, err error) (*job.Status, error) {
	var st *job.Status
	for until := time.Now().Add(h.resumeWait()); time.Now().Before(until); {
		select {
		case <-ctx.Done():
			return st, err
		case <-time.After(2 * time.Second):
		}
		if st, err = h.run(ctx, ev); !errors.Is(err, jobstore.ErrAlreadyRunning) || h.done(ctx, id) != nil {
			break
		}
	}
	return st, err
}

// settle turns the end of a run into a result. A job held elsewhere (the
// lease still held, or lost to another run) is a duplicate, unless the
// job is done.
func (h *Handler) settle(ctx context.Context, out Outcome, st *job.Status, err error) (result, error) {
	switch {
	case h.continued(ctx, out.JobID, err):
		out.Note = noteContinuing
		return result{Outcome: out, fate: continuing}, nil
	case errors.Is(err, jobstore.ErrAlreadyRunning), errors.Is(err, jobstore.ErrLeaseLost):
		// The run that finished may still hold the lease for the moment
		// between writing its final status and letting the lease go: the
		// job is then done, not running, whatever delivered the event.
		if done := h.done(ctx, out.JobID); done != nil {
			return finished(out, done), nil
		}
		out.Note = noteElsewhere
		if errors.Is(err, jobstore.ErrLeaseLost) {
			h.log().Info("another orchestrator took the job over", "jobId", out.JobID)
			return result{Outcome: out, fate: takenOver}, nil
		}
		h.log().Info("job already running; duplicate event ignored", "jobId", out.JobID)
		return result{Outcome: out, fate: elsewhere}, nil
	case err != nil:
		e := runError(err)
		out.Note = e.Error()
		h.log().Error("job did not run", "key", out.Key, "jobId", out.JobID, "error", e)
		return result{Outcome: out, fate: ran}, e
	}
	out.State = st.State
	return result{Outcome: out, fate: ran, status: st}, nil
}

// finished is the result for a job found done.
func finished(out Outcome, done *job.Status) result {
	out.State = done.State
	return result{Outcome: out, fate: ran, status: done}
}

// done returns the job's status if it says done, nil if not or unknown.
func (h *Handler) done(ctx context.Context, id string) *job.Status {
	if h.Jobs == nil {
		return nil
	}
	if st, err := h.Jobs.Status(ctx, id); err == nil && st.State == job.StateDone {
		return st
	}
	return nil
}

// errStopping is the cause of a run's end when the process is told to stop.
var errStopping = errors.New("the process is shutting down")

// continued hands a run stopped by the margin (or by the process shutting
// down) to a new invocation and reports whether it did.
func (h *Handler) continued(ctx context.Context, id string, err error) bool {
	stopped := errors.Is(err, context.DeadlineExceeded) ||
		(errors.Is(err, context.Canceled) && errors.Is(context.Cause(ctx), errStopping))
	if h.Continue == nil || !stopped || !layout.ValidID(id) {
		return false
	}
	if cerr := h.Continue(context.WithoutCancel(ctx), Invoke{JobID: id}); cerr != nil {
		h.log().Error("could not continue the job in a new invocation", "jobId", id, "error", cerr)
		return false
	}
	h.log().Info("time limit near: the job continues in a new invocation", "jobId", id)
	return true
}

// runError classifies an error from running a job for the platform: a spec
// that cannot run is permanent; anything else (storage, an interrupted run)
// is worth the platform's retry of the event.
func runError(err error) error {
	var ve *joberr.ValidationError
	switch {
	case errors.As(err, &ve):
		return joberr.AsError(err)
	case errors.Is(err, jobstore.ErrConflict), errors.Is(err, jobstore.ErrNotFound):
		return joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "%v", err)
	}
	return joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "%v", err)
}

// sweep resumes jobs left behind (orchestrator.Sweep), through Continue:
// what the scheduled sweep (EventBridge Scheduler, Cloud Scheduler) calls.
// It acts on no one job, so it is no event of the dispatcher's.
func (h *Handler) sweep(ctx context.Context) (orchestrator.SweepReport, error) {
	if h.Continue == nil {
		return orchestrator.SweepReport{}, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "this orchestrator cannot hand jobs to new invocations, so it cannot sweep")
	}
	rep, err := h.Orch.Sweep(ctx, orchestrator.SweepOptions{
		Resume: func(ctx context.Context, id string) error { return h.Continue(ctx, Invoke{JobID: id}) },
	})
	if err != nil {
		return rep, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "sweep: %v", err)
	}
	return rep, nil
}
