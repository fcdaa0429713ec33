package jobstore

import (
	"context"
	"io"
	"slices"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// Upload is what one attempt of a chunk stored: its segment, and its audio
// (raw PCM) when the segment has some.
type Upload struct {
	SegmentKey string
	Bytes      int64  // the segment's size
	AudioKey   string // "" without audio
}

// UploadAttempt stores attempt w's segment file and, if audio is not "",
// its audio file beside it, under keys no other invocation writes, even
// across a crash. Unless w.KeepSegment, both are tagged to expire should
// the job never clean them up. Storage errors come back as they are.
func (s *Store) UploadAttempt(ctx context.Context, w job.WorkerJob, segment, audio string) (Upload, error) {
	var tags []storage.Tag
	if !w.KeepSegment {
		tags = append(tags, storage.SegmentTag)
	}
	up := Upload{SegmentKey: w.SegmentKey()}
	n, err := storage.UploadFile(ctx, s.bucket, segment, up.SegmentKey, tags...)
	if err != nil {
		return Upload{}, err
	}
	up.Bytes = n
	if audio != "" {
		up.AudioKey = w.AudioKey()
		if _, err := storage.UploadFile(ctx, s.bucket, audio, up.AudioKey, tags...); err != nil {
			return Upload{}, err
		}
	}
	return up, nil
}

// AudioKey is where the audio of the segment at segmentKey is stored: what
// a marker's audio part must name.
func AudioKey(segmentKey string) string { return layout.AudioKeyFor(segmentKey) }

// RemoveUpload deletes what r's attempt uploaded: its segment and audio.
func (s *Store) RemoveUpload(ctx context.Context, r job.WorkerResult) error {
	return storage.DeleteKeys(ctx, s.bucket, r.UploadKeys())
}

// RemoveAttempt deletes what attempt w may have uploaded, its segment and
// audio, except what winner names (an attempt that found its chunk
// complete answers with the winner's result).
func (s *Store) RemoveAttempt(ctx context.Context, w job.WorkerJob, winner job.WorkerResult) error {
	keys := slices.DeleteFunc([]string{w.SegmentKey(), w.AudioKey()}, func(k string) bool {
		return slices.Contains(winner.UploadKeys(), k)
	})
	return storage.DeleteKeys(ctx, s.bucket, keys)
}

// OpenSegment opens a stored segment, or audio part, a marker names.
func (s *Store) OpenSegment(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.bucket.NewReader(ctx, key, nil)
}

// DownloadSegment copies a stored segment a marker names to the file at
// path, and returns its size.
func (s *Store) DownloadSegment(ctx context.Context, key, path string) (int64, error) {
	return storage.DownloadFile(ctx, s.bucket, key, path)
}

// Stored is what the store says of an object: its size and, where the
// store keeps one, its MD5.
type Stored struct {
	Size int64
	MD5  []byte
}

// StoredChunks lists the objects of job id's chunks folder (segments, their
// audio, markers) in one listing, by key.
func (s *Store) StoredChunks(ctx context.Context, id string) (map[string]Stored, error) {
	objs, err := storage.ListObjects(ctx, s.bucket, layout.ChunksPrefix(id))
	if err != nil {
		return nil, err
	}
	stored := make(map[string]Stored, len(objs))
	for _, obj := range objs {
		stored[obj.Key] = Stored{Size: obj.Size, MD5: obj.MD5}
	}
	return stored, nil
}
