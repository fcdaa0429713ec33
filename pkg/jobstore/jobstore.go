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
