package jobstore

import (
	"context"
	"fmt"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// RaiseBudget sets the budget of job id's next runs in place of its
// spec's (still within the deployment's): how a job stopped by its budget
// is run again with more. The job must have been accepted.
func (s *Store) RaiseBudget(ctx context.Context, id string, b job.Budget) error {
	if err := job.CheckBudget(b); err != nil {
		return err
	}
	if _, err := s.Accepted(ctx, id); err != nil {
		return err
	}
	if err := storage.WriteJSON(ctx, s.bucket, layout.BudgetKey(id), b); err != nil {
		return fmt.Errorf("raise the budget of %q: %w", id, err)
	}
	return nil
}

// RaisedBudget is the budget RaiseBudget set for job id, or the zero
// Budget (the spec's applies) if none was.
func (s *Store) RaisedBudget(ctx context.Context, id string) (job.Budget, error) {
	var b job.Budget
	err := storage.ReadJSON(ctx, s.bucket, layout.BudgetKey(id), &b)
	if err != nil && !storage.IsNotFound(err) {
		return job.Budget{}, fmt.Errorf("read the raised budget of %q: %w", id, err)
	}
	if err := job.CheckBudget(b); err != nil {
		return job.Budget{}, fmt.Errorf("raised budget of %q: %w", id, err)
	}
	return b, nil
}
