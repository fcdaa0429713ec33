package job

import (
	"fmt"
	"slices"
	"strings"

	"github.com/helios-project/infrastructure/pkg/ffargs"
	"github.com/helios-project/infrastructure/pkg/framerate"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/layout"
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
	return &joberr.ValidationError{Problems: v.problems}
}

type validator struct {
	allowed  Allowlist
	ffmpeg   ffargs.Extra
	spec     *Spec // the spec being checked, if any
	problems []joberr.Problem
}

func (v *validator) addf(path, format string, args ...any) {
	v.problems = append(v.problems, joberr.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) check(s *Spec) {
	if !layout.ValidID(s.ID) {
		v.addf("id", "must be %s; got %q", layout.IDRule, s.ID)
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
	if s.Assets != "" && !layout.ValidAssetKey(s.Assets) {
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
