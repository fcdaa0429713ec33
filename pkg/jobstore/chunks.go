package jobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// chunkObjects lists the job's chunks folder, split into completion
// markers (renders/<id>/chunks/*.json, well named or not) and the rest
// (segments, and whatever else was left there).
func (s *Store) chunkObjects(ctx context.Context, id string) (markers, segments []string, err error) {
	keys, err := storage.List(ctx, s.bucket, layout.ChunksPrefix(id))
	if err != nil {
		return nil, nil, err
	}
	for _, k := range keys {
		if strings.HasSuffix(k, ".json") {
			markers = append(markers, k)
		} else {
			segments = append(segments, k)
		}
	}
	return markers, segments, nil
}

// Markers returns the results of the chunks of spec already completed, by
// chunk index. A marker whose segment has gone (cleaned up, or lost) is
// deleted so the chunk is rendered again; so is one that does not describe
// a planned chunk of this job (stray, or written by someone else): it is
// logged, never trusted.
func (s *Store) Markers(ctx context.Context, spec *job.Spec) (map[int]job.WorkerResult, error) {
	markers, segments, err := s.chunkObjects(ctx, spec.ID)
	if err != nil {
		return nil, fmt.Errorf("load completion markers: %w", err)
	}
	exists := make(map[string]bool, len(segments))
	for _, k := range segments {
		exists[k] = true
	}
	results := make(map[int]job.WorkerResult, len(markers))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, key := range markers {
		g.Go(func() error {
			index, r, ok, err := s.completed(gctx, spec, key, exists)
			if err != nil || !ok {
				return err
			}
			mu.Lock()
			results[index] = r
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("load completion markers: %w", err)
	}
	return results, nil
}

// completed reads the marker at key, one of Markers' listing, and says
// whether it stands for a completed chunk whose segment exists. One that
// went meanwhile is not; one that does not describe a planned chunk, or
// whose segment is gone, is removed.
func (s *Store) completed(ctx context.Context, spec *job.Spec, key string, exists map[string]bool) (int, job.WorkerResult, bool, error) {
	id := spec.ID
	index, planned := job.MarkerIndex(id, key)
	var r job.WorkerResult
	err := storage.ReadJSON(ctx, s.bucket, key, &r)
	if err != nil && !storage.IsNotFound(err) && !malformed(err) {
		return index, r, false, err
	}
	if err == nil && planned {
		err = spec.CheckMarker(index, r)
	}
	switch {
	case storage.IsNotFound(err):
		return index, r, false, nil
	case !planned || err != nil:
		s.removeStray(ctx, id, key, err)
		return index, r, false, nil
	case !exists[r.SegmentKey]:
		s.log.Info("segment of a completed chunk is gone; rendering it again", "jobId", id, "chunk", index)
		return index, r, false, s.bucket.Delete(ctx, key)
	}
	return index, r, true, nil
}

// malformed reports whether err is a marker's JSON that does not decode: a
// stray object, not a failure of the store.
func malformed(err error) bool {
	return errors.As(err, new(*json.SyntaxError)) || errors.As(err, new(*json.UnmarshalTypeError))
}

// removeStray deletes a marker that is not to be trusted (why says how it
// failed), logging both.
func (s *Store) removeStray(ctx context.Context, id, key string, why error) {
	s.log.Warn("ignoring and removing a completion marker that does not describe a planned chunk", "jobId", id, "key", key, "why", why)
	if err := s.bucket.Delete(ctx, key); err != nil && !storage.IsNotFound(err) {
		s.log.Warn("could not remove the stray marker", "key", key, "error", err)
	}
}

// CreateMarker creates the completion marker of r's chunk holding r, if
// the chunk has none: the first attempt to create it wins, the others get
// storage.ErrExists. Other storage errors come back as they are.
func (s *Store) CreateMarker(ctx context.Context, r job.WorkerResult) error {
	return storage.CreateJSON(ctx, s.bucket, layout.MarkerKey(r.JobID, r.Chunk.Index), r)
}

// ErrNoMarker means a chunk has no completion marker: it is not complete.
var ErrNoMarker = errors.New("no completion marker")

// StrayMarkerError is a completion marker that does not describe the chunk
// the accepted spec plans (stray, or forged): it is never trusted.
type StrayMarkerError struct {
	Index int
	Why   error // what spec.CheckMarker found
}

func (e *StrayMarkerError) Error() string {
	return fmt.Sprintf("the completion marker of chunk %d does not describe the planned chunk: %v", e.Index, e.Why)
}

func (e *StrayMarkerError) Unwrap() error { return e.Why }

// Marker reads the completion marker of chunk index of job id and, if spec
// is not nil, checks that it describes that planned chunk. Errors:
// ErrNoMarker (wrapped) if there is none; *StrayMarkerError, with the
// marker read, if spec does not plan it; a storage error as it is
// otherwise, so that callers classify and word it as they did.
func (s *Store) Marker(ctx context.Context, id string, index int, spec *job.Spec) (job.WorkerResult, error) {
	var r job.WorkerResult
	err := storage.ReadJSON(ctx, s.bucket, layout.MarkerKey(id, index), &r)
	if storage.IsNotFound(err) {
		return r, fmt.Errorf("chunk %d of job %q: %w", index, id, ErrNoMarker)
	}
	if err != nil {
		return r, err
	}
	if spec != nil {
		if err := spec.CheckMarker(index, r); err != nil {
			return r, &StrayMarkerError{Index: index, Why: err}
		}
	}
	return r, nil
}

// ForgetChunk removes chunk i's completion marker, so no run trusts it
// again, then its segment (best effort): the chunk is to be rendered again.
func (s *Store) ForgetChunk(ctx context.Context, id string, i int, damaged job.WorkerResult) error {
	if err := s.bucket.Delete(ctx, layout.MarkerKey(id, i)); err != nil && !storage.IsNotFound(err) {
		return fmt.Errorf("remove the marker of chunk %d: %w", i, err)
	}
	if err := s.RemoveUpload(ctx, damaged); err != nil {
		s.log.Warn("remove a damaged segment", "error", err)
	}
	return nil
}

// RemoveSegments deletes the job's segments once its video is published.
// The markers stay: they are small, and they say which chunks were done.
func (s *Store) RemoveSegments(ctx context.Context, id string) error {
	_, segments, err := s.chunkObjects(ctx, id)
	if err != nil {
		return err
	}
	return storage.DeleteKeys(ctx, s.bucket, segments)
}
