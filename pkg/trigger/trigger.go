// Package trigger decodes what reaches the orchestrator function and acts on
// it. Each transport decodes its envelope into an event (an upload, a
// direct start or resume) and hands it to one dispatcher (dispatch.go),
// which ignores what is not the orchestrator's, runs the job, settles the
// outcome and continues a run stopped by the time limit. The transports:
//
//   - Lambda (lambda.go): an S3 event, whose ObjectCreated records for
//     jobs/<id>.json start those jobs (keys are URL-decoded; records
//     outside jobs/ or for another bucket are logged and ignored); an HTTP
//     request through a Function URL or an API Gateway HTTP API (payload
//     format 2.0), served by API; a direct invocation {"jobId": "<id>"}
//     (resume) or {"key": "jobs/<id>.json"}; {"sweep": {}}.
//   - HTTP, as on Cloud Run (cloudrun.go): the API, POST /sweep, and at
//     POST / a CloudEvent, a Pub/Sub push or a direct call.
//
// The API (http.go) is the same net/http handler on both: POST /jobs,
// GET /jobs/{id}, DELETE /jobs/{id}.
package trigger

import (
	"context"
	"log/slog"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
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
	// BucketName is the bucket uploads (S3 or GCS events) must come from;
	// "" accepts any.
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
	// ResumeWait is how long a direct call over HTTP that finds the job's
	// lease held keeps trying before it answers that the job runs
	// elsewhere (see waitWhenHeld): longer than a lease lives (pkg/pipeline
	// sets the lease's TTL plus 10 s; default 40s, for the default 30 s
	// TTL). On Lambda such a call fails retryably instead (retryWhenHeld).
	ResumeWait time.Duration
	Log        *slog.Logger
}

// Invoke is a direct invocation: {"jobId": "..."} resumes an accepted job,
// {"key": "jobs/<id>.json"} starts an uploaded one.
type Invoke struct {
	JobID string `json:"jobId,omitempty"`
	Key   string `json:"key,omitempty"`
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

func (h *Handler) resumeWait() time.Duration {
	if h.ResumeWait > 0 {
		return h.ResumeWait
	}
	return 40 * time.Second
}
