package stitch_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/fmp4"
	"github.com/helios-project/infrastructure/pkg/framerate"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/stitch"
	"github.com/helios-project/infrastructure/pkg/storage"
	"github.com/helios-project/infrastructure/pkg/worker"
)

// The tests of this file render jobs with the real worker (ffmpeg as the
// chunk command, as a user's job would run it) and join them with the
// real stitcher, and compare the output with one ffmpeg pass over the
// same frames.

const sampleRate = 48000

// render is how a test job renders: one chunk command, run for each chunk
// and once over the whole job as the single-pass reference.
type render struct {
	rate   framerate.Rate
	size   string   // frame size
	video  []string // encoder args
	audio  string   // "", "sine" or "chirp"
	acodec []string // audio encoder args
	format string   // mp4, mov or m4v
	sizeOf func(chunk int) string
	noise  bool // frames of random noise (large segments) instead of colours
	// fragmented has the command write fragmented MP4 itself, which the
	// worker places without an ffmpeg pass of its own.
	fragmented bool
}

// x264 with its default B-frames (3, pyramid): every chunk has a decoder
// delay, and a lossy encode decodes only to its own frames.
var x264BFrames = []string{"-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-threads", "1"}

// argv renders frames [start, end) of the job; the video's frames are
// solid colours that name their frame (frameColour), the audio a function
// of the job's sample number, so each chunk's and the single pass's agree.
func (r render) argv(chunk, start, end int, output string) []string {
	size := r.size
	if r.sizeOf != nil {
		size = r.sizeOf(chunk)
	}
	graph := fmt.Sprintf("color=c=black:s=%s:r=%s,format=gbrp,geq=r='mod(N,8)*32+16':g='mod(floor(N/8),8)*32+16':b='128',"+
		"trim=start_frame=%d:end_frame=%d,setpts=PTS-STARTPTS", size, r.rate, start, end)
	if r.noise {
		graph = fmt.Sprintf("nullsrc=s=%s:r=%s,geq=lum='random(1)*255':cb=128:cr=128,trim=start_frame=%d:end_frame=%d,setpts=PTS-STARTPTS", size, r.rate, start, end)
	}
	argv := []string{"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", graph}
	if r.audio != "" {
		first := r.rate.SampleAt(int64(start), sampleRate)
		expr := audioExpr(r.audio, first) // in both channels, as the job's audio is stereo
		argv = append(argv, "-f", "lavfi", "-i", fmt.Sprintf("aevalsrc=exprs='%s|%s':s=%d", expr, expr, sampleRate),
			"-af", fmt.Sprintf("atrim=end_sample=%d", r.rate.SampleAt(int64(end), sampleRate)-first))
		argv = append(argv, r.acodec...)
	}
	argv = append(argv, r.video...)
	if r.fragmented {
		argv = append(argv, "-movflags", "+frag_keyframe+empty_moov+default_base_moof")
	}
	return append(argv, "-pix_fmt", "yuv420p", "-f", muxer(r.format), "-y", output)
}

func muxer(format string) string {
	if format == "mov" {
		return "mov"
	}
	return "mp4"
}

// audioExpr is the test signal at the job's sample n+first: a 440 Hz sine,
// or a chirp sweeping up from 200 Hz, both at half scale.
func audioExpr(kind string, first int64) string {
	x := fmt.Sprintf("((n+%d)/%d)", first, sampleRate)
	if kind == "chirp" {
		return fmt.Sprintf("0.5*sin(2*PI*(200*%s+1500*%s*%s))", x, x, x)
	}
	return fmt.Sprintf("0.5*sin(2*PI*440*%s)", x)
}

// joined is a job rendered in chunks and stitched, beside its single pass.
type joined struct {
	output, reference string     // local files
	chunks            []string   // each chunk's command output, rendered again by the test
	warnings          [][]string // each chunk's, as its worker reported them
	result            job.StitchResult
	bucket            *blob.Bucket
	req               job.StitchRequest
}

// job renders total frames in chunks of sizes through the worker, then
// stitches them; faststart asks for a progressive output.
func (r render) job(t *testing.T, bucketURL string, sizes []int, faststart bool) joined {
	t.Helper()
	testkit.RequireFFmpeg(t)
	b := testkit.Bucket(t, bucketURL)
	dir := t.TempDir()
	media := &countingMedia{Tool: ffmpeg.New()}
	w := &worker.Handler{Store: jobstore.New(b, nil, nil), Runner: &execx.Runner{Allowed: job.Allowlist{"ffmpeg"}}, Media: media, TempDir: t.TempDir()}
	timeline := &job.Timeline{FPS: r.rate.FPS(), Audio: job.AudioFormat{SampleRate: sampleRate, Channels: 2}}
	req := job.StitchRequest{JobID: "j", OutputKey: "renders/j/output." + r.format, Timeline: timeline, Faststart: faststart}
	out := joined{bucket: b}
	start := 0
	for i, n := range sizes {
		file := fmt.Sprintf("chunk-%06d.%s", i, r.format)
		argv := r.argv(i, start, start+n, file)
		res, err := w.Handle(t.Context(), job.WorkerJob{JobID: "j", Chunk: job.Chunk{Index: i, Start: start, Count: n}, Attempt: 1,
			Command: argv[0], Args: argv[1:], OutputFile: file, Timeline: timeline})
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		req.Segments = append(req.Segments, job.Segment{Key: res.SegmentKey, Frames: res.Frames})
		out.warnings = append(out.warnings, res.Warnings)
		local := filepath.Join(dir, file)
		ffmpegRun(t, r.argv(i, start, start+n, local))
		out.chunks = append(out.chunks, local)
		start += n
	}
	if passes := media.fragments.Load(); r.fragmented && r.audio == "" && passes != 0 {
		t.Errorf("the worker stream-copied %d chunks the command had fragmented itself", passes)
	}
	out.reference = filepath.Join(dir, "reference."+r.format)
	progressive := r
	progressive.fragmented = false // ffmpeg 5.1 presents its own fragmented B-frames late (no edit list)
	ffmpegRun(t, progressive.argv(0, 0, start, out.reference))
	h := &stitch.Handler{Store: jobstore.New(b, nil, nil), Stitcher: &stitch.FfmpegStitcher{Tool: ffmpeg.New()}, Media: ffmpeg.New(), TempDir: t.TempDir()}
	res, err := h.Handle(t.Context(), req)
	if err != nil {
		t.Fatalf("stitch: %v", err)
	}
	out.result, out.req = res, req
	out.output = filepath.Join(dir, "output."+r.format)
	if _, err := storage.DownloadFile(t.Context(), b, req.OutputKey, out.output); err != nil {
		t.Fatal(err)
	}
	return out
}

// countingMedia counts the worker's ffmpeg passes over chunks.
type countingMedia struct {
	*ffmpeg.Tool
	fragments atomic.Int64
}

func (m *countingMedia) Fragment(ctx context.Context, input, output string, audio *fmp4.AudioCut) error {
	m.fragments.Add(1)
	return m.Tool.Fragment(ctx, input, output, audio)
}

func ffmpegRun(t *testing.T, argv []string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), argv[0], argv[1:]...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	return string(out)
}

func sizes(total, size int) []int {
	var s []int
	for ; total > 0; total -= size {
		s = append(s, min(size, total))
	}
	return s
}

// TestJoinIsFrameExact: every frame of a byte-joined output is the frame
// its chunk encoded, on the single pass's timestamps, at the rates the
// issue names, with chunk sizes that do not divide the frame count,
// 1-frame chunks and B-frames.
func TestJoinIsFrameExact(t *testing.T) {
	ntsc := framerate.Rate{Num: 30000, Den: 1001}
	for _, tt := range []struct {
		name       string
		rate       framerate.Rate
		sizes      []int
		url        string
		fragmented bool
	}{
		{"24fps 50 in 7s", framerate.Rate{Num: 24, Den: 1}, sizes(50, 7), "file", false},
		{"25fps 40 in 9s", framerate.Rate{Num: 25, Den: 1}, sizes(40, 9), "mem://", false},
		{"ntsc 45 in 8s", ntsc, sizes(45, 8), "file", false},
		{"60fps 1-frame chunks", framerate.Rate{Num: 60, Den: 1}, sizes(6, 1), "file", false},
		{"60fps mixed", framerate.Rate{Num: 60, Den: 1}, []int{1, 2, 13, 1, 4}, "mem://", false},
		{"ntsc fragmented by the command", ntsc, sizes(30, 7), "file", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := tt.url
			if url == "file" {
				url = "file://" + t.TempDir()
			}
			r := render{rate: tt.rate, size: "64x48", video: x264BFrames, format: "mp4", fragmented: tt.fragmented}
			j := r.job(t, url, tt.sizes, false)
			assertFrames(t, j)
			want := map[string]string{"mem://": string(storage.ConcatStream)}[tt.url]
			if want == "" {
				want = string(storage.ConcatFileCopy)
			}
			if j.result.Method != want || (want == string(storage.ConcatFileCopy) && j.result.BytesStreamed != 0) {
				t.Errorf("joined by %q streaming %d bytes, want %s", j.result.Method, j.result.BytesStreamed, want)
			}
		})
	}
}

// TestJoinOnS3AndGCS: the segments join server-side, none of their bytes
// through the stitcher: composed on GCS, copied into the output's parts
// on S3 (UploadPartCopy), segments of at least 5 MiB (S3's minimum part
// size) save the last.
func TestJoinOnS3AndGCS(t *testing.T) {
	s3srv, gcs := testkit.StartStores(t, "join")
	lossless := []string{"-c:v", "libx264", "-qp", "0", "-preset", "ultrafast"}
	r := render{rate: framerate.Rate{Num: 25, Den: 1}, size: "640x480", noise: true, video: lossless, format: "mp4"}
	for _, tt := range []struct {
		name, url string
		method    storage.ConcatMethod
	}{
		{"s3", s3srv.BucketURL("join"), storage.ConcatS3Multipart},
		{"gcs", gcs.BucketURL("join"), storage.ConcatGCSCompose},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := r.job(t, tt.url, []int{12, 12, 2}, false)
			assertFrames(t, j)
			for i, seg := range j.req.Segments[:len(j.req.Segments)-1] {
				if attrs, err := j.bucket.Attributes(t.Context(), seg.Key); err != nil || attrs.Size < 5<<20 {
					t.Fatalf("segment %d: %v, %v: the test needs segments of at least 5 MiB", i, attrs, err)
				}
			}
			if j.result.Method != string(tt.method) || j.result.BytesStreamed != 0 {
				t.Errorf("joined by %s streaming %d bytes through the stitcher; want %s, none", j.result.Method, j.result.BytesStreamed, tt.method)
			}
		})
	}
}

// assertFrames checks the output's frames against the chunks' own and its
// timestamps, duration and a seek to the middle against the single pass.
func assertFrames(t *testing.T, j joined) {
	t.Helper()
	var want []string
	for _, c := range j.chunks {
		want = append(want, testkit.FrameMD5(t, c)...)
	}
	got := testkit.FrameMD5(t, j.output)
	if !slices.Equal(got, want) {
		t.Fatalf("frames differ from the chunks' own (%d frames, want %d):\n got %v\nwant %v", len(got), len(want), got, want)
	}
	gotTS, wantTS := timestamps(t, j.output), timestamps(t, j.reference)
	if !slices.Equal(gotTS, wantTS) {
		t.Errorf("frame timestamps differ from the single pass's:\n got %v\nwant %v", gotTS, wantTS)
	}
	if j.result.Frames != len(want) {
		t.Errorf("result says %d frames, want %d", j.result.Frames, len(want))
	}
}

// timestamps are the output's video time base, duration and every
// frame's pts, as ffprobe reads them.
func timestamps(t *testing.T, path string) []string {
	t.Helper()
	out := ffmpegRun(t, []string{"ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=time_base,duration:frame=pts", "-of", "json", path})
	var probe struct {
		Streams []struct {
			TimeBase string `json:"time_base"`
			Duration string `json:"duration"`
		} `json:"streams"`
		Frames []struct {
			PTS json.Number `json:"pts"`
		} `json:"frames"`
	}
	if err := json.Unmarshal([]byte(out), &probe); err != nil || len(probe.Streams) != 1 {
		t.Fatalf("ffprobe %s: %v: %s", path, err, out)
	}
	ts := []string{"tb=" + probe.Streams[0].TimeBase, "duration=" + probe.Streams[0].Duration}
	for _, f := range probe.Frames {
		ts = append(ts, f.PTS.String())
	}
	return ts
}

// TestJoinAudioIsSeamless renders a sine and a chirp in chunks whose sizes
// do not divide the frame count. PCM chunks in a QuickTime output join
// sample-exact; lossless (ALAC) chunks in an MP4 output, decoded to PCM by
// their workers and encoded to AAC once, differ from the ideal signal
// around each boundary no more than a single AAC pass does anywhere.
func TestJoinAudioIsSeamless(t *testing.T) {
	rate := framerate.Rate{Num: 25, Den: 1}
	const total, size = 40, 7
	for _, tt := range []struct {
		audio, format string
		acodec        []string
		faststart     bool
	}{
		{"sine", "mov", []string{"-c:a", "pcm_s16le"}, false},
		{"chirp", "mov", []string{"-c:a", "pcm_s16le"}, true},
		{"sine", "mp4", []string{"-c:a", "alac"}, false},
		{"chirp", "mp4", []string{"-c:a", "alac"}, false},
	} {
		t.Run(tt.audio+" "+tt.acodec[1], func(t *testing.T) {
			t.Parallel()
			r := render{rate: rate, size: "32x24", video: x264BFrames, audio: tt.audio, acodec: tt.acodec, format: tt.format}
			j := r.job(t, "file://"+t.TempDir(), sizes(total, size), tt.faststart)
			if j.result.Method != stitch.MethodRemux {
				t.Errorf("joined by %q, want one remux pass for the audio", j.result.Method)
			}
			assertFrames(t, j)
			got, ref := decodeAudio(t, j.output), decodeAudio(t, j.reference)
			for i, w := range j.warnings {
				if len(w) > 0 {
					t.Errorf("chunk %d of lossless audio warned: %q", i, w)
				}
			}
			if tt.acodec[1] != "pcm_s16le" {
				// The single pass's audio encoded once as the stitcher
				// encodes it, from raw PCM. (ffmpeg 5.1's AAC encoder is
				// about 9 dB noisier from raw PCM than from the ALAC file,
				// at the same bit rate, whatever the joins.)
				dir := t.TempDir()
				pcm, aac := filepath.Join(dir, "single-pass.pcm"), filepath.Join(dir, "single-pass-aac.mp4")
				ffmpegRun(t, []string{"ffmpeg", "-v", "error", "-i", j.reference, "-map", "0:a", "-f", "s16le", "-ac", "2", "-y", pcm})
				ffmpegRun(t, []string{"ffmpeg", "-v", "error", "-f", "s16le", "-ar", "48000", "-ac", "2", "-i", pcm, "-c:a", "aac", "-y", aac})
				ref = decodeAudio(t, aac)
			}
			if want := int(rate.SampleAt(total, sampleRate)); len(got) != want {
				t.Fatalf("stitched audio has %d samples, want %d (frames × rate / fps)", len(got), want)
			}
			var boundaries []int
			for f := size; f < total; f += size {
				boundaries = append(boundaries, int(rate.SampleAt(int64(f), sampleRate)))
			}
			if tt.acodec[1] == "pcm_s16le" {
				if len(ref) != len(got) {
					t.Fatalf("single pass has %d samples, stitched %d", len(ref), len(got))
				}
				for i := range got {
					if got[i] != ref[i] {
						t.Fatalf("PCM differs from the single pass at sample %d (boundaries at %v): %d vs %d", i, boundaries, got[i], ref[i])
					}
				}
				return
			}
			ideal := idealAudio(tt.audio, len(got))
			noise := rms(diff(ref, ideal, 0, len(ref)))
			peak := maxAbs(diff(ref, ideal, 1024, len(ref)-1024))
			t.Logf("single pass AAC: rms error %.1f, peak %.0f (of 16384)", noise, peak)
			const window = 1024 // an AAC frame on each side
			for _, at := range boundaries {
				d := diff(got, ideal, at-window, at+window)
				if e, p := rms(d), maxAbs(d); e > 2*noise || p > 2*peak {
					t.Errorf("around the boundary at sample %d: rms error %.1f, peak %.0f; a single pass's AAC has rms %.1f, peak %.0f", at, e, p, noise, peak)
				}
			}
			if e := rms(diff(got, ideal, 0, len(got))); e > 2*noise {
				t.Errorf("stitched audio: rms error %.1f over the whole; a single pass's AAC has %.1f", e, noise)
			}
		})
	}
}

// Chunks whose command encodes AAC (what ffmpeg writes to MP4 unless told
// otherwise) click at the boundaries: each chunk's encoder starts cold and
// pads its end, which no stitcher can take back. The 440 Hz sine over 8
// chunks has clicks where lossless chunks have none, and every worker
// reports it with the fix, which the job's status then carries.
func TestLossyChunkAudioIsReported(t *testing.T) {
	rate := framerate.Rate{Num: 25, Den: 1}
	const total, size = 40, 5
	clicks := map[string]int{}
	for _, acodec := range []string{"aac", "alac"} {
		r := render{rate: rate, size: "32x24", video: x264BFrames, audio: "sine", acodec: []string{"-c:a", acodec}, format: "mp4"}
		j := r.job(t, "file://"+t.TempDir(), sizes(total, size), false)
		got := decodeAudio(t, j.output)
		clicks[acodec] = countClicks(got, idealAudio("sine", len(got)))
		for i, w := range j.warnings {
			warned := slices.ContainsFunc(w, func(m string) bool {
				return job.IsLossyAudioWarning(m) && strings.Contains(m, "-c:a alac in .mp4") && strings.Contains(m, "mp4a")
			})
			if warned != (acodec == "aac") {
				t.Errorf("%s chunk %d: warnings %q; want the lossy-audio warning with its fix: %v", acodec, i, w, acodec == "aac")
			}
		}
	}
	t.Logf("clicks: %v", clicks)
	if clicks["alac"] != 0 {
		t.Errorf("lossless chunks: %d clicks, want none", clicks["alac"])
	}
}

// countClicks counts the places where a decoded 440 Hz sine jumps away
// from the ideal one by more than its final AAC encode's noise explains:
// runs of samples off by more than 4% of full scale, counted once each.
func countClicks(got, ideal []int16) int {
	n, in := 0, false
	for i := range min(len(got), len(ideal)) {
		off := math.Abs(float64(got[i])-float64(ideal[i])) > 0.04*32768
		if off && !in {
			n++
		}
		in = off
	}
	return n
}

// decodeAudio decodes the first audio stream to 16-bit samples of the
// left channel, from time 0 as a player presents it: an AAC encoder's
// priming, which a fragmented MP4 carries before time 0 (ffmpeg 5.1 does
// not drop it when it decodes a file, Chromium does), is left out.
func decodeAudio(t *testing.T, path string) []int16 {
	t.Helper()
	raw := ffmpegRun(t, []string{"ffmpeg", "-v", "error", "-copyts", "-i", path, "-map", "0:a:0", "-af", "atrim=start=0", "-ac", "2", "-f", "s16le", "-c:a", "pcm_s16le", "-"})
	samples := make([]int16, len(raw)/4)
	for i := range samples {
		samples[i] = int16(binary.LittleEndian.Uint16([]byte(raw[4*i:])))
	}
	return samples
}

// idealAudio is audioExpr computed here, quantized as ffmpeg does.
func idealAudio(kind string, n int) []int16 {
	out := make([]int16, n)
	for i := range out {
		x := float64(i) / sampleRate
		v := 0.5 * math.Sin(2*math.Pi*440*x)
		if kind == "chirp" {
			v = 0.5 * math.Sin(2*math.Pi*(200*x+1500*x*x))
		}
		out[i] = int16(math.Round(v * 32767))
	}
	return out
}

func diff(a, b []int16, from, to int) []float64 {
	from, to = max(from, 0), min(to, len(a), len(b))
	d := make([]float64, 0, max(to-from, 0))
	for i := from; i < to; i++ {
		d = append(d, float64(a[i])-float64(b[i]))
	}
	return d
}

func rms(d []float64) float64 {
	s := 0.0
	for _, v := range d {
		s += v * v
	}
	return math.Sqrt(s / float64(max(len(d), 1)))
}

func maxAbs(d []float64) float64 {
	m := 0.0
	for _, v := range d {
		m = max(m, math.Abs(v))
	}
	return m
}

// TestJoinFaststart: the spec option publishes a progressive MP4 with its
// index in front, still frame-exact.
func TestJoinFaststart(t *testing.T) {
	r := render{rate: framerate.Rate{Num: 30, Den: 1}, size: "64x48", video: x264BFrames, format: "mp4"}
	j := r.job(t, "file://"+t.TempDir(), sizes(20, 6), true)
	assertFrames(t, j)
	data, err := os.ReadFile(j.output)
	if err != nil {
		t.Fatal(err)
	}
	moov, mdat, moof := bytes.Index(data, []byte("moov")), bytes.Index(data, []byte("mdat")), bytes.Index(data, []byte("moof"))
	if moov < 0 || mdat < 0 || moov > mdat || moof >= 0 {
		t.Errorf("not a progressive faststart MP4: moov at %d, mdat at %d, moof at %d", moov, mdat, moof)
	}
}

// TestJoinRefusesWhatCannotBeJoined: a chunk whose init differs from chunk
// 0's fails for good, naming the chunk and the difference; a segment
// changed after its worker checked it is reported damaged, for its chunk
// to be rendered again. Nothing is published either way.
func TestJoinRefusesWhatCannotBeJoined(t *testing.T) {
	testkit.RequireFFmpeg(t)
	r := render{rate: framerate.Rate{Num: 25, Den: 1}, video: x264BFrames, format: "mp4",
		sizeOf: func(chunk int) string { return map[bool]string{true: "32x24", false: "64x48"}[chunk == 1] }}
	timeline := &job.Timeline{FPS: 25, Audio: job.AudioFormat{SampleRate: sampleRate, Channels: 2}}
	work := func(t *testing.T, b *blob.Bucket, i, start, n int) (job.WorkerResult, error) {
		w := &worker.Handler{Store: jobstore.New(b, nil, nil), Runner: &execx.Runner{Allowed: job.Allowlist{"ffmpeg"}}, Media: ffmpeg.New(), TempDir: t.TempDir()}
		file := fmt.Sprintf("c%d.mp4", i)
		argv := r.argv(i, start, start+n, file)
		return w.Handle(t.Context(), job.WorkerJob{JobID: "j", Chunk: job.Chunk{Index: i, Start: start, Count: n}, Attempt: 1,
			Command: argv[0], Args: argv[1:], OutputFile: file, Timeline: timeline})
	}
	stitcher := func(b *blob.Bucket) *stitch.Handler {
		return &stitch.Handler{Store: jobstore.New(b, nil, nil), Stitcher: &stitch.FfmpegStitcher{Tool: ffmpeg.New()}, Media: ffmpeg.New()}
	}
	request := func(results ...job.WorkerResult) job.StitchRequest {
		req := job.StitchRequest{JobID: "j", OutputKey: "renders/j/output.mp4", Timeline: timeline}
		for _, res := range results {
			req.Segments = append(req.Segments, job.Segment{Key: res.SegmentKey, Frames: res.Frames})
		}
		return req
	}

	t.Run("the worker refuses a chunk unlike chunk 0", func(t *testing.T) {
		b := testkit.Bucket(t, "mem://")
		if _, err := work(t, b, 0, 0, 5); err != nil {
			t.Fatal(err)
		}
		_, err := work(t, b, 1, 5, 5)
		if e := joberr.AsError(err); e == nil || e.Kind != joberr.Permanent || e.Code != joberr.CodeIncompatible ||
			!strings.Contains(e.Message, "chunk 1 cannot be joined with chunk 0") || !strings.Contains(e.Message, "width 64 vs 32") {
			t.Errorf("chunk 1 = %v; want a permanent incompatible_segment error naming the chunk and the width", err)
		}
	})
	t.Run("the stitcher refuses a chunk unlike chunk 0", func(t *testing.T) {
		b := testkit.Bucket(t, "mem://")
		second, err := work(t, b, 1, 5, 5) // before chunk 0: the worker cannot tell
		if err != nil {
			t.Fatal(err)
		}
		first, err := work(t, b, 0, 0, 5)
		if err != nil {
			t.Fatal(err)
		}
		req := request(first, second)
		_, err = stitcher(b).Handle(t.Context(), req)
		if e := joberr.AsError(err); e == nil || e.Code != joberr.CodeIncompatible || e.Chunk == nil || *e.Chunk != 1 || !strings.Contains(e.Message, "width 64 vs 32") {
			t.Errorf("stitch = %v; want incompatible_segment for chunk 1 naming the width", err)
		}
		if ok, _ := b.Exists(t.Context(), req.OutputKey); ok {
			t.Error("output published")
		}
	})
	for _, c := range []struct {
		name string
		url  string
		edit func(data []byte) []byte
		want string
	}{
		{"truncated", "file", func(d []byte) []byte { return d[:len(d)-10] }, "its marker promises"},
		// A store that keeps an MD5 of each object (S3, GCS, mem://; not a
		// local folder opened with metadata=skip).
		{"same size, other bytes", "mem://", func(d []byte) []byte { d = slices.Clone(d); d[len(d)-1] ^= 0xff; return d }, "does not have the SHA-256 its marker promises"},
		{"gone", "file", nil, "does not exist"},
	} {
		t.Run("a damaged segment: "+c.name, func(t *testing.T) {
			url := c.url
			if url == "file" {
				url = "file://" + t.TempDir()
			}
			b := testkit.Bucket(t, url)
			r.sizeOf = nil
			r.size = "64x48"
			first, err := work(t, b, 0, 0, 5)
			if err != nil {
				t.Fatal(err)
			}
			second, err := work(t, b, 1, 5, 4)
			if err != nil {
				t.Fatal(err)
			}
			if c.edit == nil {
				err = b.Delete(t.Context(), second.SegmentKey)
			} else {
				data, _ := b.ReadAll(t.Context(), second.SegmentKey)
				err = b.WriteAll(t.Context(), second.SegmentKey, c.edit(data), nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			req := request(first, second)
			_, err = stitcher(b).Handle(t.Context(), req)
			var e *joberr.Error
			if !errors.As(err, &e) || e.Kind != joberr.Permanent || e.Chunk == nil || *e.Chunk != 1 || !strings.Contains(e.Message, c.want) {
				t.Errorf("stitch = %v; want chunk 1 reported damaged (%q)", err, c.want)
			}
			if ok, _ := b.Exists(t.Context(), req.OutputKey); ok {
				t.Error("output published")
			}
		})
	}
}

// TestRemuxRefusesAChangedSegment: on a store that keeps no MD5 (a local
// folder), a segment changed after its worker checked it, same size, is
// caught as it streams into the remux pass (its SHA-256), and nothing is
// published.
func TestRemuxRefusesAChangedSegment(t *testing.T) {
	testkit.RequireFFmpeg(t)
	b := testkit.Bucket(t, "file://"+t.TempDir())
	r := render{rate: framerate.Rate{Num: 25, Den: 1}, size: "32x24", video: x264BFrames, audio: "sine", acodec: []string{"-c:a", "pcm_s16le"}, format: "mov"}
	timeline := &job.Timeline{FPS: 25, Audio: job.AudioFormat{SampleRate: sampleRate, Channels: 2}}
	w := &worker.Handler{Store: jobstore.New(b, nil, nil), Runner: &execx.Runner{Allowed: job.Allowlist{"ffmpeg"}}, Media: ffmpeg.New(), TempDir: t.TempDir()}
	req := job.StitchRequest{JobID: "j", OutputKey: "renders/j/output.mov", Timeline: timeline}
	for i, c := range []job.Chunk{{Index: 0, Start: 0, Count: 5}, {Index: 1, Start: 5, Count: 4}} {
		file := fmt.Sprintf("c%d.mov", i)
		argv := r.argv(i, c.Start, c.End(), file)
		res, err := w.Handle(t.Context(), job.WorkerJob{JobID: "j", Chunk: c, Attempt: 1, Command: argv[0], Args: argv[1:], OutputFile: file, Timeline: timeline})
		if err != nil {
			t.Fatal(err)
		}
		req.Segments = append(req.Segments, job.Segment{Key: res.SegmentKey, Frames: res.Frames})
	}
	changed := req.Segments[1].Key
	data, err := b.ReadAll(t.Context(), changed)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	if err := b.WriteAll(t.Context(), changed, data, nil); err != nil {
		t.Fatal(err)
	}
	h := &stitch.Handler{Store: jobstore.New(b, nil, nil), Media: ffmpeg.New(), TempDir: t.TempDir()}
	_, err = h.Handle(t.Context(), req)
	if e := joberr.AsError(err); e == nil || e.Kind != joberr.Permanent || e.Code != joberr.CodeFrameMismatch || e.Chunk == nil || *e.Chunk != 1 || !strings.Contains(e.Message, "SHA-256") {
		t.Errorf("stitch = %v; want chunk 1 reported damaged by its SHA-256", err)
	}
	if ok, _ := b.Exists(t.Context(), req.OutputKey); ok {
		t.Error("output published")
	}
}
