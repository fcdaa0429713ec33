package jobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// Prepare decodes, normalizes and validates a spec. id, if not empty, is the
// id the job must have (from its key or file name); a spec that names a
// different one is refused. Nothing is written.
func (s *Store) Prepare(r io.Reader, id string) (*job.Spec, error) {
	return s.prepare(r, id, false)
}

// PrepareAs is Prepare under id whatever id the spec names: a user who
// renders an edited spec as a new job says so with the id.
func (s *Store) PrepareAs(r io.Reader, id string) (*job.Spec, error) {
	return s.prepare(r, id, true)
}

func (s *Store) prepare(r io.Reader, id string, override bool) (*job.Spec, error) {
	data, err := io.ReadAll(io.LimitReader(r, job.MaxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	if named := job.PeekID(data); id != "" && named != "" && named != id && !override {
		return nil, &joberr.ValidationError{Problems: []joberr.Problem{{Path: "id",
			Message: fmt.Sprintf("is %q but the job is submitted as %q; remove id or make them match", named, id)}}}
	}
	return job.DecodeProblems(data, id, s.rules)
}

// Submit uploads a valid spec to jobs/<id>.json, where the upload itself
// starts the render (S3 or GCS trigger). An existing upload with the same
// bytes is accepted again; a different one is ErrConflict.
func (s *Store) Submit(ctx context.Context, spec *job.Spec) error {
	data, err := spec.Canonical()
	if err != nil {
		return err
	}
	return s.createOnce(ctx, layout.JobKey(spec.ID), data)
}

// Uploaded reads and prepares the spec uploaded at key (jobs/<id>.json).
func (s *Store) Uploaded(ctx context.Context, key string) (*job.Spec, error) {
	id, ok := layout.JobIDFromKey(key)
	if !ok {
		return nil, &joberr.ValidationError{Problems: []joberr.Problem{{Path: "key",
			Message: fmt.Sprintf("%q is not %s<id>.json with an id of %s", key, layout.JobsPrefix, layout.IDRule)}}}
	}
	return s.read(ctx, key, id)
}

// Accept claims a job: it stores the spec as accepted (renders/<id>/spec.json),
// which the worker and stitcher check their payloads against. A job
// accepted before with the same spec is accepted again; another spec under
// the id is ErrConflict.
func (s *Store) Accept(ctx context.Context, spec *job.Spec) error {
	canonical, err := spec.Canonical()
	if err != nil {
		return err
	}
	if err := s.createOnce(ctx, layout.SpecKey(spec.ID), canonical); err != nil {
		return fmt.Errorf("claim job %q: %w", spec.ID, err)
	}
	return nil
}

// Accepted returns the accepted, normalized spec of job id as it was
// accepted (not validated again: the allowlist of the process reading it
// may differ); ErrNotAccepted if there is none.
func (s *Store) Accepted(ctx context.Context, id string) (*job.Spec, error) {
	if !layout.ValidID(id) {
		return nil, fmt.Errorf("job id %q: %w", id, ErrNotAccepted)
	}
	r, err := s.bucket.NewReader(ctx, layout.SpecKey(id), nil)
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

// Uncancel withdraws a cancel request, so the job can be run again; its
// finished chunks are kept.
func (s *Store) Uncancel(ctx context.Context, id string) error {
	if err := s.bucket.Delete(ctx, layout.CancelKey(id)); err != nil && !storage.IsNotFound(err) {
		return fmt.Errorf("withdraw the cancel request of %q: %w", id, err)
	}
	return nil
}

// Resumable returns the accepted spec of job id, validated again, to run
// the job again; ErrNotFound if it was never accepted.
func (s *Store) Resumable(ctx context.Context, id string) (*job.Spec, error) {
	if !layout.ValidID(id) {
		return nil, fmt.Errorf("job id %q: %w", id, ErrNotFound)
	}
	spec, err := s.read(ctx, layout.SpecKey(id), id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	return spec, err
}

// read reads and prepares the spec at key for job id.
func (s *Store) read(ctx context.Context, key, id string) (*job.Spec, error) {
	r, err := s.open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return s.Prepare(r, id)
}

// open opens the object at key; ErrNotFound if there is none.
func (s *Store) open(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := s.bucket.NewReader(ctx, key, nil)
	if storage.IsNotFound(err) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return r, nil
}

// createOnce creates key with data, or accepts key if it already holds data.
func (s *Store) createOnce(ctx context.Context, key string, data []byte) error {
	err := storage.Create(ctx, s.bucket, key, data)
	if !errors.Is(err, storage.ErrExists) {
		return err
	}
	existing, rerr := s.bucket.ReadAll(ctx, key)
	if rerr != nil {
		return fmt.Errorf("read %s: %w", key, rerr)
	}
	if !bytes.Equal(existing, data) {
		return fmt.Errorf("%s: %w", key, ErrConflict)
	}
	return nil
}

// Plans returns the accepted spec of a job: what a worker or stitcher
// checks a payload against (Store.Accepted in deployments).
type Plans func(ctx context.Context, jobID string) (*job.Spec, error)

// Plans returns the store's accepted specs.
func (s *Store) Plans() Plans { return s.Accepted }

// Check returns the accepted spec of job id once check accepts it. Errors
// are *joberr.Error: permanent if the job was never accepted or check refuses
// (the call is not what the spec plans), retryable if storage failed.
func (p Plans) Check(ctx context.Context, id string, check func(*job.Spec) error) (*job.Spec, error) {
	spec, err := p(ctx, id)
	switch {
	case errors.Is(err, ErrNotAccepted):
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "job %s was never accepted by an orchestrator: %v", id, err)
	case err != nil:
		return nil, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err)
	}
	if err := check(spec); err != nil {
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "not what the accepted spec of %s plans: %v", id, err)
	}
	return spec, nil
}
