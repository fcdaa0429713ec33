package storage

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// concatStream copies each source through a blob writer that publishes dst
// on Close, only if dst does not exist; cancelling its context before
// Close discards what was written.
func concatStream(ctx context.Context, b *blob.Bucket, dst string, srcs []string, stats *ConcatStats, calls *atomic.Int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	calls.Add(1)
	w, err := b.NewWriter(ctx, dst, &blob.WriterOptions{IfNotExist: true, ContentType: contentType(dst)})
	if err != nil {
		return err
	}
	buf := make([]byte, 256<<10) // blob's own copy takes a new 1 MiB buffer each time
	for _, src := range srcs {
		n, err := copySource(ctx, b, w, src, buf, calls)
		stats.BytesStreamed += n
		if err != nil {
			cancel()
			_ = w.Close()
			return err
		}
	}
	if err := w.Close(); err != nil {
		if gcerrors.Code(err) == gcerrors.FailedPrecondition {
			return ErrExists
		}
		return err
	}
	stats.Bytes = stats.BytesStreamed
	return nil
}

func copySource(ctx context.Context, b *blob.Bucket, w io.Writer, src string, buf []byte, calls *atomic.Int64) (int64, error) {
	calls.Add(1)
	r, err := b.NewReader(ctx, src, nil)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", src, err)
	}
	defer r.Close()
	// Only Read and Write, so that io.CopyBuffer uses buf.
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, buf)
	if err != nil {
		return n, fmt.Errorf("copy %s: %w", src, err)
	}
	return n, nil
}
