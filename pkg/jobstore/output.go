package jobstore

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/helios-project/infrastructure/pkg/storage"
)

// The output is a job's published video, at the key its spec names. It is
// written once: every publication fails with storage.ErrExists if an
// earlier stitch got there first, and never replaces it.

// JoinOutput publishes the concatenation of the stored segments, in order,
// at key, without downloading them where the store can (storage.Concat).
func (s *Store) JoinOutput(ctx context.Context, key string, segments []string) (storage.ConcatStats, error) {
	return storage.Concat(ctx, s.bucket, key, segments, storage.ConcatOptions{})
}

// PublishOutputFile publishes the file at path as the output at key, and
// returns its size.
func (s *Store) PublishOutputFile(ctx context.Context, key, path string) (int64, error) {
	return storage.UploadFileOnce(ctx, s.bucket, path, key)
}

// PublishOutput publishes what r yields as the output at key, only if r
// ends without error, and returns its size.
func (s *Store) PublishOutput(ctx context.Context, key string, r io.Reader) (int64, error) {
	return storage.WriteOnce(ctx, s.bucket, key, r)
}

// OutputSize returns the size of the published output at key.
func (s *Store) OutputSize(ctx context.Context, key string) (int64, error) {
	attrs, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		return 0, err
	}
	return attrs.Size, nil
}

// OutputURL returns a signed URL that reads the output at key until expiry
// passes.
func (s *Store) OutputURL(ctx context.Context, key string, expiry time.Duration) (string, error) {
	return storage.PresignGet(ctx, s.bucket, key, expiry)
}

// DownloadOutput writes the published output at key to the file path
// (created with mode perm less the umask); a failed download leaves a
// partial file for the caller to remove.
func (s *Store) DownloadOutput(ctx context.Context, key, path string, perm os.FileMode) (int64, error) {
	return storage.Download(ctx, s.bucket, key, path, perm)
}

// Exists reports whether a job's object exists: its published video,
// typically.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	return s.bucket.Exists(ctx, key)
}
