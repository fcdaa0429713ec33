// Package trigger decodes what starts or resumes a job and hands it to the
// orchestrator.
package trigger

import (
	"context"
	"errors"
	"fmt"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
)

// Invoke is a direct invocation of the orchestrator function: {"jobId": "..."}
// resumes an accepted job, {"key": "jobs/<id>.json"} starts an uploaded one.
type Invoke struct {
	JobID string `json:"jobId,omitempty"`
	Key   string `json:"key,omitempty"`
}

// Runner is what a trigger needs of the orchestrator.
type Runner interface {
	Resume(ctx context.Context, id string, opts orchestrator.RunOptions) (*job.Status, error)
	RunKey(ctx context.Context, key string, opts orchestrator.RunOptions) (*job.Status, error)
}

// HandleInvoke runs a direct invocation. A job already being run elsewhere
// is not an error: the invocation was a duplicate.
func HandleInvoke(ctx context.Context, r Runner, in Invoke) (*job.Status, error) {
	var st *job.Status
	var err error
	switch {
	case in.JobID != "" && in.Key != "":
		return nil, job.Errorf(job.Permanent, job.CodeInvalid, "give jobId or key, not both")
	case in.JobID != "":
		st, err = r.Resume(ctx, in.JobID, orchestrator.RunOptions{})
	case in.Key != "":
		st, err = r.RunKey(ctx, in.Key, orchestrator.RunOptions{})
	default:
		return nil, job.Errorf(job.Permanent, job.CodeInvalid, `expected {"jobId": "<id>"} or {"key": "jobs/<id>.json"}`)
	}
	if errors.Is(err, orchestrator.ErrAlreadyRunning) {
		return &job.Status{JobID: in.JobID, State: job.StateRunning}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("run job: %w", err)
	}
	return st, nil
}
