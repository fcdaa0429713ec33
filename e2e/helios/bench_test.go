package helios

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/proc"
)

// readyLine is the renderer's summary: browser start-up, frames, their time.
var readyLine = regexp.MustCompile(`browser ready in (\d+) ms, (\d+) frames in (\d+) ms`)

// renderStats renders frames [0, frames) of an example once and measures
// it: the browser's start-up to the composition being ready, the frames'
// rate after that, and the peak resident memory of the whole process tree.
func renderStats(b *testing.B, r testkit.Renderer, browser, comp, mode string, width, height, frames int) (startup, fps, peakMB float64) {
	b.Helper()
	out := filepath.Join(b.TempDir(), "out.mov")
	cmd := exec.Command(filepath.Join(r.Bin, "helios"), "render", comp+"/index.html", "-o", out,
		"--frame-count", strconv.Itoa(frames), "--width", strconv.Itoa(width), "--height", strconv.Itoa(height),
		"--fps", "30", "--quality", "0", "--mode", mode)
	cmd.Dir = compositions
	cmd.Env = append(os.Environ(), "HELIOS_CHROMIUM="+browser)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				b.Fatalf("helios render: %v\n%s", err, stderr.String())
			}
			running = false
		case <-tick.C:
			peak = max(peak, proc.TreeRSS(cmd.Process.Pid))
		}
	}
	m := readyLine.FindStringSubmatch(stderr.String())
	if m == nil {
		b.Fatalf("no summary line in:\n%s", stderr.String())
	}
	ready, _ := strconv.ParseFloat(m[1], 64)
	n, _ := strconv.ParseFloat(m[2], 64)
	ms, _ := strconv.ParseFloat(m[3], 64)
	return ready, n * 1000 / ms, float64(peak) / (1 << 20)
}

// BenchmarkRender is one worker rendering one chunk of an example, per
// mode, browser and size: frames per second after start-up, the start-up
// (browser launch to composition ready: paid once per chunk) and the peak
// memory of the render (Node, Chromium, ffmpeg), which size the browser
// worker. From these, docs/PERFORMANCE.md derives framesPerChunk.
//
//	go test -run '^$' -bench Render -benchtime 3x ./e2e/helios
func BenchmarkRender(b *testing.B) {
	r := requireRendererB(b)
	debian := testkit.RequireChromium(b)
	for _, tc := range []struct {
		name, comp, mode, browser string
		w, h                      int
	}{
		{"canvas/shell/640x360", "canvas", "canvas", r.Shell, 640, 360},
		{"canvas/shell/1280x720", "canvas", "canvas", r.Shell, 1280, 720},
		{"dom/shell/640x360", "dom", "dom", r.Shell, 640, 360},
		{"dom/shell/1280x720", "dom", "dom", r.Shell, 1280, 720},
		{"dom/debian-chromium/1280x720", "dom", "dom", debian, 1280, 720},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var startup, fps, peak float64
			for b.Loop() {
				s, f, p := renderStats(b, r, tc.browser, tc.comp, tc.mode, tc.w, tc.h, 90)
				startup, fps, peak = startup+s, fps+f, max(peak, p)
			}
			b.ReportMetric(startup/float64(b.N), "startup-ms")
			b.ReportMetric(fps/float64(b.N), "frames/s")
			b.ReportMetric(peak, "peak-MB")
		})
	}
}

// BenchmarkChunkedVsOnePass renders the canvas example's spec (90 frames,
// 4 chunks) with `helios job run` on this machine (2 chunks at a time,
// confined) beside one pass of the renderer over the same frames, and
// reports the ratio of their wall times.
//
//	go test -run '^$' -bench ChunkedVsOnePass -benchtime 3x ./e2e/helios
func BenchmarkChunkedVsOnePass(b *testing.B) {
	r := requireRendererB(b)
	spec := filepath.Join(root, "examples", "jobs", "helios-canvas.json")
	var chunked, onePassed time.Duration
	for b.Loop() {
		start := time.Now()
		cmd := exec.Command(cli, "job", "run", spec, "--assets", compositions, "--out", filepath.Join(b.TempDir(), "out.mp4"), "--storage", b.TempDir())
		cmd.Env = append(os.Environ(), "PATH="+r.Bin+string(os.PathListSeparator)+os.Getenv("PATH"), "HELIOS_ALLOWED_COMMANDS=ffmpeg,helios")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("helios job run: %v\n%s", err, msg)
		}
		chunked += time.Since(start)
		start = time.Now()
		onePass(b, r, spec)
		onePassed += time.Since(start)
	}
	b.ReportMetric(chunked.Seconds()/float64(b.N), "chunked-s")
	b.ReportMetric(onePassed.Seconds()/float64(b.N), "one-pass-s")
	b.ReportMetric(chunked.Seconds()/onePassed.Seconds(), "chunked/one-pass")
}

func requireRendererB(b *testing.B) testkit.Renderer {
	b.Helper()
	if stack == nil {
		b.Skip("-short")
	}
	return testkit.RequireRenderer(b)
}
