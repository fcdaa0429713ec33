// Package compositions renders what real compositions use, each in a
// composition written for it (testdata/real): videos that must show the
// right frame, WebGL in canvas mode, transformed layers that must come out
// the same every time, fonts from another origin, data: URI media, mono
// tracks and observers. Each either renders right, chunked as in one pass,
// or fails loudly, naming the way out.
package compositions

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/assets"
	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/pagefetch"
	"github.com/helios-project/infrastructure/pkg/sandbox"
	"github.com/helios-project/infrastructure/pkg/storage"
	"github.com/helios-project/infrastructure/pkg/worker"
)

func TestMain(m *testing.M) {
	sandbox.Main() // the worker handlers of these tests confine their commands by re-running this binary
	os.Exit(m.Run())
}

// need skips under -short (Chromium renders are not run) and returns the
// Helios renderer.
func need(t testing.TB) testkit.Renderer {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: Chromium renders are not run")
	}
	testkit.RequireFFmpeg(t)
	return testkit.RequireRenderer(t)
}

// compositions are the examples, whose @helios-project/core the
// compositions here use (make renderer installs it).
var compositions = filepath.Join("..", "..", "examples", "compositions")

// coreDir is the @helios-project/core the examples install (make renderer).
var coreDir = filepath.Join(compositions, "node_modules", "@helios-project", "core")

// realBundle makes an asset folder of the named compositions of
// testdata/real, with @helios-project/core beside them, and runs each
// one's media maker on it.
func realBundle(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "node_modules", "@helios-project", "core"), os.DirFS(coreDir)); err != nil {
		t.Fatalf("copy @helios-project/core (run make renderer): %v", err)
	}
	for _, name := range names {
		sub, err := fs.Sub(os.DirFS(filepath.Join("testdata", "real")), name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(filepath.Join(dir, name), sub); err != nil {
			t.Fatal(err)
		}
		if make := mediaMakers[name]; make != nil {
			make(t, filepath.Join(dir, name))
		}
	}
	return dir
}

// mediaMakers write the media of the compositions that have some.
var mediaMakers = map[string]func(t testing.TB, dir string){
	"video": func(t testing.TB, dir string) {
		ffmpegRun(t, "-f", "lavfi", "-i", barsSource, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "30", filepath.Join(dir, "clip.mp4"))
		ffmpegRun(t, "-f", "lavfi", "-i", barsSource, "-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "30", "-g", "30", "-deadline", "realtime", "-cpu-used", "8", filepath.Join(dir, "clip.webm"))
	},
	"mono": func(t testing.TB, dir string) {
		ffmpegRun(t, "-f", "lavfi", "-i", "aevalsrc=0.25*sin(2*PI*440*t):s=48000:d=1", "-c:a", "pcm_s16le", "-ac", "1", filepath.Join(dir, "tone-mono.wav"))
	},
	"datamedia": func(t testing.TB, dir string) {
		ffmpegRun(t, "-f", "lavfi", "-i", barsSource, "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", filepath.Join(dir, "clip.mp4"))
		ffmpegRun(t, "-f", "lavfi", "-i", "aevalsrc=0.5*sin(2*PI*330*t)|0.5*sin(2*PI*550*t):s=48000:d=2", "-c:a", "pcm_s16le", filepath.Join(dir, "tone.wav"))
		page := filepath.Join(dir, "index.html")
		html := readFile(t, page)
		html = strings.Replace(html, "DATA_VIDEO", "data:video/mp4;base64,"+base64.StdEncoding.EncodeToString([]byte(readFile(t, filepath.Join(dir, "clip.mp4")))), 1)
		html = strings.Replace(html, "DATA_AUDIO", "data:audio/wav;base64,"+base64.StdEncoding.EncodeToString([]byte(readFile(t, filepath.Join(dir, "tone.wav")))), 1)
		for _, f := range []string{"clip.mp4", "tone.wav"} {
			os.Remove(filepath.Join(dir, f)) // only the data: URIs carry them
		}
		if err := os.WriteFile(page, []byte(html), 0o644); err != nil {
			t.Fatal(err)
		}
	},
}

// barsSource is a 4 s, 30 fps, 160x120 clip whose frame n shows n as eight
// vertical bars, bar i bright when bit i of n is set.
const barsSource = "color=c=black:s=160x120:r=30:d=4,format=gray,geq=lum='if(bitand(N\\,pow(2\\,floor(X*8/W)))\\,235\\,16)'"

func ffmpegRun(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ffmpeg", append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	if err := os.WriteFile(to, []byte(readFile(t, from)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testFont is a TrueType font unlike the monospace fallback: Chromium's
// recommended fonts-liberation has it.
func testFont(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/share/fonts/truetype/liberation/LiberationSerif-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("no serif TrueType font: install fonts-liberation (apt-get install -y fonts-liberation)")
	return ""
}

// renderIn runs `helios render` on a composition of dir in browser and
// returns the output and the renderer's stderr.
func renderIn(t *testing.T, r testkit.Renderer, dir, browser, comp, mode string, start, count int, extra ...string) (string, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), fmt.Sprintf("%s-%d.mov", strings.ReplaceAll(comp, "/", "-"), start))
	args := []string{"render", comp + "/index.html", "-o", out, "--start-frame", fmt.Sprint(start), "--frame-count", fmt.Sprint(count),
		"--width", "320", "--height", "240", "--fps", "30", "--quality", "0", "--mode", mode, "--audio-codec", "pcm_s16le"}
	cmd := exec.Command(filepath.Join(r.Bin, "helios"), append(args, extra...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HELIOS_CHROMIUM="+browser)
	stderr, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helios render %s [%d, %d): %v\n%s", comp, start, start+count, err, stderr)
	}
	return out, string(stderr)
}

// chunked renders [0, total) in chunks of the given sizes and returns
// their frames' MD5s in order, and their audio.
func chunked(t *testing.T, r testkit.Renderer, dir, browser, comp, mode string, sizes ...int) ([]string, []byte) {
	t.Helper()
	var frames []string
	var audio []byte
	start := 0
	for _, n := range sizes {
		part, _ := renderIn(t, r, dir, browser, comp, mode, start, n)
		frames = append(frames, testkit.FrameMD5(t, part)...)
		if len(probeStreams(t, part, "a")) > 0 {
			audio = append(audio, testkit.PCM(t, part)...)
		}
		start += n
	}
	return frames, audio
}

func probeStreams(t *testing.T, path, kind string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", kind, "-show_entries", "stream=index", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

func assertSameFrames(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d frames, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: frame %d differs", what, i)
		}
	}
}

// bars reads the number each frame of a video shows in the 160x120 region
// at (x, 0), as barsSource draws it.
func bars(t *testing.T, path string, x int) []int {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", path,
		"-vf", fmt.Sprintf("crop=160:120:%d:0,scale=8:1:flags=area", x), "-f", "rawvideo", "-pix_fmt", "gray", "-").Output()
	if err != nil {
		t.Fatalf("read the bars of %s: %v", path, err)
	}
	var ns []int
	for f := 0; f+8 <= len(out); f += 8 {
		n := 0
		for i := range 8 {
			if out[f+i] > 128 {
				n |= 1 << i
			}
		}
		ns = append(ns, n)
	}
	return ns
}

// TestVideoElementsShowTheFrameOfTheirTime renders a composition with an
// H.264 clip from its start and a VP9 clip from 1 s in: frame K shows the
// clips' frames K and K+30, in one pass and in chunks that do not divide
// the video, in the headless shell (frames drawn on request) and, for a
// stretch, in Debian's chromium.
func TestVideoElementsShowTheFrameOfTheirTime(t *testing.T) {
	r := need(t)
	dir := realBundle(t, "video")
	check := func(what, path string, start int) {
		t.Helper()
		h264, vp9 := bars(t, path, 0), bars(t, path, 160)
		for i := range h264 {
			if k := start + i; h264[i] != k || vp9[i] != k+30 {
				t.Fatalf("%s: frame %d shows clip frames %d (H.264) and %d (VP9), want %d and %d", what, k, h264[i], vp9[i], k, k+30)
			}
		}
	}
	one, _ := renderIn(t, r, dir, r.Shell, "video", "dom", 0, 90)
	check("one pass", one, 0)
	frames, _ := chunked(t, r, dir, r.Shell, "video", "dom", 7, 25, 58)
	assertSameFrames(t, "chunked", frames, testkit.FrameMD5(t, one))
	part, _ := renderIn(t, r, dir, testkit.RequireChromium(t), "video", "dom", 40, 12)
	check("Debian chromium", part, 40)
}

// TestWebGLInCanvasMode captures a WebGL canvas drawn with the default
// context attributes: its frames are drawn (not blank), move, and join
// chunked into the one-pass render.
func TestWebGLInCanvasMode(t *testing.T) {
	r := need(t)
	dir := realBundle(t, "webgl")
	one, stderr := renderIn(t, r, dir, r.Shell, "webgl", "canvas", 0, 60)
	if strings.Contains(stderr, "warning") {
		t.Errorf("the render warned:\n%s", stderr)
	}
	for _, f := range []int{0, 30, 59} {
		if lo, hi := testkit.LumaRange(t, one, f); hi-lo < 50 {
			t.Errorf("frame %d is blank: luma %d..%d", f, lo, hi)
		}
	}
	want := testkit.FrameMD5(t, one)
	if want[0] == want[30] {
		t.Error("frames 0 and 30 are the same: the scene does not move")
	}
	frames, _ := chunked(t, r, dir, r.Shell, "webgl", "canvas", 13, 47)
	assertSameFrames(t, "chunked", frames, want)
}

// TestTransformsAreReproducible renders layers that scale, rotate and move
// in 3D (half of them will-change: transform) twice in one pass and once in
// chunks: every frame is byte for byte the same.
func TestTransformsAreReproducible(t *testing.T) {
	r := need(t)
	dir := realBundle(t, "transforms")
	first, _ := renderIn(t, r, dir, r.Shell, "transforms", "dom", 0, 120)
	second, _ := renderIn(t, r, dir, r.Shell, "transforms", "dom", 0, 120)
	want := testkit.FrameMD5(t, first)
	assertSameFrames(t, "the second one-pass render", testkit.FrameMD5(t, second), want)
	frames, _ := chunked(t, r, dir, r.Shell, "transforms", "dom", 37, 40, 43)
	assertSameFrames(t, "chunked", frames, want)
}

// TestDataURIMedia renders a muted data: URI video, which adds no sound,
// and an audible data: URI track, mixed at its level; chunked as one pass.
func TestDataURIMedia(t *testing.T) {
	r := need(t)
	dir := realBundle(t, "datamedia")
	one, _ := renderIn(t, r, dir, r.Shell, "datamedia", "dom", 0, 60)
	audio := testkit.PCM(t, one)
	if p := testkit.Peak(audio); p < 16000 || p > 16400 {
		t.Errorf("the mix peaks at %d, want the track's 16383", p)
	}
	frames, chunkAudio := chunked(t, r, dir, r.Shell, "datamedia", "dom", 19, 41)
	assertSameFrames(t, "chunked", frames, testkit.FrameMD5(t, one))
	testkit.AssertSameAudio(t, chunkAudio, audio)

	// An audible data: URI that cannot be played fails the chunk for good,
	// and the message quotes the URI's start and length, not 27 KB of it.
	page := filepath.Join(dir, "datamedia", "index.html")
	broken := "data:audio/wav;base64," + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("not a wav file "), 1800))
	html := readFile(t, page)
	html = html[:strings.Index(html, `<audio src="`)+len(`<audio src="`)] + broken + html[strings.Index(html, `" preload="auto"></audio>`):]
	os.WriteFile(page, []byte(html), 0o644)
	cmd := exec.Command(filepath.Join(r.Bin, "helios"), "render", "datamedia/index.html", "-o", filepath.Join(t.TempDir(), "x.mov"), "--frame-count", "3", "--width", "320", "--height", "240", "--mode", "dom")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 65 || !strings.Contains(string(out), "cannot be mixed: ffmpeg finds no audio in it") || !strings.Contains(string(out), "(36022 characters)") || len(out) > 1000 {
		t.Errorf("an unplayable data: URI track: %v, %d bytes of stderr:\n%.1000s", err, len(out), out)
	}
}

// TestMonoAtFullLevel mixes a mono track at 0.25 full scale: both channels
// peak at 0.25, as a browser plays it.
func TestMonoAtFullLevel(t *testing.T) {
	r := need(t)
	dir := realBundle(t, "mono")
	out, _ := renderIn(t, r, dir, r.Shell, "mono", "dom", 0, 30)
	audio := testkit.PCM(t, out)
	left, right := 0, 0
	for i := 0; i+3 < len(audio); i += 4 {
		l, rr := int(int16(uint16(audio[i])|uint16(audio[i+1])<<8)), int(int16(uint16(audio[i+2])|uint16(audio[i+3])<<8))
		left, right = max(left, l, -l), max(right, rr, -rr)
	}
	if want := 8191; abs(left-want) > 2 || abs(right-want) > 2 {
		t.Errorf("channel peaks %d and %d, want %d on both", left, right, want)
	}
}

func abs(n int) int { return max(n, -n) }

// fontOrigin stands for a font service on another origin
// (https://fonts.example.test): a stylesheet, and the font it names.
func fontOrigin(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	font := readFile(t, testFont(t))
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		switch r.URL.Path {
		case "/css2":
			w.Header().Set("Content-Type", "text/css")
			io.WriteString(w, `@font-face { font-family: "Helios Test"; src: url(https://fonts.example.test/helios-test.ttf) format("truetype"); }`)
		case "/helios-test.ttf":
			w.Header().Set("Content-Type", "font/ttf")
			io.WriteString(w, font)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// workerRender renders chunk [0, count) of comp in dir through a worker
// handler in this process (its command confined, as on a worker) with the
// given page fetcher, and returns the segment's frames.
func workerRender(t *testing.T, r testkit.Renderer, dir, comp string, count int, fetcher worker.PageFetcher) ([]string, error) {
	t.Helper()
	launcher, err := sandbox.Self(false)
	if err != nil {
		t.Fatal(err)
	}
	b := testkit.Bucket(t, "mem://")
	key, err := assets.Upload(t.Context(), b, dir)
	if err != nil {
		t.Fatal(err)
	}
	var spec job.Spec
	data := fmt.Sprintf(`{"id": "w-%s", "assets": %q, "metadata": {"totalFrames": %d, "fps": 30, "width": 320, "height": 240},
	  "chunks": [{"id": 0, "startFrame": 0, "frameCount": %d, "outputFile": "part_0.mov",
	    "command": "helios render %s/index.html -o part_0.mov --frame-count %d --width 320 --height 240 --mode dom"}]}`, comp, key, count, count, comp, count)
	if err := json.Unmarshal([]byte(data), &spec); err != nil {
		t.Fatal(err)
	}
	spec.Normalize()
	h := &worker.Handler{Store: jobstore.New(b, nil, nil), Runner: &execx.Runner{Allowed: job.Allowlist{"helios"}, Confiner: launcher}, Media: ffmpeg.New(), Fetcher: fetcher, TempDir: t.TempDir()}
	t.Setenv("PATH", r.Bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	res, err := h.Handle(t.Context(), spec.WorkerJob(spec.Plan()[0], 1, 1))
	if err != nil {
		return nil, err
	}
	seg := filepath.Join(t.TempDir(), "segment.mp4")
	if _, err := storage.DownloadFile(t.Context(), b, res.SegmentKey, seg); err != nil {
		t.Fatal(err)
	}
	return testkit.FrameMD5(t, seg), nil
}

// TestRemoteFonts: a font @import-ed from another origin fails the chunk
// at once, for good, naming the URL and the way out, where the deployment
// fetches no origin for pages; where it fetches that origin
// (HELIOS_RENDER_ORIGINS), the worker fetches it for the confined page and
// the frames equal those of the same font bundled with the page, and differ
// from the fallback's.
func TestRemoteFonts(t *testing.T) {
	r := need(t)
	dir := realBundle(t, "font-remote")
	// The same page with the font bundled, and with no font of that name
	// (the fallback).
	remote := readFile(t, filepath.Join(dir, "font-remote", "index.html"))
	const imported = `@import url("https://fonts.example.test/css2?family=Helios+Test");`
	for comp, rule := range map[string]string{"font-local": `@font-face { font-family: "Helios Test"; src: url(helios-test.ttf) format("truetype"); }`, "font-none": ""} {
		os.MkdirAll(filepath.Join(dir, comp), 0o755)
		os.WriteFile(filepath.Join(dir, comp, "index.html"), []byte(strings.Replace(remote, imported, rule, 1)), 0o644)
	}
	copyFile(t, testFont(t), filepath.Join(dir, "font-local", "helios-test.ttf"))

	t.Run("refused", func(t *testing.T) {
		none, err := pagefetch.New(nil, pagefetch.Options{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = workerRender(t, r, dir, "font-remote", 10, none)
		var e *joberr.Error
		if !errors.As(err, &e) || e.Kind != joberr.Permanent {
			t.Fatalf("err = %v; want a permanent error", err)
		}
		for _, want := range []string{"https://fonts.example.test/css2?family=Helios+Test", "was refused", "HELIOS_RENDER_ORIGINS is empty; add https://fonts.example.test", "--assets"} {
			if !strings.Contains(e.StderrTail, want) {
				t.Errorf("the error does not say %q:\n%s", want, e.StderrTail)
			}
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("failing took %s", took)
		}
	})
	t.Run("fetched", func(t *testing.T) {
		srv, hits := fontOrigin(t)
		fetcher, err := pagefetch.New([]string{"https://fonts.example.test"}, pagefetch.Options{Client: testkit.ClientTo(srv)})
		if err != nil {
			t.Fatal(err)
		}
		remote, err := workerRender(t, r, dir, "font-remote", 10, fetcher)
		if err != nil {
			t.Fatal(err)
		}
		local, err := workerRender(t, r, dir, "font-local", 10, fetcher)
		if err != nil {
			t.Fatal(err)
		}
		fallback, err := workerRender(t, r, dir, "font-none", 10, fetcher)
		if err != nil {
			t.Fatal(err)
		}
		assertSameFrames(t, "the remote font beside the bundled one", remote, local)
		if remote[5] == fallback[5] {
			t.Error("the remote font renders as the fallback does")
		}
		if hits.Load() < 2 {
			t.Errorf("the font origin was asked %d times; want the stylesheet and the font", hits.Load())
		}
	})
}

// TestObserversSeeRenderedFrames renders a page whose IntersectionObserver
// callbacks check what they are told (the page throws otherwise): an
// element always in view is never told it left, one that leaves is told
// within two frames, although each frame is drawn from fresh layers; and
// frames whose body paints nothing new still render.
func TestObserversSeeRenderedFrames(t *testing.T) {
	r := need(t)
	dir := realBundle(t, "observer")
	for _, browser := range []string{r.Shell, testkit.RequireChromium(t)} {
		renderIn(t, r, dir, browser, "observer", "dom", 0, 8)
		renderIn(t, r, dir, browser, "observer", "dom", 4, 4)
	}
}
