package job_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/layout"
)

var testAllow = job.Allowlist{"ffmpeg", "helios-render"}

const testDigest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// nativeSpec is a valid native-form spec, not yet normalized.
func nativeSpec() *job.Spec {
	return &job.Spec{
		ID:       "job-1",
		Metadata: job.Metadata{TotalFrames: 300, FPS: 30, Width: 1920, Height: 1080},
		Command:  "ffmpeg",
		Args: []string{
			"-f", "lavfi", "-i", "testsrc2=size={width}x{height}:rate={fps}",
			"-vf", "trim=start_frame={start}:end_frame={end}",
			"-frames:v", "{count}", "-metadata", "comment={{chunk {chunk}}}", "-y", "{output}",
		},
		FramesPerChunk: 30,
		Env:            map[string]string{"TZ": "Europe/Paris", "LC_ALL": "C"},
		Assets:         "assets/" + testDigest + ".tar.gz",
	}
}

// heliosSpec is a valid Helios-form spec, not yet normalized: its chunks are
// listed out of order and its commands quote their arguments.
func heliosSpec() *job.Spec {
	return &job.Spec{
		ID:       "helios-job",
		Metadata: job.Metadata{TotalFrames: 90, FPS: 30, Width: 1280, Height: 720, Duration: 3},
		Chunks: []job.HeliosChunk{
			{ID: 2, StartFrame: 60, FrameCount: 30, OutputFile: "chunk_2.mov", Command: `ffmpeg -ss 2 -vf "scale=1:2" -frames:v {count} -y {output}`},
			{ID: 0, StartFrame: 0, FrameCount: 30, OutputFile: "chunk_0.mov", Command: `ffmpeg -vf "scale=1:2" -y {output}`},
			{ID: 1, StartFrame: 30, FrameCount: 30, OutputFile: "chunk_1.mov", Command: `ffmpeg -vf 'drawtext=text=a b' -y chunk_1.mov`},
		},
		MergeCommand: "ffmpeg -f concat -safe 0 -i list.txt -c copy out.mov",
	}
}

// hc is a Helios chunk with a unique .mov output file.
func hc(id, start, count int) job.HeliosChunk {
	out := fmt.Sprintf("c%d.mov", id)
	return job.HeliosChunk{ID: id, StartFrame: start, FrameCount: count, OutputFile: out, Command: "ffmpeg -y " + out}
}

func problemsOf(t *testing.T, err error) []joberr.Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *joberr.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error is %T (%v), want *joberr.ValidationError", err, err)
	}
	if len(ve.Problems) == 0 {
		t.Fatal("*ValidationError with no problems")
	}
	return ve.Problems
}

func TestValidateValidSpecs(t *testing.T) {
	tests := []struct {
		name   string
		spec   func() *job.Spec
		mutate func(*job.Spec)
	}{
		{"native", nativeSpec, nil},
		{"helios out of order with quoted args", heliosSpec, nil},
		{"native chunkCount", nativeSpec, func(s *job.Spec) { s.FramesPerChunk, s.ChunkCount = 0, 7 }},
		{"native chunkCount == totalFrames", nativeSpec, func(s *job.Spec) { s.FramesPerChunk, s.ChunkCount = 0, 300 }},
		{"native one frame", nativeSpec, func(s *job.Spec) { s.Metadata.TotalFrames, s.FramesPerChunk = 1, 1 }},
		{"native framesPerChunk > totalFrames", nativeSpec, func(s *job.Spec) { s.FramesPerChunk = 1000 }},
		{"native exactly MaxChunks chunks", nativeSpec, func(s *job.Spec) { s.Metadata.TotalFrames, s.FramesPerChunk = 20_000, 2 }},
		{"native chunkCount MaxChunks", nativeSpec, func(s *job.Spec) { s.Metadata.TotalFrames, s.FramesPerChunk, s.ChunkCount = 20_000, 0, 10_000 }},
		{"native MaxTotalFrames", nativeSpec, func(s *job.Spec) { s.Metadata.TotalFrames, s.FramesPerChunk = job.MaxTotalFrames, 1000 }},
		{"native fractional fps", nativeSpec, func(s *job.Spec) { s.Metadata.FPS = 29.97 }},
		{"native other container", nativeSpec, func(s *job.Spec) { s.SegmentFormat = "webm" }},
		{"native explicit output", nativeSpec, func(s *job.Spec) { s.Output = "outputs/job-1/final/film.mp4" }},
		{"native no env no assets", nativeSpec, func(s *job.Spec) { s.Env, s.Assets = nil, "" }},
		{"native max retry", nativeSpec, func(s *job.Spec) {
			s.Retry = job.RetryPolicy{MaxAttempts: 10, InitialBackoff: job.Duration{Duration: time.Second}, MaxBackoff: job.Duration{Duration: time.Second}}
		}},
		{"native timeout bounds", nativeSpec, func(s *job.Spec) { s.ChunkTimeout.Duration = 6 * time.Hour }},
		{"native escaped and lone braces", nativeSpec, func(s *job.Spec) { s.Args = append(s.Args, "{{foo}}", "{", "}", "a{b", "{1}", "{ x }") }},
		{"native id of 128 chars", nativeSpec, func(s *job.Spec) { s.ID = strings.Repeat("a", 128) }},
		{"helios single chunk", heliosSpec, func(s *job.Spec) {
			s.Chunks = []job.HeliosChunk{{ID: 7, StartFrame: 0, FrameCount: 90, OutputFile: "sub/dir/all.mp4", Command: "helios-render --out {output}"}}
		}},
		{"helios exactly MaxChunks chunks", heliosSpec, func(s *job.Spec) {
			s.Metadata.TotalFrames = job.MaxChunks
			s.Chunks = make([]job.HeliosChunk, job.MaxChunks)
			for i := range s.Chunks {
				s.Chunks[i] = hc(i, i, 1)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec()
			if tt.mutate != nil {
				tt.mutate(s)
			}
			s.Normalize()
			if err := s.Validate(testAllow); err != nil {
				t.Fatalf("Validate = %v", err)
			}
		})
	}
}

func TestValidateHeliosSortedAfterNormalize(t *testing.T) {
	s := heliosSpec()
	// Before Normalize the chunks are out of order and the coverage check,
	// which walks them in the order given, sees a gap and an overlap.
	before := problemsOf(t, s.Validate(testAllow))
	sawRange := false
	for _, p := range before {
		sawRange = sawRange || strings.HasSuffix(p.Path, ".startFrame")
	}
	if !sawRange {
		t.Errorf("Validate before Normalize reported no range problem for out-of-order chunks: %+v", before)
	}
	s.Normalize()
	if err := s.Validate(testAllow); err != nil {
		t.Fatalf("Validate after Normalize = %v", err)
	}
	var ids []int
	for _, c := range s.Chunks {
		ids = append(ids, c.ID)
	}
	if !slices.Equal(ids, []int{0, 1, 2}) {
		t.Errorf("chunk ids after Normalize = %v, want [0 1 2]", ids)
	}
}

func TestValidateRejects(t *testing.T) {
	native, helios := nativeSpec, heliosSpec
	manyChunks := func(n int) []job.HeliosChunk {
		cs := make([]job.HeliosChunk, n)
		for i := range cs {
			cs[i] = hc(i, i, 1)
		}
		return cs
	}
	tests := []struct {
		name   string
		spec   func() *job.Spec
		mutate func(*job.Spec)
		path   string
		msg    string
		count  int // exact number of problems; 0: at least one
	}{
		{"output on the job's lease", native, func(s *job.Spec) { s.Output = "renders/job-1/lease.000007.mp4" }, "output", "must be a file directly in this job's folder", 0},
		{"output on the job's spec", native, func(s *job.Spec) { s.Output = "renders/job-1/spec.json" }, "output", "", 0},
		// metadata
		{"totalFrames 0", native, func(s *job.Spec) { s.Metadata.TotalFrames = 0 }, "metadata.totalFrames", "must be between 1 and 10000000; got 0", 1},
		{"totalFrames negative", native, func(s *job.Spec) { s.Metadata.TotalFrames = -5 }, "metadata.totalFrames", "got -5", 1},
		{"totalFrames over max", native, func(s *job.Spec) { s.Metadata.TotalFrames, s.FramesPerChunk, s.ChunkCount = 10_000_001, 0, 10 }, "metadata.totalFrames", "got 10000001", 1},
		{"helios totalFrames 0", helios, func(s *job.Spec) { s.Metadata.TotalFrames = 0 }, "metadata.totalFrames", "must be between 1 and", 1},
		{"fps 0", native, func(s *job.Spec) { s.Metadata.FPS = 0 }, "metadata.fps", "must be from 0.001 to 1000; got 0", 1},
		{"fps 1e-300", native, func(s *job.Spec) { s.Metadata.FPS = 1e-300 }, "metadata.fps", "got 1e-300", 1},
		{"fps negative", native, func(s *job.Spec) { s.Metadata.FPS = -30 }, "metadata.fps", "got -30", 1},
		{"fps NaN", native, func(s *job.Spec) { s.Metadata.FPS = math.NaN() }, "metadata.fps", "got NaN", 1},
		{"fps over max", native, func(s *job.Spec) { s.Metadata.FPS = 1000.5 }, "metadata.fps", "to 1000; got 1000.5", 1},
		// MP4 family: joined on exact frame times, audio on one grid
		{"mp4 fps not exact", native, func(s *job.Spec) { s.Metadata.FPS = 12.5 }, "metadata.fps", "whole number or an NTSC rate (23.976, 29.97, 59.94) for mp4 segments", 1},
		{"audio rate too low", native, func(s *job.Spec) { s.Audio.SampleRate = 4000 }, "audio.sampleRate", "from 8000 to 192000 Hz; got 4000", 1},
		{"audio channels", native, func(s *job.Spec) { s.Audio.Channels = 9 }, "audio.channels", "from 1 to 8; got 9", 1},
		{"audio codec unknown", native, func(s *job.Spec) { s.Audio.Codec = "mp3" }, "audio.codec", `must be "aac" or "pcm_s16le" (or left out); got "mp3"`, 1},
		{"pcm audio in mp4", native, func(s *job.Spec) { s.Audio.Codec = "pcm_s16le" }, "audio.codec", "needs a mov output", 1},
		{"faststart on mkv", native, func(s *job.Spec) { s.SegmentFormat, s.Output, s.Faststart = "mkv", "", true }, "faststart", "MP4 family (mp4, mov, m4v) only; segmentFormat is \"mkv\"", 1},
		{"audio on webm", native, func(s *job.Spec) { s.SegmentFormat, s.Output, s.Audio.Channels = "webm", "", 1 }, "audio", "MP4 family", 1},
		{"width 0", native, func(s *job.Spec) { s.Metadata.Width = 0 }, "metadata.width", "between 1 and 16384; got 0", 1},
		{"height over max", native, func(s *job.Spec) { s.Metadata.Height = 16_385 }, "metadata.height", "got 16385", 1},
		{"duration negative", helios, func(s *job.Spec) { s.Metadata.Duration = -1 }, "metadata.duration", "must not be negative", 1},

		// id and container
		{"id empty", native, func(s *job.Spec) { s.ID, s.Output = "", "renders/x/output.mp4" }, "id", "must be 1-128", 1},
		{"id traversal", native, func(s *job.Spec) { s.ID, s.Output = "../etc", "renders/x/output.mp4" }, "id", `got "../etc"`, 1},
		{"id with slash", native, func(s *job.Spec) { s.ID, s.Output = "a/b", "renders/x/output.mp4" }, "id", `got "a/b"`, 1},
		{"id leading dash", native, func(s *job.Spec) { s.ID = "-rf" }, "id", `got "-rf"`, 1},
		{"id too long", native, func(s *job.Spec) { s.ID = strings.Repeat("a", 129) }, "id", "must be 1-128", 1},
		{"segment format", native, func(s *job.Spec) { s.SegmentFormat = "avi" }, "segmentFormat", `must be one of mp4, mov, mkv, webm, ts, m4v; got "avi"`, 1},

		// native command and args
		{"native empty command", native, func(s *job.Spec) { s.Command = "" }, "command", "must name the program", 1},
		{"native command with a space", native, func(s *job.Spec) { s.Command = "ffmpeg -y" }, "command", "must be a program name only", 1},
		{"native command with a tab", native, func(s *job.Spec) { s.Command = "ffmpeg\t-y" }, "command", "must be a program name only", 1},
		{"native command not allowed", native, func(s *job.Spec) { s.Command = "rm" }, "command", `program "rm" is not on the allowlist (HELIOS_ALLOWED_COMMANDS=ffmpeg,helios-render)`, 1},
		{"native command as a path", native, func(s *job.Spec) { s.Command = "/usr/bin/ffmpeg" }, "command", `program "/usr/bin/ffmpeg" is not on the allowlist`, 1},
		{"native command relative path", native, func(s *job.Spec) { s.Command = "./ffmpeg" }, "command", "is not on the allowlist", 1},
		{"args without output", native, func(s *job.Spec) { s.Args = []string{"-y", "out.mp4"} }, "args", "must contain {output}", 1},
		{"args with escaped output only", native, func(s *job.Spec) { s.Args = []string{"-y", "{{output}}"} }, "args", "must contain {output}", 1},
		{"args nil", native, func(s *job.Spec) { s.Args = nil }, "args", "must contain {output}", 1},
		{"args unknown placeholder", native, func(s *job.Spec) { s.Args = []string{"-y", "{foo}", "{output}"} }, "args[1]", "unknown placeholder {foo}; known: {start} {end} {count} {last} {chunk} {output} {fps} {width} {height} {jobId}", 1},
		{"args placeholder is case-sensitive", native, func(s *job.Spec) { s.Args = []string{"{output}", "{JobId}"} }, "args[1]", "unknown placeholder {JobId}", 1},
		{"args too many", native, func(s *job.Spec) {
			s.Args = slices.Repeat([]string{"{output}"}, job.MaxArgs+1)
		}, "args", "must have at most 1000 entries; got 1001", 1},

		// native chunking
		{"both framesPerChunk and chunkCount", native, func(s *job.Spec) { s.ChunkCount = 10 }, "framesPerChunk", "not both", 1},
		{"neither framesPerChunk nor chunkCount", native, func(s *job.Spec) { s.FramesPerChunk = 0 }, "framesPerChunk", "one of framesPerChunk or chunkCount is required", 1},
		{"framesPerChunk negative", native, func(s *job.Spec) { s.FramesPerChunk = -1 }, "framesPerChunk", "must be between 1 and 10000000; got -1", 1},
		{"chunkCount negative", native, func(s *job.Spec) { s.FramesPerChunk, s.ChunkCount = 0, -3 }, "chunkCount", "must be at least 1; got -3", 1},
		{"chunkCount over totalFrames", native, func(s *job.Spec) { s.FramesPerChunk, s.ChunkCount = 0, 301 }, "chunkCount", "must not exceed metadata.totalFrames (300); got 301", 1},
		{"chunkCount over MaxChunks", native, func(s *job.Spec) { s.Metadata.TotalFrames, s.FramesPerChunk, s.ChunkCount = 20_000, 0, 10_001 }, "chunkCount", "must be at most 10000; got 10001", 1},
		{"framesPerChunk makes too many chunks", native, func(s *job.Spec) { s.Metadata.TotalFrames, s.FramesPerChunk = 10_001, 1 }, "framesPerChunk", "makes 10001 chunks", 1},
		{"framesPerChunk makes too many chunks (rounding up)", native, func(s *job.Spec) { s.Metadata.TotalFrames, s.FramesPerChunk = 20_001, 2 }, "framesPerChunk", "at most 10000 chunks are allowed", 1},
		{"helios with command", helios, func(s *job.Spec) { s.Command = "ffmpeg" }, "chunks", "remove command, args, framesPerChunk and chunkCount", 1},
		{"helios with framesPerChunk", helios, func(s *job.Spec) { s.FramesPerChunk = 30 }, "chunks", "Helios-form spec lists its chunks", 1},

		// Helios chunks
		{"helios overlap", helios, func(s *job.Spec) { s.Chunks = []job.HeliosChunk{hc(0, 0, 30), hc(1, 20, 30), hc(2, 50, 40)} }, "chunks[1].startFrame", "overlaps the previous chunk: frames [20, 30) are in two chunks", 1},
		{"helios duplicate range", helios, func(s *job.Spec) { s.Chunks = []job.HeliosChunk{hc(0, 0, 90), hc(1, 0, 90)} }, "chunks[1].startFrame", "overlaps the previous chunk: frames [0, 90)", 1},
		{"helios gap", helios, func(s *job.Spec) { s.Chunks = []job.HeliosChunk{hc(0, 0, 30), hc(1, 35, 55)} }, "chunks[1].startFrame", "leaves a gap: frames [30, 35) are in no chunk", 1},
		{"helios gap at start", helios, func(s *job.Spec) { s.Chunks = []job.HeliosChunk{hc(0, 10, 80)} }, "chunks[0].startFrame", "leaves a gap: frames [0, 10)", 1},
		{"helios past totalFrames", helios, func(s *job.Spec) { s.Chunks = []job.HeliosChunk{hc(0, 0, 30), hc(1, 30, 70)} }, "chunks[1].frameCount", "runs past metadata.totalFrames (90): chunk ends at frame 100", 1},
		{"helios tail uncovered", helios, func(s *job.Spec) { s.Chunks = []job.HeliosChunk{hc(0, 0, 30), hc(1, 30, 30)} }, "chunks", "leave frames [60, 90) uncovered", 1},
		{"helios frameCount 0", helios, func(s *job.Spec) { s.Chunks = []job.HeliosChunk{hc(0, 0, 30), hc(1, 30, 0), hc(2, 30, 60)} }, "chunks[1].frameCount", "must be between 1 and 10000000; got 0", 1},
		{"helios frameCount negative", helios, func(s *job.Spec) { s.Chunks = []job.HeliosChunk{hc(0, 0, 90), hc(1, 90, -1)} }, "chunks[1].frameCount", "got -1", 1},
		{"helios negative startFrame", helios, func(s *job.Spec) { s.Chunks = []job.HeliosChunk{hc(0, -10, 10), hc(1, 0, 90)} }, "chunks[0].startFrame", "must be between 0 and 9999999; got -10", 1},
		{"helios duplicate ids", helios, func(s *job.Spec) {
			s.Chunks = []job.HeliosChunk{hc(0, 0, 30), hc(1, 30, 30), hc(2, 60, 30)}
			s.Chunks[2].ID = 0
		}, "chunks[2].id", "duplicates chunks[0].id (0)", 1},
		{"helios unknown placeholder", helios, func(s *job.Spec) { s.Chunks[0].Command = "ffmpeg -ss {foo} -y {output}" }, "chunks[2].command", "unknown placeholder {foo}", 1},
		{"helios empty command", helios, func(s *job.Spec) { s.Chunks[1].Command = "" }, "chunks[0].command", "must not be empty", 1},
		{"helios blank command", helios, func(s *job.Spec) { s.Chunks[1].Command = " \t " }, "chunks[0].command", "must not be empty", 1},
		{"helios unbalanced quote", helios, func(s *job.Spec) { s.Chunks[1].Command = `ffmpeg -vf "scale=1:2 -y x.mov` }, "chunks[0].command", "cannot split into words", 1},
		{"helios command not allowed", helios, func(s *job.Spec) { s.Chunks[1].Command = `sh -c "ffmpeg -y x.mov"` }, "chunks[0].command", `program "sh" is not on the allowlist`, 1},
		{"helios command as a path", helios, func(s *job.Spec) { s.Chunks[1].Command = "/usr/bin/ffmpeg -y x.mov" }, "chunks[0].command", `program "/usr/bin/ffmpeg" is not on the allowlist`, 1},
		{"helios absolute outputFile", helios, func(s *job.Spec) { s.Chunks[1].OutputFile = "/tmp/x.mp4" }, "chunks[0].outputFile", `must be a relative path inside the work dir, without '..'; got "/tmp/x.mp4"`, 1},
		{"helios parent outputFile", helios, func(s *job.Spec) { s.Chunks[1].OutputFile = "../x.mp4" }, "chunks[0].outputFile", `got "../x.mp4"`, 1},
		{"helios climbing outputFile", helios, func(s *job.Spec) { s.Chunks[1].OutputFile = "a/../../x.mp4" }, "chunks[0].outputFile", `got "a/../../x.mp4"`, 1},
		{"helios dot outputFile", helios, func(s *job.Spec) { s.Chunks[0].OutputFile = "./x.mov" }, "chunks[2].outputFile", "must be a relative path", 1},
		{"helios backslash outputFile", helios, func(s *job.Spec) { s.Chunks[0].OutputFile = `..\x.mov` }, "chunks[2].outputFile", "must be a relative path", 1},
		{"helios empty outputFile", helios, func(s *job.Spec) { s.Chunks[0].OutputFile = "" }, "chunks[2].outputFile", "must name the segment file", 1},
		{"helios outputFile bad extension", helios, func(s *job.Spec) { s.Chunks[0].OutputFile = "x.avi" }, "chunks[2].outputFile", `must end in one of .mp4, .mov, .mkv, .webm, .ts, .m4v; got "x.avi"`, 1},
		{"helios mixed containers", helios, func(s *job.Spec) { s.Chunks[0].OutputFile = "chunk_2.mkv" }, "chunks[2].outputFile", "must use the same container as the other chunks (.mov)", 1},
		{"helios duplicate outputFile", helios, func(s *job.Spec) { s.Chunks[0].OutputFile = "chunk_0.mov" }, "chunks[2].outputFile", `duplicates chunks[0].outputFile ("chunk_0.mov")`, 1},
		{"helios too many chunks", helios, func(s *job.Spec) {
			s.Metadata.TotalFrames = job.MaxChunks + 1
			s.Chunks = manyChunks(job.MaxChunks + 1)
		}, "chunks", "must have at most 10000 entries; got 10001", 1},

		// output key
		{"output parent", native, func(s *job.Spec) { s.Output = "../x.mp4" }, "output", `must be a relative storage key without '..'; got "../x.mp4"`, 1},
		{"output absolute", native, func(s *job.Spec) { s.Output = "/renders/x.mp4" }, "output", "must be a relative storage key", 1},
		{"output climbing", native, func(s *job.Spec) { s.Output = "renders/a/../../x.mp4" }, "output", "without '..'", 1},
		{"output empty segment", native, func(s *job.Spec) { s.Output = "renders//x.mp4" }, "output", "must be a relative storage key", 1},
		{"output under jobs/", native, func(s *job.Spec) { s.Output = "jobs/x.mp4" }, "output", "must be a file directly in this job's folder renders/job-1/ or a key under outputs/", 1},
		{"output under assets/", native, func(s *job.Spec) { s.Output = "assets/x.mp4" }, "output", "must be a file directly in this job's folder renders/job-1/ or a key under outputs/", 1},
		{"output wrong extension", native, func(s *job.Spec) { s.Output = "renders/job-1/output.mov" }, "output", `must end in .mp4, the segments' container`, 1},
		{"output no extension", native, func(s *job.Spec) { s.Output = "renders/job-1/output" }, "output", "must end in .mp4", 1},
		{"helios output wrong extension", helios, func(s *job.Spec) { s.Output = "outputs/helios-job/x.mp4" }, "output", "must end in .mov", 1},

		// env
		{"env PATH", native, func(s *job.Spec) { s.Env["PATH"] = "/tmp" }, "env.PATH", "may not be set by a job", 1},
		{"env HOME", native, func(s *job.Spec) { s.Env["HOME"] = "/tmp" }, "env.HOME", "may not be set by a job", 1},
		{"env LD_PRELOAD", native, func(s *job.Spec) { s.Env["LD_PRELOAD"] = "/tmp/evil.so" }, "env.LD_PRELOAD", "may not be set by a job (a job may set TZ, LANG", 1},
		{"env DYLD_INSERT_LIBRARIES", native, func(s *job.Spec) { s.Env["DYLD_INSERT_LIBRARIES"] = "x" }, "env.DYLD_INSERT_LIBRARIES", "may not be set by a job", 1},
		{"env AWS_SECRET_ACCESS_KEY", native, func(s *job.Spec) { s.Env["AWS_SECRET_ACCESS_KEY"] = "x" }, "env.AWS_SECRET_ACCESS_KEY", "may not be set by a job", 1},
		{"env HELIOS_", native, func(s *job.Spec) { s.Env["HELIOS_ALLOWED_COMMANDS"] = "sh" }, "env.HELIOS_ALLOWED_COMMANDS", "may not be set by a job", 1},
		{"env BASH_ENV", helios, func(s *job.Spec) { s.Env = map[string]string{"BASH_ENV": "x"} }, "env.BASH_ENV", "may not be set by a job", 1},
		{"env name starts with digit", native, func(s *job.Spec) { s.Env["1X"] = "x" }, "env.1X", "is not a valid environment variable name", 1},
		{"env name with dash", native, func(s *job.Spec) { s.Env["A-B"] = "x" }, "env.A-B", "is not a valid environment variable name", 1},
		{"env name with equals", native, func(s *job.Spec) { s.Env["A=B"] = "x" }, "env.A=B", "is not a valid environment variable name", 1},
		{"env name empty", native, func(s *job.Spec) { s.Env[""] = "x" }, "env.", "is not a valid environment variable name", 1},

		// assets
		{"assets short digest", native, func(s *job.Spec) { s.Assets = "assets/abc.tar.gz" }, "assets", "must be a key of the form assets/<64 hex sha256>.tar.gz", 1},
		{"assets upper-case digest", native, func(s *job.Spec) { s.Assets = "assets/" + strings.ToUpper(testDigest) + ".tar.gz" }, "assets", "must be a key of the form", 1},
		{"assets wrong prefix", native, func(s *job.Spec) { s.Assets = "../assets/" + testDigest + ".tar.gz" }, "assets", "must be a key of the form", 1},
		{"assets wrong suffix", native, func(s *job.Spec) { s.Assets = "assets/" + testDigest + ".tgz" }, "assets", "must be a key of the form", 1},

		// retry and timeout
		{"retry maxAttempts 11", native, func(s *job.Spec) { s.Retry.MaxAttempts = 11 }, "retry.maxAttempts", "must be between 1 and 10; got 11", 1},
		{"retry maxAttempts negative", native, func(s *job.Spec) { s.Retry.MaxAttempts = -1 }, "retry.maxAttempts", "got -1", 1},
		{"retry negative initialBackoff", native, func(s *job.Spec) { s.Retry.InitialBackoff.Duration = -time.Second }, "retry.initialBackoff", "must not be negative; got -1s", 1},
		{"retry maxBackoff below initial", native, func(s *job.Spec) {
			s.Retry.InitialBackoff.Duration, s.Retry.MaxBackoff.Duration = 10*time.Second, time.Second
		}, "retry.maxBackoff", "must be at least retry.initialBackoff (10s); got 1s", 1},
		{"retry negative maxBackoff", native, func(s *job.Spec) { s.Retry.MaxBackoff.Duration = -time.Second }, "retry.maxBackoff", "got -1s", 1},
		{"chunkTimeout too short", native, func(s *job.Spec) { s.ChunkTimeout.Duration = 500 * time.Millisecond }, "chunkTimeout", "must be between 1s and 6h; got 500ms", 1},
		{"chunkTimeout too long", native, func(s *job.Spec) { s.ChunkTimeout.Duration = 6*time.Hour + time.Second }, "chunkTimeout", "must be between 1s and 6h", 1},
		{"chunkTimeout negative", native, func(s *job.Spec) { s.ChunkTimeout.Duration = -time.Minute }, "chunkTimeout", "got -1m0s", 1},
		// regressions: integer overflow, mismatched containers, outputs in other jobs
		{"helios frameCount overflows", helios, func(s *job.Spec) {
			s.Chunks = []job.HeliosChunk{hc(0, 0, 30), hc(1, 30, math.MaxInt-10), hc(2, 30, 60)}
		}, "chunks[1].frameCount", "must be between 1 and 10000000", 0},
		{"framesPerChunk overflows ceilDiv", native, func(s *job.Spec) { s.FramesPerChunk = math.MaxInt - 200 }, "framesPerChunk", "must be between 1 and 10000000", 1},
		{"framesPerChunk message", native, func(s *job.Spec) { s.Metadata.TotalFrames, s.FramesPerChunk = 10_001, 1 }, "framesPerChunk", "makes 10001 chunks of 1 frames", 1},
		{"helios segmentFormat differs from chunks", helios, func(s *job.Spec) { s.SegmentFormat = "mp4"; s.Output = "" }, "segmentFormat", `is "mp4" but the chunks write .mov files`, 0},
		{"output in another job", native, func(s *job.Spec) { s.Output = "renders/other-job/output.mp4" }, "output", "directly in this job's folder renders/job-1/", 1},
		{"output among the chunks", native, func(s *job.Spec) { s.Output = "renders/job-1/chunks/000000.1.mp4" }, "output", "directly in this job's folder", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec()
			tt.mutate(s)
			s.Normalize()
			probs := problemsOf(t, s.Validate(testAllow))
			if len(probs) == 0 {
				t.Fatalf("Validate accepted the spec; want a problem at %q", tt.path)
			}
			found := false
			for _, p := range probs {
				if p.Path == tt.path && strings.Contains(p.Message, tt.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem at %q containing %q; got %+v", tt.path, tt.msg, probs)
			}
			if tt.count > 0 && len(probs) != tt.count {
				t.Errorf("got %d problems, want %d: %+v", len(probs), tt.count, probs)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	s := nativeSpec()
	s.Metadata.TotalFrames = 0
	s.Command = "rm"
	s.Env["PATH"] = "/tmp"
	s.Env["LD_PRELOAD"] = "x.so"
	s.Output = "../out.mp4"
	s.Retry.MaxAttempts = 11
	s.Normalize()
	err := s.Validate(testAllow)
	probs := problemsOf(t, err)
	if len(probs) < 3 {
		t.Fatalf("got %d problems, want at least 3: %+v", len(probs), probs)
	}
	want := []string{"metadata.totalFrames", "command", "env.LD_PRELOAD", "env.PATH", "output", "retry.maxAttempts"}
	var got []string
	for _, p := range probs {
		got = append(got, p.Path)
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("problem paths %v lack %q", got, w)
		}
	}
	// The error text lists each problem.
	for _, p := range probs {
		if !strings.Contains(err.Error(), p.String()) {
			t.Errorf("Error() = %q does not include %q", err.Error(), p.String())
		}
	}
	if !strings.HasPrefix(err.Error(), "invalid job spec: ") {
		t.Errorf("Error() = %q, want the prefix 'invalid job spec: '", err.Error())
	}
	// Env problems come in sorted key order, so the report is deterministic.
	if i, j := slices.Index(got, "env.LD_PRELOAD"), slices.Index(got, "env.PATH"); i > j {
		t.Errorf("env problems out of order: %v", got)
	}

	// The zero spec is wrong in many ways at once, and says so.
	z := &job.Spec{}
	z.Normalize()
	if probs := problemsOf(t, z.Validate(testAllow)); len(probs) < 5 {
		t.Errorf("zero spec: %d problems, want at least 5: %+v", len(probs), probs)
	}
}

func TestValidateEmptyAllowlist(t *testing.T) {
	for name, s := range map[string]*job.Spec{"native": nativeSpec(), "helios": heliosSpec()} {
		s.Normalize()
		probs := problemsOf(t, s.Validate(nil))
		for _, p := range probs {
			if !strings.Contains(p.Message, "not on the allowlist") {
				t.Errorf("%s: unexpected problem %+v", name, p)
			}
		}
		if len(probs) == 0 {
			t.Errorf("%s: Validate(nil allowlist) accepted the spec", name)
		}
	}
}

func TestProblemString(t *testing.T) {
	if got := (joberr.Problem{Path: "a.b", Message: "bad"}).String(); got != "a.b: bad" {
		t.Errorf("String() = %q", got)
	}
	if got := (joberr.Problem{Message: "bad"}).String(); got != "bad" {
		t.Errorf("String() without path = %q", got)
	}
}

func TestAllowlist(t *testing.T) {
	parseTests := []struct {
		in   string
		want job.Allowlist
	}{
		{"", nil},
		{"ffmpeg", job.Allowlist{"ffmpeg"}},
		{"ffmpeg,helios-render", job.Allowlist{"ffmpeg", "helios-render"}},
		{" ffmpeg , helios-render  sh,,", job.Allowlist{"ffmpeg", "helios-render", "sh"}},
	}
	for _, tt := range parseTests {
		if got := job.ParseAllowlist(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("ParseAllowlist(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	a := job.Allowlist{"ffmpeg", "helios-render"}
	allowTests := []struct {
		program string
		want    bool
	}{
		{"ffmpeg", true},
		{"helios-render", true},
		{"./ffmpeg", false},
		{"/usr/bin/ffmpeg", false},
		{"/tmp/ffmpeg", false},
		{"bin/ffmpeg", false},
		{"FFMPEG", false},
		{"ffmpeg ", false},
		{"ffprobe", false},
		{"", false},
	}
	for _, tt := range allowTests {
		if got := a.Allows(tt.program); got != tt.want {
			t.Errorf("Allows(%q) = %v, want %v", tt.program, got, tt.want)
		}
	}
	if (job.Allowlist(nil)).Allows("ffmpeg") {
		t.Error("empty allowlist allows ffmpeg")
	}
}

func TestIsSafeRelative(t *testing.T) {
	tests := []struct {
		p    string
		want bool
	}{
		{"a", true},
		{"a.mp4", true},
		{"a/b/c.mp4", true},
		{"..a", true},
		{"a..b/c", true},
		{"...", true},
		{"", false},
		{"/a", false},
		{"/", false},
		{".", false},
		{"..", false},
		{"../a", false},
		{"a/..", false},
		{"a/../b", false},
		{"a/../../b", false},
		{"./a", false},
		{"a/./b", false},
		{"a//b", false},
		{"a/", false},
		{`a\b`, false},
		{`..\a`, false},
		{"a\x00b", false},
	}
	for _, tt := range tests {
		if got := layout.IsSafeRelative(tt.p); got != tt.want {
			t.Errorf("IsSafeRelative(%q) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"ffmpeg", []string{"ffmpeg"}},
		{`ffmpeg -vf "scale=1:2" -y {output}`, []string{"ffmpeg", "-vf", "scale=1:2", "-y", "{output}"}},
		{`ffmpeg -vf 'drawtext=text=a b' out.mp4`, []string{"ffmpeg", "-vf", "drawtext=text=a b", "out.mp4"}},
		{`ffmpeg  -i   in.mp4	out.mp4`, []string{"ffmpeg", "-i", "in.mp4", "out.mp4"}},
		{`a\ b c`, []string{"a b", "c"}},
		{`"a"'b'c`, []string{"abc"}},
		{`ffmpeg ""`, []string{"ffmpeg", ""}},
		// Nothing a shell would do happens: no expansion, no operators.
		{`echo $(touch PWNED) ; rm -rf / | cat && x > y`, []string{"echo", "$(touch", "PWNED)", ";", "rm", "-rf", "/", "|", "cat", "&&", "x", ">", "y"}},
		{`echo "$HOME" '$HOME' *`, []string{"echo", "$HOME", "$HOME", "*"}},
	}
	for _, tt := range tests {
		got, err := job.SplitCommand(tt.in)
		if err != nil {
			t.Errorf("SplitCommand(%q) error %v", tt.in, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{`ffmpeg "unterminated`, `ffmpeg 'x`, `ffmpeg x\`} {
		if got, err := job.SplitCommand(bad); err == nil {
			t.Errorf("SplitCommand(%q) = %q, want an error", bad, got)
		}
	}
}
