// Package helios renders the example Helios compositions
// (examples/compositions) with the Helios renderer (renderers/helios) in
// headless Chromium: chunks of sizes that do not divide the video equal a
// one-pass render frame for frame and sample for sample, in the npm headless
// shell and in Debian's chromium; the example specs render frame-exact
// through `helios job run` and through the emulated Lambda stack, whose
// browser worker takes the `helios` chunks; and a composition that throws,
// never becomes ready or stalls fails its chunk with the page's error in the
// job's status.
package helios

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/helios-project/infrastructure/internal/awslocal"
	"github.com/helios-project/infrastructure/internal/localnet"
	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/assets"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/sandbox"
	"github.com/helios-project/infrastructure/pkg/storage"
)

var (
	stack *awslocal.Stack
	cli   string // this repository's helios CLI, built for the tests
	root  string // the module root
)

func TestMain(m *testing.M) {
	sandbox.Main() // the worker handlers of these tests confine their commands by re-running this binary
	var err error
	if root, err = localnet.ModuleRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(testkit.MainWithStack(m, "helios", func(dir string) (func(), error) {
		if cli, err = localnet.Build(context.Background(), filepath.Join(root, "cmd", "helios"), dir, "helios-cli", ""); err != nil {
			return nil, err
		}
		stack, err = awslocal.StartStack(context.Background(), awslocal.StackOptions{
			WorkDir: dir, BrowserWorkers: 2, RendererDir: filepath.Join(root, "renderers", "helios", "bin"),
		})
		if err != nil {
			return nil, err
		}
		return stack.Close, nil
	}))
}

func need(t *testing.T) testkit.Renderer {
	t.Helper()
	if stack == nil {
		t.Skip("-short: Chromium renders are not run")
	}
	testkit.RequireFFmpeg(t)
	return testkit.RequireRenderer(t)
}

var compositions = filepath.Join("..", "..", "examples", "compositions")

// render runs `helios render` on an example composition at 320x240 and
// returns the output's path.
func render(t *testing.T, r testkit.Renderer, browser, comp, mode string, start, count int) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), fmt.Sprintf("%s-%d.mov", comp, start))
	cmd := exec.Command(filepath.Join(r.Bin, "helios"), "render", comp+"/index.html", "-o", out,
		"--start-frame", fmt.Sprint(start), "--frame-count", fmt.Sprint(count),
		"--width", "320", "--height", "240", "--fps", "30", "--quality", "0", "--mode", mode, "--audio-codec", "pcm_s16le")
	cmd.Dir = compositions
	cmd.Env = append(os.Environ(), "HELIOS_CHROMIUM="+browser)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helios render %s [%d, %d): %v\n%s", comp, start, start+count, err, msg)
	}
	return out
}

// TestChunksMatchOnePass renders each example in chunks of 7, 25 and 58
// frames (none divides 90) and in one pass, in both browsers, and compares
// every decoded frame and every audio sample.
func TestChunksMatchOnePass(t *testing.T) {
	r := need(t)
	debian := testkit.RequireChromium(t)
	for _, tc := range []struct{ name, comp, mode, browser string }{
		{"canvas in the npm headless shell", "canvas", "canvas", r.Shell},
		{"dom in Debian chromium", "dom", "dom", debian},
	} {
		t.Run(tc.name, func(t *testing.T) {
			one := render(t, r, tc.browser, tc.comp, tc.mode, 0, 90)
			var frames []string
			var audio []byte
			for _, c := range [][2]int{{0, 7}, {7, 25}, {32, 58}} {
				part := render(t, r, tc.browser, tc.comp, tc.mode, c[0], c[1])
				frames = append(frames, testkit.FrameMD5(t, part)...)
				audio = append(audio, testkit.PCM(t, part)...)
			}
			want := testkit.FrameMD5(t, one)
			if len(want) != 90 || want[0] == want[45] || want[45] == want[89] {
				t.Fatalf("the one-pass render has %d frames and does not move: %v", len(want), want)
			}
			// Every chunk's first frame was drawn (the page was ready).
			for _, f := range []int{0, 7, 32} {
				if lo, hi := testkit.LumaRange(t, one, f); hi-lo < 50 {
					t.Errorf("frame %d is blank: luma %d..%d", f, lo, hi)
				}
			}
			if strings.Join(frames, " ") != strings.Join(want, " ") {
				for i := range want {
					if i >= len(frames) || frames[i] != want[i] {
						t.Fatalf("chunked frame %d differs from the one-pass render (%d frames vs %d)", i, len(frames), len(want))
					}
				}
			}
			testkit.AssertSameAudio(t, audio, testkit.PCM(t, one))
		})
	}
}

// onePass renders an example spec's composition in one pass the way its
// chunk commands do, in the browser the worker finds (the headless shell).
func onePass(t testing.TB, r testkit.Renderer, specPath string) string {
	t.Helper()
	var spec job.Spec
	data, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	words := strings.Fields(spec.Chunks[0].Command)
	var args []string
	for i := 1; i < len(words); i++ {
		switch words[i] {
		case "-o", "--start-frame", "--frame-count":
			i++
		default:
			args = append(args, words[i])
		}
	}
	out := filepath.Join(t.TempDir(), "one-pass"+filepath.Ext(spec.Chunks[0].OutputFile))
	cmd := exec.Command(filepath.Join(r.Bin, "helios"), append(args, "-o", out)...)
	cmd.Dir = compositions
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("one-pass render: %v\n%s", err, msg)
	}
	return out
}

// runCLI runs this repository's helios CLI with the renderer on PATH and
// allowed, as a user following the README does.
func runCLI(t *testing.T, r testkit.Renderer, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(cli, args...)
	cmd.Env = append(os.Environ(), "PATH="+r.Bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HELIOS_ALLOWED_COMMANDS=ffmpeg,helios", "HELIOS_STORAGE_URL=")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestJobRunMatchesOnePass renders the DOM example's spec, as written,
// with `helios job run --assets`: the chunks run confined (Landlock and
// seccomp, as on a worker), the mov output's video and PCM audio equal a
// one-pass render.
func TestJobRunMatchesOnePass(t *testing.T) {
	r := need(t)
	spec := filepath.Join(root, "examples", "jobs", "helios-dom.json")
	out := filepath.Join(t.TempDir(), "dom.mov")
	if _, stderr, err := runCLI(t, r, "job", "run", spec, "--assets", compositions, "--out", out, "--storage", t.TempDir()); err != nil {
		t.Fatalf("helios job run: %v\n%s", err, stderr)
	}
	one := onePass(t, r, spec)
	testkit.AssertFrameExact(t, out, one)
	testkit.AssertSameAudio(t, testkit.PCM(t, out), testkit.PCM(t, one))
}

// TestLambdaBrowserWorker runs the canvas example's spec on the emulated
// AWS stack from an S3 upload: its chunks go to the browser worker (the
// only one allowed to run helios), and the MP4 (video joined as bytes,
// audio encoded once to AAC) is frame-exact with 3 s of audio.
func TestLambdaBrowserWorker(t *testing.T) {
	r := need(t)
	key, err := assets.Upload(t.Context(), stack.Bucket, compositions)
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(root, "examples", "jobs", "helios-canvas.json")
	data, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	doc["assets"] = key
	data, _ = json.Marshal(doc)
	workers, browsers := stack.Lambda.Calls(awslocal.WorkerFunction), stack.Lambda.Calls(awslocal.BrowserWorkerFunction)
	if err := stack.Bucket.WriteAll(t.Context(), layout.JobKey("lambda-canvas"), data, nil); err != nil {
		t.Fatal(err)
	}
	ev := events.S3Event{Records: []events.S3EventRecord{{EventSource: "aws:s3", EventName: "ObjectCreated:Put", AWSRegion: awslocal.Region,
		S3: events.S3Entity{Bucket: events.S3Bucket{Name: awslocal.BucketName}, Object: events.S3Object{Key: layout.JobKey("lambda-canvas")}}}}}
	payload, _ := json.Marshal(ev)
	res, err := stack.Client.Invoke(t.Context(), &lambda.InvokeInput{FunctionName: aws.String(awslocal.OrchestratorFunction), Payload: payload})
	if err != nil || res.FunctionError != nil {
		t.Fatalf("orchestrator: %v %s", err, res.Payload)
	}
	st := testkit.WaitStatus(t, stack.Bucket, "lambda-canvas", time.Minute, testkit.Final)
	if st.State != job.StateDone {
		t.Fatalf("job ended %s: %+v", st.State, st.Error)
	}
	if w, b := stack.Lambda.Calls(awslocal.WorkerFunction)-workers, stack.Lambda.Calls(awslocal.BrowserWorkerFunction)-browsers; w != 0 || b != 4 {
		t.Errorf("%d worker and %d browser-worker invocations, want 0 and 4", w, b)
	}
	out := filepath.Join(t.TempDir(), "canvas.mp4")
	if _, err := storage.DownloadFile(t.Context(), stack.Bucket, st.Output, out); err != nil {
		t.Fatal(err)
	}
	testkit.AssertFrameExact(t, out, onePass(t, r, specPath))
	// AAC: the edit list trims the encoder's priming and padding.
	probe, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=codec_name,duration", "-of", "csv=p=0", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(probe)); got != "aac,3.000000" {
		t.Errorf("audio stream is %q, want aac,3.000000", got)
	}
	if p := testkit.Peak(testkit.PCM(t, out)); p < 1000 {
		t.Errorf("the output's audio is (nearly) silent: peak %d", p)
	}
}

// TestBrokenCompositionFailsWithThePageError runs one-chunk jobs whose
// composition throws, never sets window.helios, is not in the assets, does
// not match the spec's frame rate, never settles on a frame, or stops
// answering in a loop: each fails, and the job's status carries the page's
// words. The errors no retry can change fail the first attempt for good,
// within seconds, although the spec allows three; a page that may still be
// working gets its retries.
func TestBrokenCompositionFailsWithThePageError(t *testing.T) {
	r := need(t)
	for _, tc := range []struct {
		comp, page, args, want string
		permanent              bool
	}{
		{"throws", "throws/index.html", "", "the composition threw: Error: boom: the composition could not find its data", true},
		{"never-ready", "never-ready/index.html", "", "window.helios was never set: the page loaded and went quiet", true},
		{"not-bundled", "not-bundled/index.html", "", "loading the composition failed: HTTP 404: not-bundled/index.html is not in the job's assets (helios job run --assets DIR", true},
		{"wrong-fps", "stalls/index.html", "--fps 25", "--fps 25 differs from the composition's 30 fps", true},
		{"stalls", "stalls/index.html", "", "frame 0 did not settle within 2s", false},
		{"busy", "busy/index.html", "", "frame 1 did not settle within 2s (the page did not answer", false},
	} {
		t.Run(tc.comp, func(t *testing.T) {
			dir := t.TempDir()
			attempts := 1
			if tc.permanent {
				attempts = 3
			}
			spec := fmt.Sprintf(`{"id": "broken-%s", "metadata": {"totalFrames": 3, "fps": 30, "width": 64, "height": 64},
			  "retry": {"maxAttempts": %d, "initialBackoff": "100ms"},
			  "chunks": [{"id": 0, "startFrame": 0, "frameCount": 3, "outputFile": "part_0.mov",
			    "command": "helios render %s -o part_0.mov --frame-count 3 --width 64 --height 64 --timeout 2 --mode dom %s"}]}`, tc.comp, attempts, tc.page, tc.args)
			specPath := filepath.Join(dir, "spec.json")
			if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
				t.Fatal(err)
			}
			store := filepath.Join(dir, "store")
			start := time.Now()
			stdout, stderr, err := runCLI(t, r, "job", "run", specPath, "--assets", filepath.Join("testdata", "broken"), "--out", filepath.Join(dir, "out.mov"), "--storage", store)
			took := time.Since(start)
			if err == nil {
				t.Fatalf("the job succeeded:\n%s", stderr)
			}
			if !strings.Contains(stdout, tc.want) {
				t.Errorf("the summary does not say %q:\n%s", tc.want, stdout)
			}
			st, err := jobstore.New(testkit.Bucket(t, store), nil, nil).Status(t.Context(), "broken-"+tc.comp)
			if err != nil {
				t.Fatal(err)
			}
			c := st.Chunks[0]
			if st.State != job.StateFailed || c.Error == nil || !strings.Contains(c.Error.StderrTail, tc.want) {
				t.Fatalf("status: state %s, chunk 0 error %+v; want the page's error %q", st.State, c.Error, tc.want)
			}
			if tc.permanent && (c.Error.Kind != joberr.Permanent || c.Attempts != 1 || took > 20*time.Second) {
				t.Errorf("%s after %d attempt(s) in %s; want permanent after 1, within seconds", c.Error.Kind, c.Attempts, took.Round(time.Millisecond))
			}
		})
	}
}

// TestWarningsReachTheUser renders a composition whose frames never
// change: the job is done, and the renderer's warning is in the job's
// status and printed by job run and job status.
func TestWarningsReachTheUser(t *testing.T) {
	r := need(t)
	dir := t.TempDir()
	spec := `{"id": "static", "metadata": {"totalFrames": 12, "fps": 30, "width": 64, "height": 64},
	  "chunks": [{"id": 0, "startFrame": 0, "frameCount": 5, "outputFile": "part_0.mov", "command": "helios render static/index.html -o part_0.mov --start-frame 0 --frame-count 5 --width 64 --height 64 --mode dom"},
	             {"id": 1, "startFrame": 5, "frameCount": 7, "outputFile": "part_1.mov", "command": "helios render static/index.html -o part_1.mov --start-frame 5 --frame-count 7 --width 64 --height 64 --mode dom"}]}`
	specPath := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	stdout, stderr, err := runCLI(t, r, "job", "run", specPath, "--assets", filepath.Join("testdata", "broken"), "--out", filepath.Join(dir, "out.mov"), "--storage", store)
	if err != nil {
		t.Fatalf("helios job run: %v\n%s", err, stderr)
	}
	for _, want := range []string{"warnings:  1", "all the frames of a chunk are identical although the composition's time moved", "(chunks 0, 1)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("job run does not say %q:\n%s", want, stdout)
		}
	}
	st, err := jobstore.New(testkit.Bucket(t, store), nil, nil).Status(t.Context(), "static")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != job.StateDone || len(st.Warnings) != 1 || st.Warnings[0].Count != 2 {
		t.Errorf("status: %s, warnings %+v", st.State, st.Warnings)
	}
	stdout, _, err = runCLI(t, r, "job", "status", "static", "--storage", store)
	if err != nil || !strings.Contains(stdout, "warnings: 1") {
		t.Errorf("job status: %v\n%s", err, stdout)
	}
}
