package jobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// Status returns a job's status.json; ErrNotFound if it has none.
func (s *Store) Status(ctx context.Context, id string) (*job.Status, error) {
	if !layout.ValidID(id) {
		return nil, fmt.Errorf("job id %q: %w", id, ErrNotFound)
	}
	var st job.Status
	err := storage.ReadJSON(ctx, s.bucket, layout.StatusKey(id), &st)
	if storage.IsNotFound(err) {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// WriteStatus replaces a job's status.json.
func (s *Store) WriteStatus(ctx context.Context, st *job.Status) error {
	data, err := EncodeStatus(st)
	if err != nil {
		return err
	}
	return s.WriteEncodedStatus(ctx, st.JobID, data)
}

// EncodeStatus is a status as status.json holds it.
func EncodeStatus(st *job.Status) ([]byte, error) { return json.MarshalIndent(st, "", "  ") }

// WriteEncodedStatus replaces job id's status.json with data (EncodeStatus):
// a caller that keeps a status under a lock encodes it there, without
// copying a 10,000-chunk list first.
func (s *Store) WriteEncodedStatus(ctx context.Context, id string, data []byte) error {
	err := s.bucket.WriteAll(ctx, layout.StatusKey(id), data, &blob.WriterOptions{ContentType: "application/json"})
	if err == nil {
		s.statusBytes.Add(int64(len(data)))
	}
	return err
}

// StatusBytesWritten is how many bytes of status this store has written:
// what a job's status costs in writes (and readers in reads).
func (s *Store) StatusBytesWritten() int64 { return s.statusBytes.Load() }

// Lookup returns a job's status as a user should see it: status.json once
// the job has run; for a spec uploaded to jobs/ but not started, pending, or
// failed with every problem listed if the spec is invalid (an invalid
// upload never runs, so nothing else would ever say why). Nothing is written.
func (s *Store) Lookup(ctx context.Context, id string) (*job.Status, error) {
	st, err := s.Status(ctx, id)
	if !errors.Is(err, ErrNotFound) || !layout.ValidID(id) {
		return st, err
	}
	r, err := s.open(ctx, layout.JobKey(id))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := s.Prepare(r, id); err != nil {
		return &job.Status{JobID: id, State: job.StateFailed, Error: joberr.AsError(err)}, nil
	}
	if cancelled, err := s.CancelRequested(ctx, id); err != nil {
		return nil, err
	} else if cancelled {
		return &job.Status{JobID: id, State: job.StateCancelled, Error: joberr.Errorf(joberr.Permanent, joberr.CodeCancelled, "cancelled before it started")}, nil
	}
	return &job.Status{JobID: id, State: job.StatePending}, nil
}

// Orphaned reports whether a job whose status says it is under way has no
// orchestrator: no live lease holds it (its holder stopped or died). The
// sweep resumes such jobs in the cloud; on a local folder nothing does.
func (s *Store) Orphaned(ctx context.Context, st *job.Status) (bool, error) {
	if st == nil || st.State.Final() || st.Timings.StartedAt.IsZero() {
		return false, nil
	}
	live, err := s.LeaseLive(ctx, st.JobID)
	return !live && err == nil, err
}

// Cancel asks a job to stop: running chunks are abandoned, nothing is
// stitched, and the final state is cancelled. It is idempotent. A job that
// has ended is ErrEnded (its status says how): asking it to stop would only
// stop a later run of it.
func (s *Store) Cancel(ctx context.Context, id string) error {
	if !layout.ValidID(id) {
		return fmt.Errorf("job id %q: %w", id, ErrNotFound)
	}
	switch st, err := s.Status(ctx, id); {
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	case err == nil && st.State == job.StateCancelled:
		return nil
	case err == nil && st.State.Final():
		return fmt.Errorf("job %q is %s: %w", id, st.State, ErrEnded)
	}
	if ok, err := s.bucket.Exists(ctx, layout.SpecKey(id)); err != nil {
		return err
	} else if !ok {
		if ok, err := s.bucket.Exists(ctx, layout.JobKey(id)); err != nil || !ok {
			return fmt.Errorf("job %q: %w", id, ErrNotFound)
		}
	}
	err := storage.Create(ctx, s.bucket, layout.CancelKey(id), []byte(time.Now().UTC().Format(time.RFC3339)))
	if errors.Is(err, storage.ErrExists) {
		return nil
	}
	return err
}

// CancelRequested reports whether the job was asked to stop.
func (s *Store) CancelRequested(ctx context.Context, id string) (bool, error) {
	ok, err := s.bucket.Exists(ctx, layout.CancelKey(id))
	if err != nil {
		return false, fmt.Errorf("check cancel: %w", err)
	}
	return ok, nil
}
