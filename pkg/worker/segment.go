package worker

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/helios-project/infrastructure/pkg/fmp4"
	"github.com/helios-project/infrastructure/pkg/framerate"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// segment is what a chunk's command wrote, made ready to upload.
type segment struct {
	path        string
	frames      int
	sha256, md5 string
	init        []byte         // MP4 family: the placed init
	audio       *job.AudioPart // MP4 family with audio; its Key once stored
	audioPath   string
}

// segment checks the command's output and, for the MP4 family, places it
// on the job's timeline: its frames stream-copied into fragments at the
// chunk's place (chunk 0's preceded by the init, so the segments joined
// in order are the video), and its audio cut to the chunk's exact share
// of the job's samples as PCM. Frames are counted from the container's
// own sample counts, or, for other containers, by ffprobe.
func (h *Handler) segment(ctx context.Context, w job.WorkerJob, output, dir string) (segment, error) {
	seg := segment{path: output}
	if w.Timeline == nil {
		frames, err := h.Media.CountFrames(ctx, output)
		if err != nil {
			return seg, joberr.Errorf(joberr.Retryable, joberr.CodeFrameMismatch, "%v", err)
		}
		seg.frames = frames
	} else if err := h.place(ctx, w, output, dir, &seg); err != nil {
		return seg, err
	}
	if seg.frames != w.Chunk.Count {
		return seg, joberr.Errorf(joberr.Retryable, joberr.CodeFrameMismatch,
			"segment has %d frames, chunk [%d, %d) needs %d", seg.frames, w.Chunk.Start, w.Chunk.End(), w.Chunk.Count)
	}
	var err error
	if seg.sha256, seg.md5, err = storage.FileSums(seg.path); err != nil {
		return seg, joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "checksum %s: %v", w.OutputFile, err)
	}
	return seg, nil
}

// place puts the command's output on the job's timeline as seg: its
// fragments as written when they can be, otherwise stream-copied into
// fragments first, cutting the audio.
func (h *Handler) place(ctx context.Context, w job.WorkerJob, output, dir string, seg *segment) error {
	rate, err := framerate.Of(w.Timeline.FPS)
	if err != nil {
		return joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "timeline: %v", err)
	}
	summary, err := inspect(output)
	if err != nil {
		return joberr.Errorf(joberr.Retryable, joberr.CodeFrameMismatch, "%s: %v", w.OutputFile, err)
	}
	codec := summary.Audio
	seg.path = filepath.Join(dir, "placed."+w.Format())
	placement := fmp4.Placement{
		Start: w.Chunk.Start, Rate: rate, Delay: fmp4.DefaultDelay,
		// Fragments are at most frames, so numbering each chunk's from its
		// first frame keeps sequence numbers rising across chunks without
		// knowing how many fragments the others have.
		Sequence:  uint32(w.Chunk.Start) + 1,
		WriteInit: w.Chunk.Index == 0,
	}
	// A command that writes fragmented MP4 itself, video only, saves the
	// ffmpeg pass (about 150 ms a chunk here) if Place takes its fragments
	// as they are (a single video track, sample data addressed from each
	// moof).
	var placed *fmp4.Placed
	if summary.Fragmented && codec == "" {
		if placed, err = placeFile(seg.path, output, placement); err != nil {
			h.logger().Info("the command's fragments cannot be placed as written; stream-copying them first", "jobId", w.JobID, "chunk", w.Chunk.Index, "why", err)
			placed = nil
		}
	}
	var cut *fmp4.AudioCut
	if placed == nil {
		cut = audioCut(w, rate, codec, dir)
		if placed, err = h.fragment(ctx, w, output, dir, cut, seg.path, placement); err != nil {
			return err
		}
	}
	seg.frames, seg.init = placed.Samples, placed.Init.Bytes()
	if cut == nil {
		return nil
	}
	return checkAudio(w, cut, codec, seg)
}

// audioCut is where and how the chunk's audio is cut: its exact share of
// the job's samples; nil if the output has no audio (codec "").
func audioCut(w job.WorkerJob, rate framerate.Rate, codec, dir string) *fmp4.AudioCut {
	if codec == "" {
		return nil
	}
	a := w.Timeline.Audio
	return &fmp4.AudioCut{Path: filepath.Join(dir, "audio.pcm"), SampleRate: a.SampleRate, Channels: a.Channels,
		Samples: rate.Samples(w.Chunk.Start, w.Chunk.End(), a.SampleRate)}
}

// fragment stream-copies output into fragments with ffmpeg, cutting its
// audio if cut is not nil, and places them at dst.
func (h *Handler) fragment(ctx context.Context, w job.WorkerJob, output, dir string, cut *fmp4.AudioCut, dst string, p fmp4.Placement) (*fmp4.Placed, error) {
	fragmented := filepath.Join(dir, "fragmented.mp4")
	if err := h.Media.Fragment(ctx, output, fragmented, cut); err != nil {
		e := joberr.AsError(err)
		if e.Code == joberr.CodeCommandFailed {
			// ffmpeg could not read what the command wrote.
			e.Code = joberr.CodeFrameMismatch
		}
		return nil, e
	}
	placed, err := placeFile(dst, fragmented, p)
	if err != nil {
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			return nil, joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "place %s: %v", w.OutputFile, err) // the disk, not the video
		}
		// The same command renders the same frames: not worth a retry.
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeFrameMismatch, "%s cannot be placed on the job's timeline: %v", w.OutputFile, err)
	}
	return placed, nil
}

// checkAudio checks the cut audio is exactly the chunk's share and makes
// it seg's audio part (its key is given when it is stored).
func checkAudio(w job.WorkerJob, cut *fmp4.AudioCut, codec string, seg *segment) error {
	info, err := os.Stat(cut.Path)
	if err != nil {
		return joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "audio of %s: %v", w.OutputFile, err)
	}
	if want := cut.Samples * int64(cut.Channels) * 2; info.Size() != want {
		return joberr.Errorf(joberr.Retryable, joberr.CodeFrameMismatch, "audio of %s has %d bytes of PCM, the chunk's %d samples × %d channels need %d", w.OutputFile, info.Size(), cut.Samples, cut.Channels, want)
	}
	sum, _, err := storage.FileSums(cut.Path)
	if err != nil {
		return joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "checksum the audio of %s: %v", w.OutputFile, err)
	}
	seg.audioPath = cut.Path
	seg.audio = &job.AudioPart{Samples: cut.Samples, Bytes: info.Size(), SHA256: sum, Codec: codec}
	return nil
}

func inspect(path string) (fmp4.Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return fmp4.Summary{}, err
	}
	defer f.Close()
	return fmp4.Inspect(f)
}

func placeFile(dst, src string, p fmp4.Placement) (*fmp4.Placed, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return nil, err
	}
	placed, err := fmp4.Place(out, in, p)
	return placed, errors.Join(err, out.Close())
}

// checkJoinable fails the chunk for good if its init cannot be joined with
// chunk 0's, when chunk 0 is done: the same command would render the same
// init again. (The stitcher checks every chunk in any case.)
func (h *Handler) checkJoinable(ctx context.Context, w job.WorkerJob, spec *job.Spec, init []byte) error {
	first := w
	first.Chunk = job.Chunk{Index: 0}
	if spec != nil {
		first.Chunk = spec.Plan()[0]
	}
	m, ok, err := h.readMarker(ctx, first, spec)
	if err != nil || !ok || len(m.Init) == 0 {
		return err
	}
	if err := fmp4.Joinable(m.Init, init); err != nil {
		return joberr.Errorf(joberr.Permanent, joberr.CodeIncompatible, "chunk %d cannot be joined with chunk 0: %v", w.Chunk.Index, err)
	}
	return nil
}
