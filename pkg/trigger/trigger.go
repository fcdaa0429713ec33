// Package trigger decodes what reaches the orchestrator function and acts on
// it. One Lambda entry point recognises three shapes:
//
//   - an S3 event: ObjectCreated records for jobs/<id>.json start those jobs
//     (keys are URL-decoded; records outside jobs/ or for another bucket are
//     logged and ignored);
//   - an HTTP request through a Function URL or an API Gateway HTTP API
//     (payload format 2.0), served by the same net/http API (API) that runs
//     anywhere else: POST /jobs, GET /jobs/{id}, DELETE /jobs/{id};
//   - a direct invocation {"jobId": "<id>"} (resume) or {"key": "jobs/<id>.json"}.
package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/serve"
)

// Orchestrator is what the triggers need of the orchestrator.
type Orchestrator interface {
	RunKey(ctx context.Context, key string, opts orchestrator.RunOptions) (*job.Status, error)
	Resume(ctx context.Context, id string, opts orchestrator.RunOptions) (*job.Status, error)
	Sweep(ctx context.Context, opts orchestrator.SweepOptions) (orchestrator.SweepReport, error)
}

// DefaultMaxBody bounds an HTTP request body (Lambda's own limit is 6 MB).
const DefaultMaxBody = 5 << 20

// Handler is the orchestrator function.
type Handler struct {
	Orch Orchestrator
	// Jobs is the store the API submits to, looks up and cancels in.
	Jobs *jobstore.Store
	// BucketName is the bucket S3 events must come from; "" accepts any.
	BucketName string
	// MaxBody bounds HTTP request bodies; 0 means DefaultMaxBody.
	MaxBody int64
	// Margin is how long before the function's deadline a run stops, saves
	// its progress and releases its lease (default 15s).
	Margin time.Duration
	// Continue, if set, hands an interrupted job to a fresh invocation
	// (on Lambda: this function, invoked asynchronously with {"jobId"}; on
	// Cloud Run: {"jobId"} published to the topic that pushes to this
	// service), so a job may run longer than one invocation. Without it,
	// the invocation fails and the platform's retry of the event resumes
	// the job.
	Continue func(ctx context.Context, in Invoke) error
	// RequestTimeout is the platform's limit on one HTTP request (Cloud
	// Run's service timeout): an event served over HTTP stops Margin before
	// it. Zero: no limit (Lambda's deadline comes with the invocation).
	RequestTimeout time.Duration
	// Stopping, if set, ends when the process is told to stop (SIGTERM:
	// Cloud Run then kills it 10 s later). Runs served over HTTP stop with
	// it, save their progress and continue in a new request.
	Stopping context.Context
	// ResumeWait is how long a resume over HTTP that finds the job's lease
	// held keeps trying before it answers that the job runs elsewhere: a
	// continuation can arrive before the run it continues has let its lease
	// go (default 40s, more than the lease's 30 s TTL).
	ResumeWait time.Duration
	Log        *slog.Logger
}

// Lambda returns the byte-level handler served on Lambda.
func (h *Handler) Lambda() serve.Handler[json.RawMessage, any] {
	return h.handle
}

// shape is just enough of an event to tell which one it is.
type shape struct {
	Records []struct {
		EventSource string `json:"eventSource"`
	} `json:"Records"`
	RequestContext *struct {
		HTTP *struct {
			Method string `json:"method"`
		} `json:"http"`
		HTTPMethod string `json:"httpMethod"`
	} `json:"requestContext"`
	JobID string           `json:"jobId"`
	Key   string           `json:"key"`
	Sweep *json.RawMessage `json:"sweep"`
}

func (h *Handler) handle(ctx context.Context, payload json.RawMessage) (any, error) {
	var s shape
	if err := json.Unmarshal(payload, &s); err != nil {
		return nil, job.Errorf(job.Permanent, job.CodeInvalid, "event is not a JSON object: %v", err)
	}
	switch {
	case len(s.Records) > 0 && s.Records[0].EventSource == "aws:s3":
		return h.s3(ctx, payload)
	case s.RequestContext != nil && s.RequestContext.HTTP != nil && s.RequestContext.HTTP.Method != "":
		return h.httpV2(ctx, payload)
	case s.RequestContext != nil && s.RequestContext.HTTPMethod != "":
		return nil, job.Errorf(job.Permanent, job.CodeInvalid,
			"API Gateway REST (payload format 1.0) events are not supported: use a Function URL or an HTTP API with payload format 2.0")
	case s.JobID != "" || s.Key != "":
		return h.direct(ctx, Invoke{JobID: s.JobID, Key: s.Key})
	case s.Sweep != nil:
		return h.sweep(ctx)
	}
	return nil, job.Errorf(job.Permanent, job.CodeInvalid,
		`unrecognised event: expected an S3 event, an HTTP request (payload format 2.0), {"jobId": "<id>"}, {"key": "jobs/<id>.json"} or {"sweep": {}}`)
}

// sweep resumes jobs left behind (orchestrator.Sweep), through Continue:
// what the scheduled sweep (EventBridge Scheduler, Cloud Scheduler) calls.
func (h *Handler) sweep(ctx context.Context) (orchestrator.SweepReport, error) {
	if h.Continue == nil {
		return orchestrator.SweepReport{}, job.Errorf(job.Permanent, job.CodeInvalid, "this orchestrator cannot hand jobs to new invocations, so it cannot sweep")
	}
	rep, err := h.Orch.Sweep(ctx, orchestrator.SweepOptions{
		Resume: func(ctx context.Context, id string) error { return h.Continue(ctx, Invoke{JobID: id}) },
	})
	if err != nil {
		return rep, job.Errorf(job.Retryable, job.CodeStorage, "sweep: %v", err)
	}
	return rep, nil
}

// Invoke is a direct invocation: {"jobId": "..."} resumes an accepted job,
// {"key": "jobs/<id>.json"} starts an uploaded one.
type Invoke struct {
	JobID string `json:"jobId,omitempty"`
	Key   string `json:"key,omitempty"`
}

func (h *Handler) direct(ctx context.Context, in Invoke) (any, error) {
	ctx, cancel := h.withMargin(ctx)
	defer cancel()
	var st *job.Status
	var err error
	id := in.JobID
	switch {
	case in.JobID != "" && in.Key != "":
		return nil, job.Errorf(job.Permanent, job.CodeInvalid, "give jobId or key, not both")
	case in.JobID != "":
		st, err = h.Orch.Resume(ctx, in.JobID, orchestrator.RunOptions{})
	default:
		var ok bool
		if id, ok = job.JobIDFromKey(in.Key); !ok {
			return nil, job.Errorf(job.Permanent, job.CodeInvalid, "key %q: expected %s<id>.json with an id of %s", in.Key, job.JobsPrefix, job.IDRule)
		}
		st, err = h.Orch.RunKey(ctx, in.Key, orchestrator.RunOptions{})
	}
	switch {
	case errors.Is(err, jobstore.ErrLeaseLost):
		h.log().Info("another orchestrator took the job over", "jobId", id)
		return map[string]string{"jobId": id, "state": "taken over by another orchestrator"}, nil
	case errors.Is(err, jobstore.ErrAlreadyRunning):
		// A resume (often a continuation) may arrive while the lease of the
		// run it continues has not run out yet: fail, so the platform retries
		// it after the lease has expired, rather than strand the job.
		return nil, job.Errorf(job.Retryable, job.CodeThrottled, "%v", err)
	case h.continued(ctx, id, err):
		return map[string]string{"jobId": id, "state": "continuing in a new invocation"}, nil
	case err != nil:
		return nil, runError(err)
	}
	return st, nil
}

// errStopping is the cause of a run's end when the process is told to stop.
var errStopping = errors.New("the process is shutting down")

// continued hands a run stopped by the margin (or by the process shutting
// down) to a new invocation and reports whether it did.
func (h *Handler) continued(ctx context.Context, id string, err error) bool {
	stopped := errors.Is(err, context.DeadlineExceeded) ||
		(errors.Is(err, context.Canceled) && errors.Is(context.Cause(ctx), errStopping))
	if h.Continue == nil || !stopped || !job.ValidID(id) {
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
	var ve *job.ValidationError
	switch {
	case errors.As(err, &ve):
		return job.AsError(err)
	case errors.Is(err, jobstore.ErrConflict), errors.Is(err, jobstore.ErrNotFound):
		return job.Errorf(job.Permanent, job.CodeInvalid, "%v", err)
	}
	return job.Errorf(job.Retryable, job.CodeInternal, "%v", err)
}

// withMargin ends the context a little before the function's own deadline.
func (h *Handler) withMargin(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := h.Margin
	if margin <= 0 {
		margin = 15 * time.Second
	}
	return context.WithDeadline(ctx, deadline.Add(-margin))
}

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

func (h *Handler) maxBody() int64 {
	if h.MaxBody > 0 {
		return h.MaxBody
	}
	return DefaultMaxBody
}
