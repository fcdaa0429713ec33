// Package jobstore reads the stored state of jobs that the stages other
// than the orchestrator must trust: the accepted spec, written once by the
// orchestrator when it claims a job, is what a directly invoked worker or
// stitcher checks its payload against.
package jobstore

import (
	"context"
	"errors"
	"fmt"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// ErrNotAccepted means no orchestrator has accepted a job with the id.
var ErrNotAccepted = errors.New("job not accepted")

// Accepted returns the accepted, normalized spec of job id.
func Accepted(ctx context.Context, b *blob.Bucket, id string) (*job.Spec, error) {
	if !job.ValidID(id) {
		return nil, fmt.Errorf("job id %q: %w", id, ErrNotAccepted)
	}
	r, err := b.NewReader(ctx, job.SpecKey(id), nil)
	if storage.IsNotFound(err) {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotAccepted)
	}
	if err != nil {
		return nil, fmt.Errorf("read the accepted spec of %q: %w", id, err)
	}
	defer r.Close()
	spec, err := job.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("accepted spec of %q: %w", id, err)
	}
	spec.ID = id
	spec.Normalize()
	return spec, nil
}

// Plans returns the accepted spec of a job (Accepted, in deployments).
type Plans func(ctx context.Context, jobID string) (*job.Spec, error)

// Check returns the accepted spec of job id once check accepts it. Errors
// are *job.Error: permanent if the job was never accepted or check refuses
// (the call is not what the spec plans), retryable if storage failed.
func (p Plans) Check(ctx context.Context, id string, check func(*job.Spec) error) (*job.Spec, error) {
	spec, err := p(ctx, id)
	switch {
	case errors.Is(err, ErrNotAccepted):
		return nil, job.Errorf(job.Permanent, job.CodeInvalid, "job %s was never accepted by an orchestrator: %v", id, err)
	case err != nil:
		return nil, job.Errorf(job.Retryable, job.CodeStorage, "%v", err)
	}
	if err := check(spec); err != nil {
		return nil, job.Errorf(job.Permanent, job.CodeInvalid, "not what the accepted spec of %s plans: %v", id, err)
	}
	return spec, nil
}
