package stitch

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/fmp4"
	"github.com/helios-project/infrastructure/pkg/framerate"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// MethodRemux is StitchResult.Method for a join that took one ffmpeg pass.
const MethodRemux = "remux"

// join publishes the output of segments placed on the job's timeline:
// chunk 0's segment begins with the init, so the segments in order are
// the video. Nothing is decoded and no segment is downloaded to disk;
// what is checked comes from the markers (sample counts, inits, sizes and
// checksums the workers recorded) and the store's listing.
func (h *Handler) join(ctx context.Context, req job.StitchRequest, markers []job.WorkerResult) (job.StitchResult, error) {
	res := job.StitchResult{OutputKey: req.OutputKey}
	rate, err := framerate.Of(req.Timeline.FPS)
	if err != nil {
		return res, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "timeline: %v", err)
	}
	if err := joinable(req, markers, rate); err != nil {
		return res, err
	}
	res.Frames = req.TotalFrames()
	if err := h.checkStored(ctx, req, markers); err != nil {
		return res, err
	}
	audio := false
	for _, m := range markers {
		audio = audio || m.Audio != nil
	}
	if audio || req.Faststart {
		return h.remux(ctx, req, markers, rate, res)
	}
	keys := make([]string, len(req.Segments))
	for i, seg := range req.Segments {
		keys[i] = seg.Key
	}
	stats, err := h.Store.JoinOutput(ctx, req.OutputKey, keys)
	res.Method, res.Bytes, res.BytesStreamed = string(stats.Method), stats.Bytes, stats.BytesStreamed
	if err != nil {
		return h.published(ctx, res, err)
	}
	return res, nil
}

// joinable checks, from the markers, that the segments make one video:
// every init decodes chunk 0's fragments, the sample counts add up, and
// each chunk's audio is its own, exactly its share of the job's samples.
func joinable(req job.StitchRequest, markers []job.WorkerResult, rate framerate.Rate) error {
	grid := req.Timeline.Audio
	for i, m := range markers {
		if len(m.Init) == 0 {
			return joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "chunk %d's marker has no init: its segment was not placed on the job's timeline", i).WithChunk(i)
		}
		if m.Frames != req.Segments[i].Frames {
			return joberr.Errorf(joberr.Permanent, joberr.CodeFrameMismatch, "chunk %d's segment has %d frames, the request expects %d", i, m.Frames, req.Segments[i].Frames).WithChunk(i)
		}
		if a := m.Audio; a != nil {
			share := rate.Samples(m.Chunk.Start, m.Chunk.End(), grid.SampleRate)
			if a.Key != jobstore.AudioKey(m.SegmentKey) || a.Samples != share || a.Bytes != share*int64(grid.Channels)*2 {
				return joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "chunk %d's audio (%s, %d samples, %d bytes) is not its segment's, %d samples of %d channels",
					i, a.Key, a.Samples, a.Bytes, share, grid.Channels).WithChunk(i)
			}
		}
		if i == 0 {
			continue
		}
		if err := fmp4.Joinable(markers[0].Init, m.Init); err != nil {
			return joberr.Errorf(joberr.Permanent, joberr.CodeIncompatible, "chunk %d cannot be joined with chunk 0: %v", i, err).WithChunk(i)
		}
	}
	return nil
}

// checkStored compares every segment and audio part with what its marker
// promises, from one listing of the job's chunks: present, the same size,
// and, where the store keeps an MD5 of it, the same MD5. A segment that
// changed after its worker checked it is damaged: its chunk is rendered
// again (the orchestrator's stitch loop). An MD5 that differs is only a
// reason to read the segment and compare its SHA-256: an S3 ETag looks
// like an MD5 but is not one for a multipart or KMS-encrypted object.
// (The remux path checks every byte's SHA-256 as it reads them anyway.)
func (h *Handler) checkStored(ctx context.Context, req job.StitchRequest, markers []job.WorkerResult) error {
	stored, err := h.Store.StoredChunks(ctx, req.JobID)
	if err != nil {
		return joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "list the segments: %v", err)
	}
	check := func(i int, key string, size int64, md5hex, sha string) error {
		obj, ok := stored[key]
		switch {
		case !ok:
			return joberr.Errorf(joberr.Permanent, joberr.CodeMissingOutput, "%s does not exist", key).WithChunk(i)
		case obj.Size != size:
			return joberr.Errorf(joberr.Permanent, joberr.CodeFrameMismatch, "%s is %d bytes; its marker promises %d", key, obj.Size, size).WithChunk(i)
		case md5hex != "" && len(obj.MD5) > 0 && hex.EncodeToString(obj.MD5) != md5hex:
			return h.verify(ctx, part{chunk: i, key: key, size: size, sha256: sha})
		}
		return nil
	}
	for i, m := range markers {
		if err := check(i, m.SegmentKey, m.Bytes, m.MD5, m.SHA256); err != nil {
			return err
		}
		if a := m.Audio; a != nil {
			if err := check(i, a.Key, a.Bytes, "", a.SHA256); err != nil {
				return err
			}
		}
	}
	return nil
}

// verify reads p whole and checks it against its marker.
func (h *Handler) verify(ctx context.Context, p part) error {
	o := newObjects(ctx, h.Store, []part{p})
	defer o.release()
	if _, err := io.Copy(io.Discard, o); err != nil {
		if o.damaged != nil {
			return o.damaged
		}
		return joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err).WithChunk(p.chunk)
	}
	return nil
}

// remux runs the joined segments through ffmpeg once, the video
// stream-copied: to add the audio, encoded once from every chunk's PCM
// (kept PCM in a QuickTime output of lossless chunks), and for a
// progressive output (faststart, or AAC audio), which needs a local file
// for ffmpeg to write its index into. Every segment and audio part is
// checked against its marker as it streams through; the output is
// published only if ffmpeg read them all to their ends.
func (h *Handler) remux(ctx context.Context, req job.StitchRequest, markers []job.WorkerResult, rate framerate.Rate, res job.StitchResult) (job.StitchResult, error) {
	res.Method = MethodRemux
	if exists, err := h.Store.Exists(ctx, req.OutputKey); err != nil || exists {
		if err == nil {
			err = storage.ErrExists
		}
		return h.published(ctx, res, err)
	}
	video := newObjects(ctx, h.Store, segmentParts(markers))
	defer video.release()
	r := ffmpeg.Remux{Video: video, Format: strings.TrimPrefix(filepath.Ext(req.OutputKey), ".")}
	in := streams{video}
	if pcm, audio := h.audio(ctx, req, markers, rate); pcm != nil {
		defer audio.release()
		r.Audio, in = pcm, append(in, audio)
	}

	var err error
	// AAC primes and pads: edit lists take both back, but ffmpeg (and
	// Chromium, which plays MP4 through it) honour them only in a
	// progressive file; a fragmented one would start early and last
	// longer. So AAC audio goes to a progressive, faststart output.
	if req.Faststart || (r.Audio != nil && r.Audio.Codec == job.AudioAAC) {
		res.Bytes, err = h.remuxFile(ctx, req.OutputKey, r, in)
	} else {
		res.Bytes, err = h.remuxStream(ctx, req.OutputKey, r, in)
	}
	res.BytesStreamed = video.n
	if err != nil {
		if damaged := in.damaged(); damaged != nil {
			return res, damaged // the chunk is rendered again
		}
		return h.published(ctx, res, err)
	}
	return res, nil
}

// remuxFile has ffmpeg write a local file, which a progressive output
// needs for its index, and publishes it at key once ffmpeg has read every
// stream of in whole.
func (h *Handler) remuxFile(ctx context.Context, key string, r ffmpeg.Remux, in streams) (int64, error) {
	dir, err := os.MkdirTemp(h.TempDir, "helios-stitch-*")
	if err != nil {
		return 0, joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "create work dir: %v", err)
	}
	defer os.RemoveAll(dir)
	r.OutputFile = filepath.Join(dir, "output"+filepath.Ext(key))
	if err := h.Media.Remux(ctx, r); err != nil {
		return 0, err
	}
	if err := in.complete(); err != nil {
		return 0, err
	}
	return h.Store.PublishOutputFile(ctx, key, r.OutputFile)
}

// remuxStream has ffmpeg write into the upload of key as it goes. The
// upload is published only when ffmpeg ends well having read every stream
// of in whole; any failure of either aborts the other.
func (h *Handler) remuxStream(ctx context.Context, key string, r ffmpeg.Remux, in streams) (int64, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		r.Output = pw
		err := h.Media.Remux(ctx, r)
		if err == nil {
			err = in.complete()
		}
		if err != nil {
			pw.CloseWithError(err)
		} else {
			pw.Close()
		}
		done <- err
	}()
	n, err := h.Store.PublishOutput(ctx, key, pr)
	pr.CloseWithError(fmt.Errorf("the upload ended: %w", err))
	if ferr := <-done; err == nil {
		err = ferr
	}
	return n, err
}

// streams are the inputs of a remux, each checked against its markers as
// it is read.
type streams []*objects

// complete reports whether every stream was read to its end and matched.
func (in streams) complete() error {
	for _, s := range in {
		if err := s.complete(); err != nil {
			return err
		}
	}
	return nil
}

// damaged is the first part found not to be what its marker promises.
func (in streams) damaged() *joberr.Error {
	for _, s := range in {
		if s.damaged != nil {
			return s.damaged
		}
	}
	return nil
}

// segmentParts are the segments, in order, as their markers describe them.
func segmentParts(markers []job.WorkerResult) []part {
	parts := make([]part, len(markers))
	for i, m := range markers {
		parts[i] = part{chunk: i, key: m.SegmentKey, size: m.Bytes, sha256: m.SHA256}
	}
	return parts
}

// audio is every chunk's PCM in order, silence for a chunk without audio,
// and the codec to encode it to; nil if no chunk has audio.
func (h *Handler) audio(ctx context.Context, req job.StitchRequest, markers []job.WorkerResult, rate framerate.Rate) (*ffmpeg.PCM, *objects) {
	grid := req.Timeline.Audio
	parts := make([]part, len(markers))
	lossless, some := true, false
	for i, m := range markers {
		share := rate.Samples(m.Chunk.Start, m.Chunk.End(), grid.SampleRate)
		parts[i] = part{chunk: i, size: share * int64(grid.Channels) * 2}
		if a := m.Audio; a != nil {
			some = true
			lossless = lossless && a.Lossless()
			parts[i].key, parts[i].sha256 = a.Key, a.SHA256
		}
	}
	if !some {
		return nil, nil
	}
	codec := grid.Codec
	if codec == "" {
		codec = job.AudioAAC
		if lossless && strings.HasSuffix(req.OutputKey, ".mov") {
			codec = job.AudioPCM // QuickTime keeps PCM; ffmpeg's MP4 muxer does not take it
		}
	}
	audio := newObjects(ctx, h.Store, parts)
	return &ffmpeg.PCM{Data: audio, SampleRate: grid.SampleRate, Channels: grid.Channels, Codec: codec}, audio
}

// published turns a failed publication into the stitcher's error; an
// output already there, from an earlier stitch of the job, is left as it
// is and reported as the result.
func (h *Handler) published(ctx context.Context, res job.StitchResult, err error) (job.StitchResult, error) {
	if !errors.Is(err, storage.ErrExists) {
		if e := (*joberr.Error)(nil); errors.As(err, &e) {
			return res, e // ffmpeg's failure, with its stderr
		}
		return res, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err)
	}
	size, serr := h.Store.OutputSize(ctx, res.OutputKey)
	if serr != nil {
		return res, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", serr)
	}
	h.logger().Info("output already published by an earlier stitch; left as it is", "output", res.OutputKey)
	res.Bytes = size
	return res, nil
}
