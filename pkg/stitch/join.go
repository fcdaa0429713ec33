package stitch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/fmp4"
	"github.com/helios-project/infrastructure/pkg/framerate"
	"github.com/helios-project/infrastructure/pkg/job"
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
	if err := joinable(req, markers); err != nil {
		return res, err
	}
	res.Frames = req.TotalFrames()
	if err := h.checkStored(ctx, req, markers); err != nil {
		return res, err
	}
	keys := make([]string, len(req.Segments))
	audio := false
	for i, seg := range req.Segments {
		keys[i] = seg.Key
		audio = audio || markers[i].Audio != nil
	}

	if !audio && !req.Faststart {
		stats, err := storage.Concat(ctx, h.Bucket, req.OutputKey, keys, storage.ConcatOptions{})
		res.Method, res.Bytes, res.BytesStreamed = string(stats.Method), stats.Bytes, stats.BytesStreamed
		if err != nil {
			return h.published(ctx, res, err)
		}
		return res, nil
	}
	return h.remux(ctx, req, markers, keys, res)
}

// joinable checks, from the markers, that the segments make one video:
// every init decodes chunk 0's fragments, and the sample counts add up.
func joinable(req job.StitchRequest, markers []job.WorkerResult) error {
	for i, m := range markers {
		if len(m.Init) == 0 {
			return job.Errorf(job.Permanent, job.CodeInvalid, "chunk %d's marker has no init: its segment was not placed on the job's timeline", i).WithChunk(i)
		}
		if m.Frames != req.Segments[i].Frames {
			return job.Errorf(job.Permanent, job.CodeFrameMismatch, "chunk %d's segment has %d frames, the request expects %d", i, m.Frames, req.Segments[i].Frames).WithChunk(i)
		}
		if i == 0 {
			continue
		}
		if err := fmp4.Joinable(markers[0].Init, m.Init); err != nil {
			return job.Errorf(job.Permanent, job.CodeIncompatible, "chunk %d cannot be joined with chunk 0: %v", i, err).WithChunk(i)
		}
	}
	return nil
}

// checkStored compares every segment and audio part with what its marker
// promises, from one listing of the job's chunks: present, the same size,
// and, where the store keeps an MD5 of it, the same MD5. A segment that
// changed after its worker checked it is damaged: its chunk is rendered
// again (the orchestrator's stitch loop).
func (h *Handler) checkStored(ctx context.Context, req job.StitchRequest, markers []job.WorkerResult) error {
	objs, err := storage.ListObjects(ctx, h.Bucket, job.ChunksPrefix(req.JobID))
	if err != nil {
		return job.Errorf(job.Retryable, job.CodeStorage, "list the segments: %v", err)
	}
	stored := make(map[string]*blob.ListObject, len(objs))
	for _, obj := range objs {
		stored[obj.Key] = obj
	}
	check := func(i int, key string, size int64, md5hex string) error {
		obj := stored[key]
		switch {
		case obj == nil:
			return job.Errorf(job.Permanent, job.CodeMissingOutput, "%s does not exist", key).WithChunk(i)
		case obj.Size != size:
			return job.Errorf(job.Permanent, job.CodeFrameMismatch, "%s is %d bytes; its marker promises %d", key, obj.Size, size).WithChunk(i)
		case md5hex != "" && len(obj.MD5) > 0 && fmt.Sprintf("%x", obj.MD5) != md5hex:
			return job.Errorf(job.Permanent, job.CodeFrameMismatch, "%s does not have the MD5 its marker promises: it changed after its worker checked it", key).WithChunk(i)
		}
		return nil
	}
	for i, m := range markers {
		if err := check(i, m.SegmentKey, m.Bytes, m.MD5); err != nil {
			return err
		}
		if a := m.Audio; a != nil {
			if err := check(i, a.Key, a.Bytes, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// remux runs the joined segments through ffmpeg once, the video
// stream-copied: to add the audio, encoded once from every chunk's PCM
// (kept PCM in a QuickTime output of lossless chunks), and for a
// progressive output (faststart, or AAC audio), which needs a local file
// for ffmpeg to write its index into.
func (h *Handler) remux(ctx context.Context, req job.StitchRequest, markers []job.WorkerResult, keys []string, res job.StitchResult) (job.StitchResult, error) {
	res.Method = MethodRemux
	if exists, err := h.Bucket.Exists(ctx, req.OutputKey); err != nil || exists {
		if err == nil {
			err = storage.ErrExists
		}
		return h.published(ctx, res, err)
	}
	video := &objects{ctx: ctx, b: h.Bucket, keys: keys}
	defer video.Close() // what ffmpeg did not read, had it stopped early
	r := ffmpeg.Remux{Video: video, Format: strings.TrimPrefix(filepath.Ext(req.OutputKey), ".")}
	if pcm, parts := h.audio(ctx, req, markers); pcm != nil {
		defer parts.Close()
		r.Audio = pcm
	}

	var err error
	// AAC primes and pads: edit lists take both back, but ffmpeg (and
	// Chromium, which plays MP4 through it) honour them only in a
	// progressive file; a fragmented one would start early and last
	// longer. So AAC audio goes to a progressive, faststart output.
	if req.Faststart || (r.Audio != nil && r.Audio.Codec == job.AudioAAC) {
		var dir string
		if dir, err = os.MkdirTemp(h.TempDir, "helios-stitch-*"); err != nil {
			return res, job.Errorf(job.Retryable, job.CodeInternal, "create work dir: %v", err)
		}
		defer os.RemoveAll(dir)
		r.OutputFile = filepath.Join(dir, "output"+filepath.Ext(req.OutputKey))
		if err = h.Media.Remux(ctx, r); err == nil {
			res.Bytes, err = storage.UploadFileOnce(ctx, h.Bucket, r.OutputFile, req.OutputKey)
		}
	} else {
		// ffmpeg writes into the upload as it goes; either failing aborts
		// the other, and the upload publishes nothing unless complete.
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			r.Output = pw
			err := h.Media.Remux(ctx, r)
			pw.CloseWithError(cmpErr(err, io.EOF))
			done <- err
		}()
		var n int64
		n, err = storage.WriteOnce(ctx, h.Bucket, req.OutputKey, pr)
		pr.CloseWithError(cmpErr(err, io.ErrClosedPipe))
		if ferr := <-done; ferr != nil && (err == nil || !errors.Is(err, storage.ErrExists)) {
			err = ferr
		}
		res.Bytes = n
	}
	res.BytesStreamed = video.n
	if err != nil {
		return h.published(ctx, res, err)
	}
	return res, nil
}

// audio is every chunk's PCM in order, silence for a chunk without
// audio, and what to close once it is read; nil if no chunk has any.
func (h *Handler) audio(ctx context.Context, req job.StitchRequest, markers []job.WorkerResult) (*ffmpeg.PCM, io.Closer) {
	t := req.Timeline
	rate, err := framerate.Of(t.FPS)
	if err != nil {
		return nil, nil
	}
	var parts []io.Reader
	var stored closers
	lossless, some := true, false
	for _, m := range markers {
		if a := m.Audio; a != nil {
			some = true
			lossless = lossless && isLossless(a.Codec)
			part := &objects{ctx: ctx, b: h.Bucket, keys: []string{a.Key}}
			parts, stored = append(parts, part), append(stored, part)
			continue
		}
		samples := rate.SampleAt(int64(m.Chunk.End()), t.Audio.SampleRate) - rate.SampleAt(int64(m.Chunk.Start), t.Audio.SampleRate)
		parts = append(parts, io.LimitReader(zeros{}, samples*int64(t.Audio.Channels)*2))
	}
	if !some {
		return nil, nil
	}
	codec := t.Audio.Codec
	if codec == "" {
		codec = job.AudioAAC
		if lossless && strings.HasSuffix(req.OutputKey, ".mov") {
			codec = job.AudioPCM // QuickTime keeps PCM; ffmpeg's MP4 muxer does not take it
		}
	}
	return &ffmpeg.PCM{Data: io.MultiReader(parts...), SampleRate: t.Audio.SampleRate, Channels: t.Audio.Channels, Codec: codec}, stored
}

type closers []*objects

func (cs closers) Close() error {
	for _, c := range cs {
		c.Close()
	}
	return nil
}

// isLossless reports whether a sample entry type is PCM or a lossless
// codec, whose decode is the samples the command meant.
func isLossless(codec string) bool {
	switch codec {
	case "sowt", "twos", "lpcm", "ipcm", "fpcm", "in24", "in32", "fl32", "fl64", "raw ", "alac", "fLaC":
		return true
	}
	return false
}

// published turns a failed publication into the stitcher's error; an
// output already there, from an earlier stitch of the job, is left as it
// is and reported as the result.
func (h *Handler) published(ctx context.Context, res job.StitchResult, err error) (job.StitchResult, error) {
	if !errors.Is(err, storage.ErrExists) {
		return res, job.AsError(job.Errorf(job.Retryable, job.CodeStorage, "%v", err))
	}
	attrs, aerr := h.Bucket.Attributes(ctx, res.OutputKey)
	if aerr != nil {
		return res, job.Errorf(job.Retryable, job.CodeStorage, "%v", aerr)
	}
	h.logger().Info("output already published by an earlier stitch; left as it is", "output", res.OutputKey)
	res.Bytes = attrs.Size
	return res, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// objects reads stored objects one after another, as one stream, opening
// each when the one before ends.
type objects struct {
	ctx  context.Context
	b    *blob.Bucket
	keys []string
	cur  *blob.Reader
	n    int64 // bytes read
}

func (o *objects) Read(p []byte) (int, error) {
	for {
		if o.cur == nil {
			if len(o.keys) == 0 {
				return 0, io.EOF
			}
			r, err := o.b.NewReader(o.ctx, o.keys[0], nil)
			if err != nil {
				return 0, fmt.Errorf("read %s: %w", o.keys[0], err)
			}
			o.cur, o.keys = r, o.keys[1:]
		}
		n, err := o.cur.Read(p)
		o.n += int64(n)
		if errors.Is(err, io.EOF) {
			o.cur.Close()
			o.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// Close closes the object being read, if any.
func (o *objects) Close() error {
	if o.cur == nil {
		return nil
	}
	err := o.cur.Close()
	o.cur = nil
	return err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
