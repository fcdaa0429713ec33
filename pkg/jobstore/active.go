package jobstore

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// ActiveMark is active/<id>: the job was claimed and has not ended. The
// sweep counts here the times it resumed the job without progress.
type ActiveMark struct {
	ClaimedAt  time.Time `json:"claimedAt"`
	Resumes    int       `json:"resumes,omitempty"`    // sweeps that resumed it since it last made progress
	DoneAtLast int       `json:"doneAtLast,omitempty"` // chunks done at the last resume
	LastResume time.Time `json:"lastResume,omitzero"`
}

// MarkActive records a claimed job (kept if it exists: its resume count
// goes on).
func (s *Store) MarkActive(ctx context.Context, id string) error {
	err := storage.CreateJSON(ctx, s.bucket, layout.ActiveKey(id), ActiveMark{ClaimedAt: time.Now().UTC()})
	if err != nil && !errors.Is(err, storage.ErrExists) {
		return err
	}
	return nil
}

// MarkEnded removes a job from the sweep's view (logged if it fails: the
// next sweep clears the mark of an ended job).
func (s *Store) MarkEnded(ctx context.Context, id string) {
	if err := s.bucket.Delete(ctx, layout.ActiveKey(id)); err != nil && !storage.IsNotFound(err) {
		s.log.Warn("remove the active mark", "jobId", id, "error", err)
	}
}

// Active lists the ids of the jobs marked active.
func (s *Store) Active(ctx context.Context) ([]string, error) {
	keys, err := storage.List(ctx, s.bucket, layout.ActivePrefix)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, key := range keys {
		if id := strings.TrimPrefix(key, layout.ActivePrefix); layout.ValidID(id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// ActiveMarkOf reads the active mark of job id.
func (s *Store) ActiveMarkOf(ctx context.Context, id string) (ActiveMark, error) {
	var m ActiveMark
	err := storage.ReadJSON(ctx, s.bucket, layout.ActiveKey(id), &m)
	return m, err
}

// WriteActiveMark replaces the active mark of job id.
func (s *Store) WriteActiveMark(ctx context.Context, id string, m ActiveMark) error {
	return storage.WriteJSON(ctx, s.bucket, layout.ActiveKey(id), m)
}

// ClaimWebhook records that the webhook of a job's outcome is being sent,
// and reports whether this caller is the first to: an outcome is sent at
// most once, by whichever run gets here first.
func (s *Store) ClaimWebhook(ctx context.Context, id string, state job.State) (bool, error) {
	err := storage.Create(ctx, s.bucket, layout.WebhookKey(id, string(state)), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	if errors.Is(err, storage.ErrExists) {
		return false, nil
	}
	return err == nil, err
}
