package jobstore

import (
	"context"
	"fmt"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// History returns job id's history (renders/<id>/history.json);
// ErrNotFound if no run of the job has ended yet.
func (s *Store) History(ctx context.Context, id string) (job.History, error) {
	var h job.History
	err := storage.ReadJSON(ctx, s.bucket, layout.HistoryKey(id), &h)
	if storage.IsNotFound(err) {
		return h, fmt.Errorf("history of job %q: %w", id, ErrNotFound)
	}
	return h, err
}

// SaveHistory replaces the history of job h.JobID with h.
func (s *Store) SaveHistory(ctx context.Context, h job.History) error {
	return storage.WriteJSON(ctx, s.bucket, layout.HistoryKey(h.JobID), h)
}
