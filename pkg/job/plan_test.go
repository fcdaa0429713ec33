package job_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
)

// checkCover asserts that chunks cover [0,total) exactly once, in order, with
// Index equal to the position.
func checkCover(t *testing.T, label string, chunks []job.Chunk, total int) {
	t.Helper()
	if len(chunks) == 0 {
		t.Fatalf("%s: no chunks", label)
	}
	next := 0
	for i, c := range chunks {
		if c.Index != i {
			t.Fatalf("%s: chunks[%d].Index = %d", label, i, c.Index)
		}
		if c.Count < 1 {
			t.Fatalf("%s: chunks[%d] = %+v is empty", label, i, c)
		}
		if c.Start != next {
			t.Fatalf("%s: chunks[%d] = %+v starts at %d, want %d", label, i, c, c.Start, next)
		}
		if c.End() != c.Start+c.Count {
			t.Fatalf("%s: chunks[%d].End() = %d", label, i, c.End())
		}
		next = c.End()
	}
	if next != total {
		t.Fatalf("%s: chunks end at %d, want %d", label, next, total)
	}
}

func planSpec(total, framesPerChunk, chunkCount int) *job.Spec {
	s := nativeSpec()
	s.Metadata.TotalFrames, s.FramesPerChunk, s.ChunkCount = total, framesPerChunk, chunkCount
	s.Normalize()
	return s
}

func TestPlanFramesPerChunk(t *testing.T) {
	type pair struct{ total, size int }
	var pairs []pair
	for total := 1; total <= 64; total++ {
		for size := 1; size <= total+2; size++ {
			pairs = append(pairs, pair{total, size})
		}
	}
	pairs = append(pairs,
		pair{1000, 7}, pair{1000, 1000}, pair{1001, 1000}, pair{9999, 1},
		pair{10_000, 1}, pair{123_457, 13}, pair{job.MaxTotalFrames, 1000}, pair{job.MaxTotalFrames - 1, 1001},
	)
	for _, p := range pairs {
		s := planSpec(p.total, p.size, 0)
		label := fmt.Sprintf("total=%d framesPerChunk=%d", p.total, p.size)
		if err := s.Validate(testAllow); err != nil {
			t.Fatalf("%s: spec invalid: %v", label, err)
		}
		chunks := s.Plan()
		checkCover(t, label, chunks, p.total)
		if want := (p.total + p.size - 1) / p.size; len(chunks) != want {
			t.Fatalf("%s: %d chunks, want %d", label, len(chunks), want)
		}
		for i, c := range chunks {
			if i < len(chunks)-1 && c.Count != p.size {
				t.Fatalf("%s: chunks[%d].Count = %d, want %d (only the last chunk may be short)", label, i, c.Count, p.size)
			}
			if c.Count > p.size {
				t.Fatalf("%s: chunks[%d].Count = %d > framesPerChunk", label, i, c.Count)
			}
		}
	}
}

func TestPlanChunkCount(t *testing.T) {
	type pair struct{ total, n int }
	var pairs []pair
	for total := 1; total <= 64; total++ {
		for n := 1; n <= total; n++ {
			pairs = append(pairs, pair{total, n})
		}
	}
	pairs = append(pairs,
		pair{1000, 7}, pair{1000, 1000}, pair{1001, 1000}, pair{10_000, 10_000}, pair{10_001, 10_000},
		pair{123_457, 13}, pair{job.MaxTotalFrames, job.MaxChunks}, pair{job.MaxTotalFrames, 3},
	)
	for _, p := range pairs {
		s := planSpec(p.total, 0, p.n)
		label := fmt.Sprintf("total=%d chunkCount=%d", p.total, p.n)
		if err := s.Validate(testAllow); err != nil {
			t.Fatalf("%s: spec invalid: %v", label, err)
		}
		chunks := s.Plan()
		checkCover(t, label, chunks, p.total)
		if len(chunks) != p.n {
			t.Fatalf("%s: %d chunks, want %d", label, len(chunks), p.n)
		}
		lo, hi := chunks[0].Count, chunks[0].Count
		for _, c := range chunks {
			lo, hi = min(lo, c.Count), max(hi, c.Count)
		}
		if hi-lo > 1 {
			t.Fatalf("%s: chunk sizes range from %d to %d; want a difference of at most 1", label, lo, hi)
		}
		// Longer chunks come first.
		for i := 1; i < len(chunks); i++ {
			if chunks[i].Count > chunks[i-1].Count {
				t.Fatalf("%s: chunks[%d] (%d frames) is longer than chunks[%d] (%d frames)", label, i, chunks[i].Count, i-1, chunks[i-1].Count)
			}
		}
	}
}

func TestPlanExamples(t *testing.T) {
	tests := []struct {
		name           string
		total, fpc, cc int
		want           []job.Chunk
	}{
		{"one frame", 1, 1, 0, []job.Chunk{{0, 0, 1}}},
		{"remainder in last chunk", 10, 4, 0, []job.Chunk{{0, 0, 4}, {1, 4, 4}, {2, 8, 2}}},
		{"chunk bigger than video", 5, 100, 0, []job.Chunk{{0, 0, 5}}},
		{"chunkCount even", 9, 0, 3, []job.Chunk{{0, 0, 3}, {1, 3, 3}, {2, 6, 3}}},
		{"chunkCount remainder first", 10, 0, 3, []job.Chunk{{0, 0, 4}, {1, 4, 3}, {2, 7, 3}}},
		{"chunkCount == totalFrames", 3, 0, 3, []job.Chunk{{0, 0, 1}, {1, 1, 1}, {2, 2, 1}}},
		{"one chunk", 7, 0, 1, []job.Chunk{{0, 0, 7}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := planSpec(tt.total, tt.fpc, tt.cc).Plan()
			if !slices.Equal(got, tt.want) {
				t.Errorf("Plan = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPlanHeliosForm(t *testing.T) {
	s := heliosSpec()
	s.Normalize()
	want := []job.Chunk{{Index: 0, Start: 0, Count: 30}, {Index: 1, Start: 30, Count: 30}, {Index: 2, Start: 60, Count: 30}}
	if got := s.Plan(); !slices.Equal(got, want) {
		t.Errorf("Plan = %+v, want %+v", got, want)
	}

	// Uneven chunks given in reverse order: the plan follows start frames.
	s = heliosSpec()
	s.Metadata.TotalFrames = 100
	s.Chunks = []job.HeliosChunk{hc(3, 95, 5), hc(2, 40, 55), hc(1, 1, 39), hc(0, 0, 1)}
	s.Normalize()
	if err := s.Validate(testAllow); err != nil {
		t.Fatal(err)
	}
	chunks := s.Plan()
	checkCover(t, "helios uneven", chunks, 100)
	for i, c := range chunks {
		if s.Chunks[i].StartFrame != c.Start || s.Chunks[i].FrameCount != c.Count || s.Chunks[i].ID != i {
			t.Errorf("chunks[%d] = %+v does not match Helios chunk %+v", i, c, s.Chunks[i])
		}
	}
}

func TestWorkerJobNative(t *testing.T) {
	s := nativeSpec()
	s.ID = "film-7"
	s.Metadata = job.Metadata{TotalFrames: 100, FPS: 29.97, Width: 640, Height: 360}
	s.FramesPerChunk = 30
	s.Args = []string{
		"-s={start}", "-e={end}", "-n={count}", "-l={last}", "-c={chunk}", "-o={output}", "-r={fps}",
		"{width}x{height}", "id={jobId}", "{{start}}", "}}", "{", "a{b", "}", "{start", "{nope}", "{{{chunk}}}", "{output}",
	}
	s.ChunkTimeout.Duration = 2 * time.Minute
	s.Normalize()
	chunks := s.Plan()
	if len(chunks) != 4 {
		t.Fatalf("Plan = %+v, want 4 chunks", chunks)
	}
	w := s.WorkerJob(chunks[3], 4, 2)
	wantArgs := []string{
		"-s=90", "-e=100", "-n=10", "-l=99", "-c=3", "-o=chunk-000003.mp4", "-r=30000/1001",
		"640x360", "id=film-7", "{start}", "}", "{", "a{b", "}", "{start", "{nope}", "{3}", "chunk-000003.mp4",
	}
	if !slices.Equal(w.Args, wantArgs) {
		t.Errorf("Args =\n%q\nwant\n%q", w.Args, wantArgs)
	}
	if w.Command != "ffmpeg" || w.JobID != "film-7" || w.Attempt != 2 || w.Chunk != chunks[3] {
		t.Errorf("WorkerJob = %+v", w)
	}
	if w.OutputFile != "chunk-000003.mp4" {
		t.Errorf("OutputFile = %q, want chunk-000003.mp4", w.OutputFile)
	}
	if w.Timeout.Duration != 2*time.Minute || w.Assets != s.Assets || !maps.Equal(w.Env, s.Env) {
		t.Errorf("timeout/assets/env not copied: %+v", w)
	}
	if want := (job.Timeline{FPS: 29.97, Audio: job.AudioFormat{SampleRate: 48000, Channels: 2}}); w.Timeline == nil || *w.Timeline != want {
		t.Errorf("Timeline = %+v, want %+v", w.Timeline, want)
	}
	if w.Format() != "mp4" {
		t.Errorf("Format() = %q", w.Format())
	}
	if got, want := w.SegmentKey(), "renders/film-7/chunks/000003.4-2.mp4"; got != want {
		t.Errorf("SegmentKey() = %q, want %q", got, want)
	}
	if err := w.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
	// The spec's args template is not modified.
	if s.Args[0] != "-s={start}" {
		t.Errorf("spec args changed: %q", s.Args)
	}

	// Default output name per chunk and container.
	s.SegmentFormat, s.Output = "mkv", "renders/film-7/output.mkv"
	for _, c := range chunks {
		w := s.WorkerJob(c, 1, 1)
		if want := fmt.Sprintf("chunk-%06d.mkv", c.Index); w.OutputFile != want || w.Args[len(w.Args)-1] != want {
			t.Errorf("chunk %d: OutputFile = %q, {output} = %q, want %q", c.Index, w.OutputFile, w.Args[len(w.Args)-1], want)
		}
		if w.Timeline != nil {
			t.Errorf("chunk %d: an mkv segment has a timeline %+v; only the MP4 family is placed", c.Index, w.Timeline)
		}
	}
}

func TestWorkerJobFPSFormatting(t *testing.T) {
	for _, tt := range []struct {
		fps  float64
		want string
	}{{29.97, "30000/1001"}, {30000.0 / 1001, "30000/1001"}, {30, "30"}, {23.976, "24000/1001"}, {0.5, "0.5"}, {1000, "1000"}, {59.94, "60000/1001"}, {12.5, "12.5"}} {
		s := nativeSpec()
		s.Metadata.FPS = tt.fps
		s.Args = []string{"{fps}", "{output}"}
		s.Normalize()
		if got := s.WorkerJob(s.Plan()[0], 1, 1).Args[0]; got != tt.want {
			t.Errorf("{fps} with fps %v = %q, want %q", tt.fps, got, tt.want)
		}
	}
}

func TestWorkerJobHeliosForm(t *testing.T) {
	s := heliosSpec()
	s.Env = map[string]string{"LANG": "C.UTF-8"}
	s.Normalize()
	chunks := s.Plan()
	tests := []struct {
		index    int
		wantArgs []string
		wantOut  string
	}{
		{0, []string{"-vf", "scale=1:2", "-y", "chunk_0.mov"}, "chunk_0.mov"},
		{1, []string{"-vf", "drawtext=text=a b", "-y", "chunk_1.mov"}, "chunk_1.mov"},
		{2, []string{"-ss", "2", "-vf", "scale=1:2", "-frames:v", "30", "-y", "chunk_2.mov"}, "chunk_2.mov"},
	}
	for _, tt := range tests {
		w := s.WorkerJob(chunks[tt.index], 1, 1)
		if w.Command != "ffmpeg" {
			t.Errorf("chunk %d: Command = %q, want ffmpeg", tt.index, w.Command)
		}
		if !slices.Equal(w.Args, tt.wantArgs) {
			t.Errorf("chunk %d: Args = %q, want %q", tt.index, w.Args, tt.wantArgs)
		}
		if w.OutputFile != tt.wantOut {
			t.Errorf("chunk %d: OutputFile = %q, want %q", tt.index, w.OutputFile, tt.wantOut)
		}
		if w.Chunk != chunks[tt.index] || w.JobID != "helios-job" || w.Env["LANG"] != "C.UTF-8" {
			t.Errorf("chunk %d: WorkerJob = %+v", tt.index, w)
		}
		if w.Timeout.Duration != job.DefaultChunkTimeout {
			t.Errorf("chunk %d: Timeout = %v, want the default", tt.index, w.Timeout)
		}
		if got, want := w.SegmentKey(), fmt.Sprintf("renders/helios-job/chunks/%06d.1-1.mov", tt.index); got != want {
			t.Errorf("chunk %d: SegmentKey = %q, want %q", tt.index, got, want)
		}
		if err := w.Validate(); err != nil {
			t.Errorf("chunk %d: Validate = %v", tt.index, err)
		}
	}

	// Every placeholder in a Helios command, in a quoted argument.
	s = heliosSpec()
	s.Chunks = []job.HeliosChunk{{ID: 0, StartFrame: 0, FrameCount: 90, OutputFile: "out dir/seg.mov",
		Command: `helios-render --range "{start}-{last} ({count}, end {end})" --chunk {chunk} --fps={fps} --size '{width}x{height}' --job {jobId} -o "{output}" '{{literal}}'`}}
	s.Normalize()
	if err := s.Validate(testAllow); err != nil {
		t.Fatal(err)
	}
	w := s.WorkerJob(s.Plan()[0], 1, 1)
	want := []string{"--range", "0-89 (90, end 90)", "--chunk", "0", "--fps=30", "--size", "1280x720", "--job", "helios-job", "-o", "out dir/seg.mov", "{literal}"}
	if w.Command != "helios-render" || !slices.Equal(w.Args, want) {
		t.Errorf("WorkerJob = %q %q, want helios-render %q", w.Command, w.Args, want)
	}
}

func TestWorkerJobValidate(t *testing.T) {
	good := func() job.WorkerJob {
		return job.WorkerJob{
			JobID: "job-1", Chunk: job.Chunk{Index: 2, Start: 60, Count: 30}, Attempt: 1,
			Command: "ffmpeg", Args: []string{"-y", "chunk-000002.mp4"}, Env: map[string]string{"TZ": "UTC"},
			OutputFile: "chunk-000002.mp4", Assets: "assets/" + testDigest + ".tar.gz",
			Timeout: job.Duration{Duration: time.Minute},
		}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good WorkerJob: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*job.WorkerJob)
		path   string
		msg    string
	}{
		{"empty job id", func(w *job.WorkerJob) { w.JobID = "" }, "jobId", "must be 1-128"},
		{"traversal job id", func(w *job.WorkerJob) { w.JobID = "../x" }, "jobId", `got "../x"`},
		{"negative index", func(w *job.WorkerJob) { w.Chunk.Index = -1 }, "chunk", "needs index >= 0"},
		{"negative start", func(w *job.WorkerJob) { w.Chunk.Start = -1 }, "chunk", "start >= 0"},
		{"zero count", func(w *job.WorkerJob) { w.Chunk.Count = 0 }, "chunk", "count >= 1"},
		{"attempt 0", func(w *job.WorkerJob) { w.Attempt = 0 }, "attempt", "must be at least 1; got 0"},
		{"empty command", func(w *job.WorkerJob) { w.Command = "" }, "command", "must not be empty"},
		{"outputFile parent", func(w *job.WorkerJob) { w.OutputFile = "../x.mp4" }, "outputFile", `without '..'; got "../x.mp4"`},
		{"outputFile climbing", func(w *job.WorkerJob) { w.OutputFile = "a/../../x.mp4" }, "outputFile", "must be a relative path inside the work dir"},
		{"outputFile absolute", func(w *job.WorkerJob) { w.OutputFile = "/tmp/x.mp4" }, "outputFile", "must be a relative path inside the work dir"},
		{"outputFile empty", func(w *job.WorkerJob) { w.OutputFile = "" }, "outputFile", "must name the segment file"},
		{"outputFile extension", func(w *job.WorkerJob) { w.OutputFile = "x.sh" }, "outputFile", "must end in one of"},
		{"env reserved", func(w *job.WorkerJob) { w.Env = map[string]string{"LD_PRELOAD": "x"} }, "env.LD_PRELOAD", "may not be set by a job"},
		{"env PATH", func(w *job.WorkerJob) { w.Env = map[string]string{"PATH": "."} }, "env.PATH", "may not be set by a job"},
		{"env bad name", func(w *job.WorkerJob) { w.Env = map[string]string{"A B": "x"} }, "env.A B", "not a valid environment variable name"},
		{"bad assets", func(w *job.WorkerJob) { w.Assets = "assets/../../etc/passwd" }, "assets", "must be a key of the form"},
		{"negative timeout", func(w *job.WorkerJob) { w.Timeout.Duration = -time.Second }, "timeout", "must not be negative"},
		{"timeline fps not exact", func(w *job.WorkerJob) {
			w.Timeline = &job.Timeline{FPS: 12.5, Audio: job.AudioFormat{SampleRate: 48000, Channels: 2}}
		}, "timeline.fps", "whole number or an NTSC rate; got 12.5"},
		{"timeline no sample rate", func(w *job.WorkerJob) { w.Timeline = &job.Timeline{FPS: 30, Audio: job.AudioFormat{Channels: 2}} }, "timeline.audio.sampleRate", "got 0"},
		{"timeline for mkv", func(w *job.WorkerJob) {
			w.OutputFile = "c.mkv"
			w.Timeline = &job.Timeline{FPS: 30, Audio: job.AudioFormat{SampleRate: 48000, Channels: 2}}
		}, "timeline", "MP4 family (mp4, mov, m4v) only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := good()
			tt.mutate(&w)
			probs := problemsOf(t, w.Validate())
			if len(probs) != 1 || probs[0].Path != tt.path || !strings.Contains(probs[0].Message, tt.msg) {
				t.Errorf("problems = %+v, want one at %q containing %q", probs, tt.path, tt.msg)
			}
		})
	}
	if probs := problemsOf(t, (job.WorkerJob{}).Validate()); len(probs) < 4 {
		t.Errorf("zero WorkerJob: %d problems, want at least 4: %+v", len(probs), probs)
	}
}

func TestStitchRequestBadJobID(t *testing.T) {
	r := job.StitchRequest{JobID: "a/b", Segments: []job.Segment{{Key: "renders/a/b/chunks/000000.1.mp4", Frames: 1}}, OutputKey: "renders/a/b/output.mp4"}
	probs := problemsOf(t, r.Validate())
	if len(probs) == 0 || probs[0].Path != "jobId" || !strings.Contains(probs[0].Message, `got "a/b"`) {
		t.Errorf("problems = %+v, want the first at jobId", probs)
	}
	r.JobID = ""
	r.Segments[0].Key = "renders//chunks/000000.1.mp4"
	probs = problemsOf(t, r.Validate())
	paths := make([]string, len(probs))
	for i, p := range probs {
		paths[i] = p.Path
	}
	if !slices.Contains(paths, "jobId") || !slices.Contains(paths, "segments[0].key") {
		t.Errorf("empty job id: problem paths = %q, want jobId and segments[0].key", paths)
	}
}

func TestStitchRequestValidate(t *testing.T) {
	good := func() job.StitchRequest {
		return job.StitchRequest{
			JobID: "job-1",
			Segments: []job.Segment{
				{Key: "renders/job-1/chunks/000000.1-1.mp4", Frames: 30},
				{Key: "renders/job-1/chunks/000001.1-3.mp4", Frames: 20},
			},
			OutputKey: "renders/job-1/output.mp4",
		}
	}
	r := good()
	if err := r.Validate(); err != nil {
		t.Fatalf("good StitchRequest: %v", err)
	}
	if r.TotalFrames() != 50 {
		t.Errorf("TotalFrames = %d, want 50", r.TotalFrames())
	}
	tests := []struct {
		name   string
		mutate func(*job.StitchRequest)
		path   string
		msg    string
	}{
		// A bad job id also puts every segment outside its (bad) prefix;
		// see TestStitchRequestBadJobID.
		{"no segments", func(r *job.StitchRequest) { r.Segments = nil }, "segments", "must have between 1 and 10000 entries; got 0"},
		{"empty segments", func(r *job.StitchRequest) { r.Segments = []job.Segment{} }, "segments", "got 0"},
		{"too many segments", func(r *job.StitchRequest) {
			r.Segments = make([]job.Segment, job.MaxChunks+1)
			for i := range r.Segments {
				r.Segments[i] = job.Segment{Key: layout.SegmentKey("job-1", i, 1, 1, "mp4"), Frames: 1}
			}
		}, "segments", "got 10001"},
		{"segment of another job", func(r *job.StitchRequest) { r.Segments[1].Key = "renders/job-2/chunks/000001.1.mp4" }, "segments[1].key", "must be a segment key renders/job-1/chunks/"},
		{"segment outside chunks", func(r *job.StitchRequest) { r.Segments[0].Key = "renders/job-1/spec.json" }, "segments[0].key", "must be a segment key renders/job-1/chunks/"},
		{"segment traversal", func(r *job.StitchRequest) { r.Segments[0].Key = "renders/job-1/chunks/../../job-2/output.mp4" }, "segments[0].key", "must be a segment key"},
		{"segment absolute", func(r *job.StitchRequest) { r.Segments[0].Key = "/renders/job-1/chunks/000000.1.mp4" }, "segments[0].key", "must be a segment key"},
		{"segment key is the prefix", func(r *job.StitchRequest) { r.Segments[0].Key = "renders/job-1/chunks/" }, "segments[0].key", "must be a segment key"},
		{"segment zero frames", func(r *job.StitchRequest) { r.Segments[1].Frames = 0 }, "segments[1].frames", "must be at least 1; got 0"},
		{"output traversal", func(r *job.StitchRequest) { r.OutputKey = "renders/job-1/../../x.mp4" }, "outputKey", "must be a file directly in renders/job-1/ or a key under outputs/"},
		{"timeline channels", func(r *job.StitchRequest) {
			r.Timeline = &job.Timeline{FPS: 30, Audio: job.AudioFormat{SampleRate: 48000, Channels: 99}}
		}, "timeline.audio.channels", "from 1 to 8; got 99"},
		{"pcm audio into mp4", func(r *job.StitchRequest) {
			r.Timeline = &job.Timeline{FPS: 30, Audio: job.AudioFormat{SampleRate: 48000, Channels: 2, Codec: job.AudioPCM}}
		}, "timeline.audio.codec", "needs a mov output"},
		{"output empty", func(r *job.StitchRequest) { r.OutputKey = "" }, "outputKey", "must be a file directly in renders/job-1/"},
		{"output under jobs/", func(r *job.StitchRequest) { r.OutputKey = "jobs/job-1.json" }, "outputKey", "or a key under outputs/"},
		{"output under assets/", func(r *job.StitchRequest) { r.OutputKey = "assets/x.tar.gz" }, "outputKey", "or a key under outputs/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good()
			tt.mutate(&r)
			probs := problemsOf(t, r.Validate())
			if len(probs) != 1 || probs[0].Path != tt.path || !strings.Contains(probs[0].Message, tt.msg) {
				t.Errorf("problems = %+v, want one at %q containing %q", probs, tt.path, tt.msg)
			}
		})
	}
}
