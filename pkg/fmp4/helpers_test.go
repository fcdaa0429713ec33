package fmp4_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/fmp4"
)

// Frame size of the test renders: small, so ffmpeg is quick.
const testSize = "64x48"

// encoder is how a test renders: the codec args of the chunk command.
type encoder struct {
	name string
	args []string
	// lossless renders decode to the test pattern itself, so a chunked
	// render must equal a single pass frame for frame; a lossy chunk only
	// decodes to what its own encode holds.
	lossless bool
}

// The project's args: lossless x264, which also means no B-frames (x264
// turns them off at qp 0).
func x264Lossless() encoder {
	return encoder{"x264-lossless", []string{"-c:v", "libx264", "-qp", "0", "-preset", "ultrafast"}, true}
}

// x264 with B-frames (its default of 3): each chunk has a decoder delay.
func x264BFrames() encoder {
	return encoder{"x264-bframes", []string{"-c:v", "libx264", "-preset", "veryfast", "-crf", "30"}, false}
}

// x265 lossless keeps B-frames: a delayed, reordered stream that still
// decodes to the pattern.
func x265Lossless() encoder {
	return encoder{"x265-lossless", []string{"-c:v", "libx265", "-x265-params", "lossless=1:log-level=error"}, true}
}

// renderArgs renders frames [start, end) of the test pattern as the
// project's chunk commands do: trim, then timestamps from zero.
func renderArgs(enc encoder, rate string, start, end int, output string) []string {
	return renderSizedArgs(enc, testSize, rate, start, end, output)
}

func renderSizedArgs(enc encoder, size, rate string, start, end int, output string) []string {
	args := []string{"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=%s", size, rate),
		"-vf", fmt.Sprintf("trim=start_frame=%d:end_frame=%d,setpts=PTS-STARTPTS", start, end)}
	args = append(args, enc.args...)
	return append(args, "-pix_fmt", "yuv420p", "-an", "-y", output)
}

// withOutputArgs puts extra args before the output name, the last arg.
func withOutputArgs(argv []string, extra ...string) []string {
	last := len(argv) - 1
	return append(append(argv[:last:last], extra...), argv[last])
}

// run runs argv and returns its stdout.
func run(t *testing.T, argv ...string) string {
	t.Helper()
	stdout, _ := runBoth(t, argv...)
	return stdout
}

// runBoth runs argv and returns its stdout and its stderr.
func runBoth(t *testing.T, argv ...string) (stdout, stderr string) {
	t.Helper()
	var errOut strings.Builder
	cmd := exec.CommandContext(t.Context(), argv[0], argv[1:]...)
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, errOut.String())
	}
	return string(out), errOut.String()
}

// chunk is one rendered and fragmented chunk.
type chunk struct {
	start, count int
	plain        string // as rendered
	fragmented   string // FragmentArgs' output
}

// renderChunks renders total frames in chunks of the given sizes, each on
// its own as a worker would, and fragments each.
func renderChunks(t *testing.T, dir string, enc encoder, rate string, sizes []int) []chunk {
	t.Helper()
	var chunks []chunk
	start := 0
	for i, n := range sizes {
		c := chunk{start: start, count: n,
			plain:      filepath.Join(dir, fmt.Sprintf("chunk-%03d.mp4", i)),
			fragmented: filepath.Join(dir, fmt.Sprintf("chunk-%03d.frag.mp4", i))}
		run(t, renderArgs(enc, rate, start, start+n, c.plain)...)
		run(t, fmp4.FragmentArgs(c.plain, c.fragmented, nil)...)
		chunks = append(chunks, c)
		start += n
	}
	return chunks
}

// chunkSizes splits total frames in chunks of size, the last shorter.
func chunkSizes(total, size int) []int {
	var sizes []int
	for total > 0 {
		n := min(size, total)
		sizes = append(sizes, n)
		total -= n
	}
	return sizes
}

// probe is what ffprobe says of a file's video stream.
type probe struct {
	TimeBase string
	// Duration is the stream's; FileDuration the container's, which a
	// plain MP4 rounds to its movie timescale (ffmpeg writes 1000).
	Duration, FileDuration string
	PTS                    []string // of every decoded frame, in the stream's time base
}

func probeFile(t *testing.T, path string) probe {
	t.Helper()
	out := run(t, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=time_base,duration:format=duration:frame=pts", "-of", "json", path)
	var raw struct {
		Streams []struct {
			TimeBase string `json:"time_base"`
			Duration string `json:"duration"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Frames []struct {
			PTS json.Number `json:"pts"`
		} `json:"frames"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil || len(raw.Streams) != 1 {
		t.Fatalf("ffprobe %s: %v: %s", path, err, out)
	}
	p := probe{TimeBase: raw.Streams[0].TimeBase, Duration: raw.Streams[0].Duration, FileDuration: raw.Format.Duration}
	for _, f := range raw.Frames {
		p.PTS = append(p.PTS, f.PTS.String())
	}
	return p
}
