// Package stitch joins the segments of a job into the final video.
// VideoStitcher is the seed interface; FfmpegStitcher implements it with the
// concat demuxer and stream copy. Handler is the stitcher function:
// StitchRequest in, StitchResult out.
package stitch

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"gocloud.dev/blob"
	"golang.org/x/sync/errgroup"

	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// VideoStitcher combines video segments, in order, into one file.
type VideoStitcher interface {
	Stitch(ctx context.Context, inputs []string, output string) error
}

// FfmpegStitcher joins segments with ffmpeg's concat demuxer and stream copy:
// no re-encoding, so the output's frames are the segments' frames.
type FfmpegStitcher struct {
	Tool *ffmpeg.Tool
}

// Stitch implements VideoStitcher. The inputs are linked under neutral names
// in a scratch dir so the concat list never carries a caller's path.
func (s *FfmpegStitcher) Stitch(ctx context.Context, inputs []string, output string) error {
	if len(inputs) == 0 {
		return fmt.Errorf("stitch: no inputs")
	}
	dir, err := os.MkdirTemp(filepath.Dir(output), ".stitch-*")
	if err != nil {
		return fmt.Errorf("stitch: %w", err)
	}
	defer os.RemoveAll(dir)
	names := make([]string, len(inputs))
	for i, in := range inputs {
		abs, err := filepath.Abs(in)
		if err != nil {
			return fmt.Errorf("stitch: %w", err)
		}
		names[i] = fmt.Sprintf("in-%06d%s", i, filepath.Ext(in))
		if err := os.Symlink(abs, filepath.Join(dir, names[i])); err != nil {
			return fmt.Errorf("stitch: %w", err)
		}
	}
	out, err := filepath.Abs(output)
	if err != nil {
		return fmt.Errorf("stitch: %w", err)
	}
	return s.Tool.Concat(ctx, dir, names, out)
}

// FrameCounter counts the video frames of a file.
type FrameCounter interface {
	CountFrames(ctx context.Context, path string) (int, error)
}

// Handler is the stitcher function.
type Handler struct {
	Bucket   *blob.Bucket
	Stitcher VideoStitcher
	Frames   FrameCounter
	TempDir  string // "" means os.TempDir()
	// Downloads is how many segments are fetched at once; 0 means 8.
	Downloads int
	Logger    *slog.Logger
}

// Handle downloads the segments in parallel, checks each one's frame count,
// joins them, checks the total and uploads the output. Nothing is uploaded
// unless every check passes. Errors are *job.Error.
func (h *Handler) Handle(ctx context.Context, req job.StitchRequest) (job.StitchResult, error) {
	if err := req.Validate(); err != nil {
		return job.StitchResult{}, job.AsError(err)
	}
	start := time.Now()
	log := h.logger().With("jobId", req.JobID, "segments", len(req.Segments))
	dir, err := os.MkdirTemp(h.TempDir, "helios-stitch-*")
	if err != nil {
		return job.StitchResult{}, job.Errorf(job.Retryable, job.CodeInternal, "create work dir: %v", err)
	}
	defer os.RemoveAll(dir)

	local := make([]string, len(req.Segments))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cmp.Or(h.Downloads, 8))
	for i, seg := range req.Segments {
		local[i] = filepath.Join(dir, fmt.Sprintf("seg-%06d%s", i, path.Ext(seg.Key)))
		g.Go(func() error { return h.fetch(gctx, seg, i, local[i]) })
	}
	if err := g.Wait(); err != nil {
		return job.StitchResult{}, job.AsError(err)
	}

	output := filepath.Join(dir, "output"+path.Ext(req.OutputKey))
	if err := h.Stitcher.Stitch(ctx, local, output); err != nil {
		return job.StitchResult{}, job.AsError(err)
	}
	want := req.TotalFrames()
	got, err := h.Frames.CountFrames(ctx, output)
	if err != nil {
		return job.StitchResult{}, job.Errorf(job.Retryable, job.CodeFrameMismatch, "%v", err)
	}
	if got != want {
		return job.StitchResult{}, job.Errorf(job.Retryable, job.CodeFrameMismatch,
			"stitched output has %d frames, the segments add up to %d; nothing was published", got, want)
	}
	n, err := storage.UploadFile(ctx, h.Bucket, output, req.OutputKey)
	if err != nil {
		return job.StitchResult{}, job.Errorf(job.Retryable, job.CodeStorage, "%v", err)
	}
	res := job.StitchResult{OutputKey: req.OutputKey, Bytes: n, Frames: got, DurationMs: time.Since(start).Milliseconds()}
	log.Info("stitched", "output", req.OutputKey, "bytes", n, "frames", got, "ms", res.DurationMs)
	return res, nil
}

func (h *Handler) fetch(ctx context.Context, seg job.Segment, i int, dst string) error {
	if _, err := storage.DownloadFile(ctx, h.Bucket, seg.Key, dst); err != nil {
		if storage.IsNotFound(err) {
			return job.Errorf(job.Permanent, job.CodeMissingOutput, "segment %s does not exist", seg.Key).WithChunk(i)
		}
		return job.Errorf(job.Retryable, job.CodeStorage, "%v", err).WithChunk(i)
	}
	got, err := h.Frames.CountFrames(ctx, dst)
	if err != nil {
		return job.Errorf(job.Retryable, job.CodeFrameMismatch, "%v", err).WithChunk(i)
	}
	if got != seg.Frames {
		return job.Errorf(job.Retryable, job.CodeFrameMismatch, "segment %s has %d frames, expected %d", seg.Key, got, seg.Frames).WithChunk(i)
	}
	return nil
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}
