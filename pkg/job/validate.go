package job

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/helios-project/infrastructure/pkg/ffargs"
	"github.com/helios-project/infrastructure/pkg/framerate"
)

// Validate checks a normalized spec against the allowlist and returns a
// *ValidationError listing every problem, or nil.
func (s *Spec) Validate(allowed Allowlist) error {
	return s.ValidateRules(Rules{Programs: allowed})
}

// Rules are what a deployment lets a job run: the programs, and what it
// adds to the ffmpeg allowlists (HELIOS_FFMPEG_FILTERS, _OPTIONS).
type Rules struct {
	Programs Allowlist
	FFmpeg   ffargs.Extra
}

// ValidateRules checks the spec against r, as Validate does.
func (s *Spec) ValidateRules(r Rules) error {
	v := &validator{allowed: r.Programs, ffmpeg: r.FFmpeg, spec: s}
	v.check(s)
	return v.err()
}

// err is the problems found, as a *ValidationError, or nil.
func (v *validator) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

type validator struct {
	allowed  Allowlist
	ffmpeg   ffargs.Extra
	spec     *Spec // the spec being checked, if any
	problems []Problem
}

func (v *validator) addf(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) check(s *Spec) {
	if !idPattern.MatchString(s.ID) {
		v.addf("id", "must be %s; got %q", IDRule, s.ID)
	}
	v.metadata(s.Metadata)
	if !slices.Contains(formatExts(), s.SegmentFormat) {
		v.addf("segmentFormat", "must be one of %s; got %q", strings.Join(formatExts(), ", "), s.SegmentFormat)
	}
	switch {
	case s.IsHeliosForm() && (s.Command != "" || len(s.Args) > 0 || s.FramesPerChunk != 0 || s.ChunkCount != 0):
		v.addf("chunks", "a Helios-form spec lists its chunks; remove command, args, framesPerChunk and chunkCount")
	case s.IsHeliosForm():
		v.heliosChunks(s)
	default:
		v.native(s)
	}
	v.output(s)
	v.mp4(s)
	v.env(s.Env)
	if s.Webhook != "" {
		if err := CheckWebhookURL(s.Webhook); err != nil {
			v.addf("webhook", "%v", err)
		}
	}
	if s.Assets != "" && !assetKeyPattern.MatchString(s.Assets) {
		v.addf("assets", "must be a key of the form assets/<64 hex sha256>.tar.gz; got %q", s.Assets)
	}
	v.retry(s.Retry)
	v.budget("budget", s.Budget)
	if t := s.ChunkTimeout.Seconds(); t < 1 || t > MaxChunkTime {
		v.addf("chunkTimeout", "must be between 1s and %dh; got %s", MaxChunkTime/3600, s.ChunkTimeout)
	}
}

// budget checks that the caps are sane: not negative, nor NaN.
func (v *validator) budget(path string, b Budget) {
	if !(b.USD >= 0) {
		v.addf(path+".usd", "must be a non-negative number of US dollars (0 or left out: no cap); got %v", b.USD)
	}
	if !(b.WorkerSeconds >= 0) {
		v.addf(path+".workerSeconds", "must be a non-negative number of seconds (0 or left out: no cap); got %v", b.WorkerSeconds)
	}
}

// CheckBudget validates a raised budget (`helios job budget`) as a spec's.
func CheckBudget(b Budget) error {
	v := &validator{}
	v.budget("budget", b)
	return v.err()
}

// mp4 checks what joining MP4-family segments as bytes needs: an exact
// frame rate (frame times computed in integers) and a sane audio grid.
func (v *validator) mp4(s *Spec) {
	f, ok := FormatOf("." + s.SegmentFormat)
	if !ok {
		return
	}
	if !f.MP4 {
		if s.Faststart {
			v.addf("faststart", "applies to the MP4 family (mp4, mov, m4v) only; segmentFormat is %q", s.SegmentFormat)
		}
		if s.Audio != (AudioFormat{}) {
			v.addf("audio", "applies to the MP4 family (mp4, mov, m4v) only; %s segments keep their own audio", s.SegmentFormat)
		}
		return
	}
	if _, err := framerate.Of(s.Metadata.FPS); err != nil && s.Metadata.FPS >= MinFPS && s.Metadata.FPS <= MaxFPS {
		v.addf("metadata.fps", "must be a whole number or an NTSC rate (23.976, 29.97, 59.94) for %s segments, which are joined on exact frame times; got %v (use segmentFormat mkv for other rates)", s.SegmentFormat, s.Metadata.FPS)
	}
	v.audio("audio", s.Audio, s.SegmentFormat, false)
}

// audio checks an audio format; 0s are the defaults unless required.
func (v *validator) audio(path string, a AudioFormat, format string, required bool) {
	if r := a.SampleRate; (r != 0 || required) && (r < 8000 || r > 192000) {
		v.addf(path+".sampleRate", "must be from 8000 to 192000 Hz; got %d", r)
	}
	if c := a.Channels; (c != 0 || required) && (c < 1 || c > 8) {
		v.addf(path+".channels", "must be from 1 to 8; got %d", c)
	}
	switch c := a.Codec; {
	case c != "" && c != AudioAAC && c != AudioPCM:
		v.addf(path+".codec", "must be %q or %q (or left out); got %q", AudioAAC, AudioPCM, c)
	case c == AudioPCM && format != "mov":
		v.addf(path+".codec", "%q needs a mov output (ffmpeg's MP4 muxer does not take PCM); the container is %q", c, format)
	}
}

// timeline checks the timeline a worker or a stitcher is handed, for a
// segment or output in format: it may be invoked directly. (Without one,
// MP4-family segments are counted with ffprobe and joined by the concat
// demuxer, as other containers are; the accepted spec says which.)
func (v *validator) timeline(t *Timeline, format string) {
	f, _ := FormatOf("." + format)
	switch {
	case t == nil:
	case !f.MP4:
		v.addf("timeline", "applies to the MP4 family (mp4, mov, m4v) only; the container is %q", format)
	default:
		if _, err := framerate.Of(t.FPS); err != nil {
			v.addf("timeline.fps", "must be a whole number or an NTSC rate; got %v", t.FPS)
		}
		v.audio("timeline.audio", t.Audio, format, true)
	}
}

func (v *validator) metadata(m Metadata) {
	if m.TotalFrames <= 0 || m.TotalFrames > MaxTotalFrames {
		v.addf("metadata.totalFrames", "must be between 1 and %d; got %d", MaxTotalFrames, m.TotalFrames)
	}
	if !(m.FPS >= MinFPS && m.FPS <= MaxFPS) {
		v.addf("metadata.fps", "must be from %g to %d; got %v", MinFPS, MaxFPS, m.FPS)
	}
	if m.Width <= 0 || m.Width > MaxDimension {
		v.addf("metadata.width", "must be between 1 and %d; got %d", MaxDimension, m.Width)
	}
	if m.Height <= 0 || m.Height > MaxDimension {
		v.addf("metadata.height", "must be between 1 and %d; got %d", MaxDimension, m.Height)
	}
	if m.Duration < 0 {
		v.addf("metadata.duration", "must not be negative; got %v", m.Duration)
	}
}

func (v *validator) native(s *Spec) {
	v.nativeCommand(s)
	v.nativeArgs(s)
	v.chunking(s)
}

// nativeCommand checks the program a native spec runs for every chunk.
func (v *validator) nativeCommand(s *Spec) {
	switch {
	case s.Command == "":
		v.addf("command", "must name the program that renders a chunk (for example \"ffmpeg\")")
	case strings.ContainsAny(s.Command, " \t\n"):
		v.addf("command", "must be a program name only; put its arguments in args; got %q", s.Command)
	default:
		v.program("command", s.Command)
	}
}

// nativeArgs checks the arguments: their number and size, what ffmpeg may
// be told, the placeholders, and that the output is named.
func (v *validator) nativeArgs(s *Spec) {
	if len(s.Args) > MaxArgs {
		v.addf("args", "must have at most %d entries; got %d", MaxArgs, len(s.Args))
	}
	v.commandSize("args", s.Args, s.Env)
	v.ffmpegArgs("args", s.Command, s.Args, 0)
	hasOutput := false
	for i, a := range s.Args {
		names := v.placeholders(fmt.Sprintf("args[%d]", i), a)
		hasOutput = hasOutput || slices.Contains(names, "output")
	}
	if !hasOutput && s.Command != "" {
		v.addf("args", "must contain {output}, the file the command writes the segment to")
	}
}

// chunking checks how a native spec cuts its frames: by size or by count,
// within the limits on chunks.
func (v *validator) chunking(s *Spec) {
	total := s.Metadata.TotalFrames
	switch {
	case s.FramesPerChunk != 0 && s.ChunkCount != 0:
		v.addf("framesPerChunk", "give framesPerChunk or chunkCount, not both")
	case s.FramesPerChunk == 0 && s.ChunkCount == 0:
		v.addf("framesPerChunk", "one of framesPerChunk or chunkCount is required")
	case s.FramesPerChunk < 0 || s.FramesPerChunk > MaxTotalFrames:
		v.addf("framesPerChunk", "must be between 1 and %d; got %d", MaxTotalFrames, s.FramesPerChunk)
	case s.ChunkCount < 0:
		v.addf("chunkCount", "must be at least 1; got %d", s.ChunkCount)
	case total > 0 && s.ChunkCount > total:
		v.addf("chunkCount", "must not exceed metadata.totalFrames (%d); got %d", total, s.ChunkCount)
	case s.ChunkCount > MaxChunks:
		v.addf("chunkCount", "must be at most %d; got %d", MaxChunks, s.ChunkCount)
	case s.FramesPerChunk > 0 && total > 0 && ceilDiv(total, s.FramesPerChunk) > MaxChunks:
		v.addf("framesPerChunk", "makes %d chunks of %d frames; at most %d chunks are allowed", ceilDiv(total, s.FramesPerChunk), s.FramesPerChunk, MaxChunks)
	}
}

func (v *validator) heliosChunks(s *Spec) {
	if len(s.Chunks) > MaxChunks {
		v.addf("chunks", "must have at most %d entries; got %d", MaxChunks, len(s.Chunks))
		return
	}
	ids := map[int]int{}
	outs := chunkOutputs{seen: map[string]int{}, ok: true}
	for i, c := range s.Chunks {
		p := fmt.Sprintf("chunks[%d]", i)
		if j, dup := ids[c.ID]; dup {
			v.addf(p+".id", "duplicates chunks[%d].id (%d)", j, c.ID)
		}
		ids[c.ID] = i
		if c.StartFrame < 0 || c.StartFrame >= MaxTotalFrames {
			v.addf(p+".startFrame", "must be between 0 and %d; got %d", MaxTotalFrames-1, c.StartFrame)
		}
		if c.FrameCount <= 0 || c.FrameCount > MaxTotalFrames {
			v.addf(p+".frameCount", "must be between 1 and %d; got %d", MaxTotalFrames, c.FrameCount)
		}
		v.chunkOutput(&outs, p, i, c.OutputFile)
		v.chunkCommand(p, c.Command, s.Env)
	}
	if outs.ok && outs.ext != "" && outs.ext != s.SegmentFormat {
		v.addf("segmentFormat", "is %q but the chunks write .%s files; leave it out or make it %q", s.SegmentFormat, outs.ext, outs.ext)
	}
	v.coverage(s)
}

// chunkOutputs is what the chunks' output files said so far: which chunk
// named each, their container, and whether all were valid paths.
type chunkOutputs struct {
	seen map[string]int
	ext  string
	ok   bool
}

// chunkOutput checks chunk i's output file: a path in the work dir, named by
// no other chunk, in the container of the others.
func (v *validator) chunkOutput(outs *chunkOutputs, p string, i int, file string) {
	if !v.relativePath(p+".outputFile", file) {
		outs.ok = false
		return
	}
	if j, dup := outs.seen[file]; dup {
		v.addf(p+".outputFile", "duplicates chunks[%d].outputFile (%q)", j, file)
	}
	outs.seen[file] = i
	switch e := strings.TrimPrefix(path.Ext(file), "."); {
	case outs.ext == "":
		outs.ext = e
	case e != outs.ext:
		v.addf(p+".outputFile", "must use the same container as the other chunks (.%s) so they can be joined without re-encoding; got %q", outs.ext, file)
	}
}

// chunkCommand checks a chunk's command line as the worker will run it.
func (v *validator) chunkCommand(p, command string, env map[string]string) {
	argv, err := SplitCommand(command)
	switch {
	case err != nil:
		v.addf(p+".command", "%v", err)
	case len(argv) == 0:
		v.addf(p+".command", "must not be empty")
	default:
		v.program(p+".command", argv[0])
		for _, a := range argv {
			v.placeholders(p+".command", a)
		}
		v.commandSize(p+".command", argv, env)
		v.ffmpegArgs(p+".command", argv[0], argv[1:], 1)
	}
}

// coverage checks that the chunks, in start order (Normalize sorted them),
// cover [0, totalFrames) exactly once.
func (v *validator) coverage(s *Spec) {
	total := s.Metadata.TotalFrames
	next := 0
	for i, c := range s.Chunks {
		if c.FrameCount <= 0 || c.StartFrame < 0 || c.FrameCount > MaxTotalFrames || c.StartFrame >= MaxTotalFrames {
			return // already reported; ranges are meaningless (and could overflow)
		}
		p := fmt.Sprintf("chunks[%d]", i)
		switch {
		case c.StartFrame > next:
			v.addf(p+".startFrame", "leaves a gap: frames [%d, %d) are in no chunk", next, c.StartFrame)
		case c.StartFrame < next:
			v.addf(p+".startFrame", "overlaps the previous chunk: frames [%d, %d) are in two chunks", c.StartFrame, min(next, c.StartFrame+c.FrameCount))
		}
		end := c.StartFrame + c.FrameCount
		if total > 0 && end > total {
			v.addf(p+".frameCount", "runs past metadata.totalFrames (%d): chunk ends at frame %d", total, end)
		}
		next = max(next, end)
	}
	if total > 0 && next < total {
		v.addf("chunks", "leave frames [%d, %d) uncovered; chunks must cover [0, metadata.totalFrames)", next, total)
	}
}

// relativePath checks a path that names a file inside the work dir.
func (v *validator) relativePath(p, file string) bool {
	switch {
	case file == "":
		v.addf(p, "must name the segment file the command writes, relative to the work dir")
	case !IsSafeRelative(file):
		v.addf(p, "must be a relative path inside the work dir, without '..'; got %q", file)
	case !slices.Contains(formatExts(), strings.TrimPrefix(path.Ext(file), ".")):
		v.addf(p, "must end in one of .%s; got %q", strings.Join(formatExts(), ", ."), file)
	default:
		return true
	}
	return false
}

func (v *validator) retry(r RetryPolicy) {
	if r.MaxAttempts < 1 || r.MaxAttempts > MaxAttempts {
		v.addf("retry.maxAttempts", "must be between 1 and %d; got %d", MaxAttempts, r.MaxAttempts)
	}
	if r.InitialBackoff.Duration < 0 {
		v.addf("retry.initialBackoff", "must not be negative; got %s", r.InitialBackoff)
	}
	if r.MaxBackoff.Duration < r.InitialBackoff.Duration {
		v.addf("retry.maxBackoff", "must be at least retry.initialBackoff (%s); got %s", r.InitialBackoff, r.MaxBackoff)
	}
	if r.InitialBackoff.Duration > MaxBackoff || r.MaxBackoff.Duration > MaxBackoff {
		v.addf("retry", "backoffs must be at most %s; got initialBackoff %s, maxBackoff %s", MaxBackoff, r.InitialBackoff, r.MaxBackoff)
	}
}
