// Package stitch joins the segments of a job into the final video.
// Handler is the stitcher function: StitchRequest in, StitchResult out.
//
// MP4-family segments, placed on the job's timeline by their workers, are
// joined as bytes (join.go): storage.Concat, server-side where the store
// can, with no ffmpeg and no local file; audio, or a faststart output,
// takes one ffmpeg pass that stream-copies the video. Other containers
// are downloaded and joined by VideoStitcher, the design card's
// interface, which FfmpegStitcher implements with the concat demuxer and
// stream copy.
package stitch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
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

// Media is what the stitcher asks of ffmpeg (ffmpeg.Tool does it): count
// the frames of a file joined by VideoStitcher, and remux a byte-joined
// MP4 stream to add audio or move its index in front.
type Media interface {
	CountFrames(ctx context.Context, path string) (int, error)
	Remux(ctx context.Context, r ffmpeg.Remux) error
}

// markerReads is how many markers are read at once: small objects, one
// request each, 10,000 for a big job.
const markerReads = 64

// Handler is the stitcher function.
type Handler struct {
	// Store holds the job's markers and segments, and takes the output.
	Store    *jobstore.Store
	Stitcher VideoStitcher
	Media    Media
	TempDir  string // "" means os.TempDir()
	// Downloads is how many segments are fetched at once; 0 means 8.
	Downloads int
	// Plans returns the accepted spec of a job (jobstore.Accepted): the
	// stitcher joins only the planned chunks into the planned output, each
	// segment the one its completion marker names, with the size it
	// promises. Deployments always set it; nil skips the check (unit tests
	// of the other checks).
	Plans  jobstore.Plans
	Logger *slog.Logger
}

// Handle joins the request's segments into its output. Segments placed on
// the job's timeline (MP4 family) are joined as bytes (join.go); others are
// downloaded in parallel, each one's frame count checked, joined by the
// Stitcher, and the total checked. Nothing is published unless every check
// passes. Errors are *joberr.Error. The result reports the storage requests
// the stitch made, for the job's cost.
func (h *Handler) Handle(ctx context.Context, req job.StitchRequest) (job.StitchResult, error) {
	var ops storage.Ops
	res, err := h.handle(storage.WithOps(ctx, &ops), req)
	res.Requests = ops.Counts()
	return res, err
}

func (h *Handler) handle(ctx context.Context, req job.StitchRequest) (job.StitchResult, error) {
	if err := req.Validate(); err != nil {
		return job.StitchResult{}, joberr.AsError(err)
	}
	start := time.Now()
	log := h.logger().With("jobId", req.JobID, "segments", len(req.Segments))
	// Segments joined as bytes are not read: their markers say what they
	// hold, so they are always read.
	markers, err := h.planned(ctx, req, req.Timeline != nil)
	if err != nil {
		return job.StitchResult{}, err
	}
	if req.Timeline != nil {
		res, err := h.join(ctx, req, markers)
		res.DurationMs = time.Since(start).Milliseconds()
		if err == nil {
			log.Info("stitched", "output", req.OutputKey, "bytes", res.Bytes, "frames", res.Frames, "method", res.Method,
				"bytesStreamed", res.BytesStreamed, "ms", res.DurationMs)
		}
		return res, err
	}
	dir, err := os.MkdirTemp(h.TempDir, "helios-stitch-*")
	if err != nil {
		return job.StitchResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "create work dir: %v", err)
	}
	defer os.RemoveAll(dir)
	output, frames, err := h.concat(ctx, req, markers, dir)
	if err != nil {
		return job.StitchResult{}, err
	}
	return h.publish(ctx, req, output, frames, start, log)
}

// concat downloads the segments into dir in parallel, each one checked,
// joins them with the Stitcher and checks the total: it returns the
// joined file and its frames.
func (h *Handler) concat(ctx context.Context, req job.StitchRequest, markers []job.WorkerResult, dir string) (string, int, error) {
	local := make([]string, len(req.Segments))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cmp.Or(h.Downloads, 8))
	for i, seg := range req.Segments {
		local[i] = filepath.Join(dir, fmt.Sprintf("seg-%06d%s", i, path.Ext(seg.Key)))
		g.Go(func() error { return h.fetch(gctx, seg, i, local[i], markers) })
	}
	if err := g.Wait(); err != nil {
		return "", 0, joberr.AsError(err)
	}

	output := filepath.Join(dir, "output"+path.Ext(req.OutputKey))
	if err := h.Stitcher.Stitch(ctx, local, output); err != nil {
		return "", 0, joberr.AsError(err)
	}
	want := req.TotalFrames()
	got, err := h.Media.CountFrames(ctx, output)
	if err != nil {
		return "", 0, joberr.Errorf(joberr.Retryable, joberr.CodeFrameMismatch, "%v", err)
	}
	if got != want {
		return "", 0, joberr.Errorf(joberr.Retryable, joberr.CodeFrameMismatch,
			"stitched output has %d frames, the segments add up to %d; nothing was published", got, want)
	}
	return output, got, nil
}

// publish publishes the joined file output, of frames frames, as the
// request's output. It never replaces a published video: an earlier
// stitch of this job got there first (only this job's stitcher writes its
// output key).
func (h *Handler) publish(ctx context.Context, req job.StitchRequest, output string, frames int, start time.Time, log *slog.Logger) (job.StitchResult, error) {
	n, err := h.Store.PublishOutputFile(ctx, req.OutputKey, output)
	if errors.Is(err, storage.ErrExists) {
		size, serr := h.Store.OutputSize(ctx, req.OutputKey)
		if serr != nil {
			return job.StitchResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", serr)
		}
		log.Info("output already published by an earlier stitch; left as it is", "output", req.OutputKey)
		return job.StitchResult{OutputKey: req.OutputKey, Bytes: size, Frames: frames, DurationMs: time.Since(start).Milliseconds()}, nil
	}
	if err != nil {
		return job.StitchResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err)
	}
	res := job.StitchResult{OutputKey: req.OutputKey, Bytes: n, Frames: frames, DurationMs: time.Since(start).Milliseconds()}
	log.Info("stitched", "output", req.OutputKey, "bytes", n, "frames", frames, "ms", res.DurationMs)
	return res, nil
}

// planned checks req against the accepted spec and each segment against
// its chunk's completion marker; it returns the markers, whose sizes and
// checksums the segments must have (nil without Plans, unless always).
func (h *Handler) planned(ctx context.Context, req job.StitchRequest, always bool) ([]job.WorkerResult, error) {
	var spec *job.Spec
	if h.Plans != nil {
		var err error
		spec, err = h.Plans.Check(ctx, req.JobID, func(s *job.Spec) error { return s.CheckStitchRequest(req) })
		if err != nil {
			return nil, err
		}
	} else if !always {
		return nil, nil
	}
	markers := make([]job.WorkerResult, len(req.Segments))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(markerReads)
	for i := range req.Segments {
		g.Go(func() error {
			m, err := h.marker(gctx, req, i, spec)
			markers[i] = m
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, joberr.AsError(err)
	}
	return markers, nil
}

// marker reads chunk i's completion marker, which must name the request's
// segment i and, with spec, describe the planned chunk.
func (h *Handler) marker(ctx context.Context, req job.StitchRequest, i int, spec *job.Spec) (job.WorkerResult, error) {
	seg := req.Segments[i]
	m, err := h.Store.Marker(ctx, req.JobID, i, spec)
	var stray *jobstore.StrayMarkerError
	switch {
	case errors.Is(err, jobstore.ErrNoMarker):
		return m, joberr.Errorf(joberr.Permanent, joberr.CodeMissingOutput, "chunk %d has no completion marker", i).WithChunk(i)
	case errors.As(err, &stray):
		err = stray.Why
	case err != nil:
		return m, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err).WithChunk(i)
	}
	if err != nil || m.SegmentKey != seg.Key {
		return m, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "segment %s is not the one chunk %d's marker names (%s): %v", seg.Key, i, m.SegmentKey, err).WithChunk(i)
	}
	return m, nil
}

func (h *Handler) fetch(ctx context.Context, seg job.Segment, i int, dst string, markers []job.WorkerResult) error {
	n, err := h.Store.DownloadSegment(ctx, seg.Key, dst)
	if err != nil {
		if storage.IsNotFound(err) {
			return joberr.Errorf(joberr.Permanent, joberr.CodeMissingOutput, "segment %s does not exist", seg.Key).WithChunk(i)
		}
		return joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err).WithChunk(i)
	}
	if markers != nil {
		// Replaced, truncated or corrupted since its worker checked it.
		if n != markers[i].Bytes {
			return joberr.Errorf(joberr.Permanent, joberr.CodeFrameMismatch, "segment %s is %d bytes; its marker promises %d", seg.Key, n, markers[i].Bytes).WithChunk(i)
		}
		if want := markers[i].SHA256; want != "" {
			if got, err := storage.FileSHA256(dst); err != nil {
				return joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "checksum %s: %v", seg.Key, err).WithChunk(i)
			} else if got != want {
				return joberr.Errorf(joberr.Permanent, joberr.CodeFrameMismatch, "segment %s does not have the SHA-256 its marker promises: it changed after its worker checked it", seg.Key).WithChunk(i)
			}
		}
	}
	got, err := h.Media.CountFrames(ctx, dst)
	if err != nil {
		return joberr.Errorf(joberr.Retryable, joberr.CodeFrameMismatch, "%v", err).WithChunk(i)
	}
	if got != seg.Frames {
		return joberr.Errorf(joberr.Retryable, joberr.CodeFrameMismatch, "segment %s has %d frames, expected %d", seg.Key, got, seg.Frames).WithChunk(i)
	}
	return nil
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}
