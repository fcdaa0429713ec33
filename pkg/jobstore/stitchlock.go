package jobstore

import (
	"context"
	"fmt"
	"time"

	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// StitchLock is the content of renders/<id>/stitch.lock: a stitch of the
// job started, by the run (lease generation) named, at CreatedAt.
type StitchLock struct {
	CreatedAt time.Time `json:"createdAt"`
	Run       int       `json:"run"`
}

// LockStitch creates the job's stitch lock for run; storage.ErrExists if a
// stitch holds it.
func (s *Store) LockStitch(ctx context.Context, id string, run int) error {
	return storage.CreateJSON(ctx, s.bucket, layout.StitchLockKey(id), StitchLock{CreatedAt: time.Now().UTC(), Run: run})
}

// StitchLockHeld returns the job's stitch lock; ok is false if there is none.
func (s *Store) StitchLockHeld(ctx context.Context, id string) (lock StitchLock, ok bool, err error) {
	err = storage.ReadJSON(ctx, s.bucket, layout.StitchLockKey(id), &lock)
	if storage.IsNotFound(err) {
		return lock, false, nil
	}
	return lock, err == nil, err
}

// UnlockStitch removes the job's stitch lock.
func (s *Store) UnlockStitch(ctx context.Context, id string) error {
	if err := s.bucket.Delete(ctx, layout.StitchLockKey(id)); err != nil && !storage.IsNotFound(err) {
		return fmt.Errorf("remove the stitch lock of %q: %w", id, err)
	}
	return nil
}
