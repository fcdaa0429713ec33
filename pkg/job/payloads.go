package job

import (
	"fmt"
	"path"
	"strings"

	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/layout"
)

// WorkerJob is the payload of the chunk worker: run one command that renders
// one chunk into OutputFile, inside a fresh work dir.
type WorkerJob struct {
	JobID      string            `json:"jobId"`
	Chunk      Chunk             `json:"chunk"`
	Attempt    int               `json:"attempt"`
	Command    string            `json:"command"`
	Args       []string          `json:"args"`
	Env        map[string]string `json:"env,omitempty"`
	OutputFile string            `json:"outputFile"`
	Assets     string            `json:"assets,omitempty"`
	Timeout    Duration          `json:"timeout,omitzero"`
	// Run is the orchestrator run (lease generation) that sent the job.
	Run int `json:"run,omitempty"`
	// KeepSegment leaves the segment untagged, so the bucket's lifecycle
	// rule for leftover segments does not expire it (spec keepChunks).
	KeepSegment bool `json:"keepSegment,omitempty"`
	// Timeline, for the MP4 family, has the worker place its segment on
	// the job's timeline so the stitcher can join segments as bytes.
	Timeline *Timeline `json:"timeline,omitempty"`
}

// RendererProgram is the Helios renderer's command (renderers/helios):
// chunks that run it need a worker with Chromium.
const RendererProgram = "helios"

// NeedsBrowser reports whether the chunk renders a Helios composition.
func (w WorkerJob) NeedsBrowser() bool { return w.Command == RendererProgram }

// Timeline is what a worker needs to place its chunk on the job's
// timeline: the frame rate of the video and the grid of the audio.
type Timeline struct {
	FPS   float64     `json:"fps"`
	Audio AudioFormat `json:"audio"`
}

// AudioKey is where this attempt's audio goes, as raw PCM (s16le) on the
// job's audio grid, when its segment has audio.
func (w WorkerJob) AudioKey() string { return layout.AudioKeyFor(w.SegmentKey()) }

// Format is the segment container, from OutputFile's extension.
func (w WorkerJob) Format() string { return strings.TrimPrefix(path.Ext(w.OutputFile), ".") }

// SegmentKey is where this attempt's segment is uploaded.
func (w WorkerJob) SegmentKey() string {
	return layout.SegmentKey(w.JobID, w.Chunk.Index, w.Run, w.Attempt, w.Format())
}

// Validate checks what a worker must trust before it acts: it may be invoked
// directly, not only by the orchestrator.
func (w WorkerJob) Validate() error {
	v := &validator{allowed: nil}
	if !layout.ValidID(w.JobID) {
		v.addf("jobId", "must be %s; got %q", layout.IDRule, w.JobID)
	}
	if w.Chunk.Index < 0 || w.Chunk.Start < 0 || w.Chunk.Count <= 0 {
		v.addf("chunk", "needs index >= 0, start >= 0 and count >= 1; got %+v", w.Chunk)
	}
	if w.Attempt < 1 {
		v.addf("attempt", "must be at least 1; got %d", w.Attempt)
	}
	if w.Run < 0 {
		v.addf("run", "must not be negative; got %d", w.Run)
	}
	if w.Command == "" {
		v.addf("command", "must not be empty")
	}
	v.relativePath("outputFile", w.OutputFile)
	v.env(w.Env)
	if w.Assets != "" && !layout.ValidAssetKey(w.Assets) {
		v.addf("assets", "must be a key of the form assets/<64 hex sha256>.tar.gz; got %q", w.Assets)
	}
	if w.Timeout.Duration < 0 {
		v.addf("timeout", "must not be negative; got %s", w.Timeout)
	}
	v.timeline(w.Timeline, w.Format())
	if len(v.problems) > 0 {
		return &joberr.ValidationError{Problems: v.problems}
	}
	return nil
}

// WorkerResult is what a worker returns, and, for the attempt that won, the
// content of the chunk's completion marker.
type WorkerResult struct {
	JobID      string `json:"jobId"`
	Chunk      Chunk  `json:"chunk"`
	Attempt    int    `json:"attempt"`
	SegmentKey string `json:"segmentKey"`
	Bytes      int64  `json:"bytes"`
	SHA256     string `json:"sha256,omitempty"` // of the segment as uploaded: the stitcher checks it
	Frames     int    `json:"frames"`
	ExitCode   int    `json:"exitCode"`
	DurationMs int64  `json:"durationMs"` // the command's run time
	// MD5 (hex) of the segment as uploaded: a stitcher that joins segments
	// without reading them compares it with the store's own.
	MD5 string `json:"md5,omitempty"`
	// Init is the segment's fragmented-MP4 init (ftyp+moov) as placed, for
	// the MP4 family: the stitcher checks every chunk's against chunk 0's,
	// whose segment begins with it.
	Init []byte `json:"init,omitempty"`
	// Audio is the chunk's audio, when its segment has some.
	Audio *AudioPart `json:"audio,omitempty"`
	// Warnings are what the command reported that did not fail the chunk
	// but may make its frames differ from what was asked (helios render:
	// a video that never moved, frames that are all the same, a request
	// the page lost), kept in the marker so a resumed job still has them.
	Warnings []string `json:"warnings,omitempty"`
	// Winner is false when another attempt had already completed the chunk;
	// the other fields then describe that attempt, read from the marker.
	Winner bool `json:"winner"`
	// Requests are the storage requests this invocation made (never
	// stored in the marker: they are this attempt's, whoever won).
	Requests RequestCounts `json:"requests,omitzero"`
}

// UploadKeys are the keys r's attempt uploaded: its segment and its audio.
func (r WorkerResult) UploadKeys() []string {
	var keys []string
	if r.SegmentKey != "" {
		keys = append(keys, r.SegmentKey)
	}
	if r.Audio != nil {
		keys = append(keys, r.Audio.Key)
	}
	return keys
}

// RequestCounts are storage requests by the class they are billed in: on
// S3 PUT, COPY, POST and LIST are one price and GET and HEAD another; on
// Cloud Storage the same split is class A and class B. Deletes are free
// and not counted.
type RequestCounts struct {
	Put  int64 `json:"put,omitempty"`
	Get  int64 `json:"get,omitempty"`
	List int64 `json:"list,omitempty"`
}

// Add returns the sum of c and d.
func (c RequestCounts) Add(d RequestCounts) RequestCounts {
	return RequestCounts{Put: c.Put + d.Put, Get: c.Get + d.Get, List: c.List + d.List}
}

// AudioPart is one chunk's audio as raw PCM, signed 16-bit little-endian,
// interleaved, at the job's audio format: exactly the chunk's share of the
// job's samples, so the parts of all chunks join without gap or overlap.
type AudioPart struct {
	Key     string `json:"key"`
	Samples int64  `json:"samples"` // per channel
	Bytes   int64  `json:"bytes"`
	SHA256  string `json:"sha256"`
	// Codec is the sample entry of the audio the command wrote (mp4a,
	// sowt, ...): the stitcher keeps PCM as PCM.
	Codec string `json:"codec"`
}

// Lossless reports whether the command wrote PCM or a lossless codec, whose
// decode is the samples it meant. A lossy encoder (AAC, what ffmpeg writes
// to MP4 unless told otherwise) primes and pads each chunk on its own: the
// chunks' audio then does not meet at the boundaries, and no stitcher can
// take that back.
func (a *AudioPart) Lossless() bool {
	switch a.Codec {
	case "sowt", "twos", "lpcm", "ipcm", "fpcm", "in24", "in32", "fl32", "fl64", "raw ", "alac", "fLaC":
		return true
	}
	return false
}

const lossyAudioPrefix = "the chunk's audio is lossy "

// IsLossyAudioWarning reports whether m is a LossyAudioWarning: moot in a
// job of one chunk, which has no boundary.
func IsLossyAudioWarning(m string) bool { return strings.HasPrefix(m, lossyAudioPrefix) }

// LossyAudioWarning is the warning of a chunk whose command wrote lossy
// audio, with the fix.
func LossyAudioWarning(codec string) string {
	return fmt.Sprintf(lossyAudioPrefix+"(%s): encoded chunk by chunk it clicks at the chunk boundaries; "+
		"have the chunk command write lossless audio (-c:a alac in .mp4, -c:a pcm_s16le in .mov): the video's audio is encoded once, from it", strings.TrimSpace(codec))
}

// Segment is one chunk's video, in order, as the stitcher receives it.
type Segment struct {
	Key    string `json:"key"`
	Frames int    `json:"frames"`
}

// StitchRequest is the payload of the stitcher.
type StitchRequest struct {
	JobID     string    `json:"jobId"`
	Segments  []Segment `json:"segments"`
	OutputKey string    `json:"outputKey"`
	// Timeline, for the MP4 family, says the segments were placed on the
	// job's timeline: they are joined as bytes, their audio encoded once.
	Timeline *Timeline `json:"timeline,omitempty"`
	// Faststart asks for a progressive MP4 with its index in front.
	Faststart bool `json:"faststart,omitempty"`
}

// StitchRequest builds the stitcher's payload for segments, in frame order.
func (s *Spec) StitchRequest(segments []Segment) StitchRequest {
	return StitchRequest{JobID: s.ID, OutputKey: s.Output, Segments: segments, Faststart: s.Faststart, Timeline: s.timeline()}
}

// timeline is where the spec's segments are placed: nil unless they are
// of the MP4 family (the output and every segment share a container).
func (s *Spec) timeline() *Timeline {
	if f, _ := FormatOf("." + s.SegmentFormat); !f.MP4 {
		return nil
	}
	return &Timeline{FPS: s.Metadata.FPS, Audio: s.Audio}
}

// sameTimeline reports whether a and b are both nil or equal.
func sameTimeline(a, b *Timeline) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// TotalFrames is the frame count the output must have.
func (r StitchRequest) TotalFrames() int {
	n := 0
	for _, s := range r.Segments {
		n += s.Frames
	}
	return n
}

// Validate checks the request before the stitcher reads or writes anything.
func (r StitchRequest) Validate() error {
	v := &validator{}
	if !layout.ValidID(r.JobID) {
		v.addf("jobId", "must be %s; got %q", layout.IDRule, r.JobID)
	}
	if len(r.Segments) == 0 || len(r.Segments) > MaxChunks {
		v.addf("segments", "must have between 1 and %d entries; got %d", MaxChunks, len(r.Segments))
	}
	for i, s := range r.Segments {
		if !IsSegmentKey(r.JobID, s.Key) {
			v.addf(fmt.Sprintf("segments[%d].key", i), "must be a segment key %s<index>.<run>-<attempt>.<ext>; got %q", layout.ChunksPrefix(r.JobID), s.Key)
		}
		if s.Frames <= 0 {
			v.addf(fmt.Sprintf("segments[%d].frames", i), "must be at least 1; got %d", s.Frames)
		}
	}
	if !layout.ValidOutputKey(r.JobID, r.OutputKey) {
		v.addf("outputKey", "must be a file directly in %s or a key under %s%s/; got %q", layout.JobDir(r.JobID), layout.OutputsPrefix, r.JobID, r.OutputKey)
	} else {
		v.timeline(r.Timeline, strings.TrimPrefix(path.Ext(r.OutputKey), "."))
	}
	if f, _ := FormatOf(r.OutputKey); r.Faststart && !f.MP4 {
		v.addf("faststart", "applies to the MP4 family (mp4, mov, m4v) only; got output %q", r.OutputKey)
	}
	if len(v.problems) > 0 {
		return &joberr.ValidationError{Problems: v.problems}
	}
	return nil
}

// StitchResult is what the stitcher returns.
type StitchResult struct {
	OutputKey  string `json:"outputKey"`
	Bytes      int64  `json:"bytes"`
	Frames     int    `json:"frames"`
	DurationMs int64  `json:"durationMs"`
	// Method is how the segments were joined (storage.ConcatMethod, or
	// "remux" for one ffmpeg pass, or "concat-demuxer"), and BytesStreamed
	// how many of their bytes passed through the stitcher.
	Method        string `json:"method,omitempty"`
	BytesStreamed int64  `json:"bytesStreamed,omitempty"`
	// Requests are the storage requests the stitch made.
	Requests RequestCounts `json:"requests,omitzero"`
}
