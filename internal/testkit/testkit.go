// Package testkit holds what the end-to-end tests share: real ffmpeg
// renders of a known test pattern, the frame-exact comparison, and specs.
package testkit

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/localnet"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// Test pattern settings: small frames so ffmpeg is quick.
const (
	Width  = 160
	Height = 120
	FPS    = 10
)

// RequireFFmpeg fails the test (never skips: CI installs ffmpeg) if ffmpeg
// or ffprobe is missing.
func RequireFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found on PATH: install it (apt-get install -y ffmpeg) or run `make test`", tool)
		}
	}
}

// RequireChromium returns the path of Debian's chromium, failing the test
// (never skipping: CI installs it) if it is missing.
func RequireChromium(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found on PATH: install it (apt-get install -y chromium) or run `make test`")
	}
	return path
}

// ChunkArgs are the args of a lossless render of frames [{start}, {end}) of
// ffmpeg's testsrc2 pattern into {output}: the decoded frames equal the
// pattern's, so chunks joined by stream copy must match a single pass.
func ChunkArgs() []string {
	return []string{
		"-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size={width}x{height}:rate={fps}",
		"-vf", "trim=start_frame={start}:end_frame={end},setpts=PTS-STARTPTS",
		"-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-an", "-y", "{output}",
	}
}

// NativeSpec is a native-form spec rendering total frames in chunks of
// framesPerChunk.
func NativeSpec(id string, total, framesPerChunk int) *job.Spec {
	return &job.Spec{
		ID:             id,
		Metadata:       job.Metadata{TotalFrames: total, FPS: FPS, Width: Width, Height: Height},
		Command:        "ffmpeg",
		Args:           ChunkArgs(),
		FramesPerChunk: framesPerChunk,
		Retry:          job.RetryPolicy{MaxAttempts: 3, InitialBackoff: job.Duration{Duration: 10_000_000}, MaxBackoff: job.Duration{Duration: 50_000_000}},
	}
}

// HeliosSpecJSON is a Helios-form spec (what `helios render --emit-job`
// writes) for total frames in the given chunk sizes, listed in reverse order
// and with quoted arguments, as a user might hand-edit it.
func HeliosSpecJSON(id string, sizes ...int) string {
	var chunks []string
	start := 0
	for i, n := range sizes {
		cmd := fmt.Sprintf(`ffmpeg -hide_banner -nostdin -loglevel error -f lavfi -i \"testsrc2=size=%dx%d:rate=%d\" -vf 'trim=start_frame=%d:end_frame=%d,setpts=PTS-STARTPTS' -c:v libx264 -qp 0 -preset ultrafast -pix_fmt yuv420p -an -y part_%d.mov`,
			Width, Height, FPS, start, start+n, i)
		chunks = append(chunks, fmt.Sprintf(`{"id": %d, "startFrame": %d, "frameCount": %d, "outputFile": "part_%d.mov", "command": "%s"}`, i, start, n, i, cmd))
		start += n
	}
	for i, j := 0, len(chunks)-1; i < j; i, j = i+1, j-1 {
		chunks[i], chunks[j] = chunks[j], chunks[i]
	}
	return fmt.Sprintf(`{"id": %q, "metadata": {"totalFrames": %d, "fps": %d, "width": %d, "height": %d, "duration": %g},
  "chunks": [%s],
  "mergeCommand": "helios merge output.mov part_0.mov"}`, id, start, FPS, Width, Height, float64(start)/FPS, strings.Join(chunks, ",\n"))
}

// SinglePass renders frames [0, total) of the pattern in one ffmpeg run, the
// reference the stitched output must equal.
func SinglePass(t testing.TB, dir string, total int) string {
	t.Helper()
	out := filepath.Join(dir, fmt.Sprintf("reference-%d.mp4", total))
	vars := job.Vars{Chunk: job.Chunk{Start: 0, Count: total}, Output: out, FPS: FPS, Width: Width, Height: Height}
	run(t, "ffmpeg", vars.Expand(ChunkArgs())...)
	return out
}

// FrameMD5 returns the md5 of every decoded video frame of a file.
func FrameMD5(t testing.TB, path string) []string {
	t.Helper()
	out := run(t, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", path, "-map", "0:v", "-f", "framemd5", "-")
	var sums []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ",")
		sums = append(sums, strings.TrimSpace(fields[len(fields)-1]))
	}
	return sums
}

// AssertFrameExact checks that got decodes to exactly the frames of want.
func AssertFrameExact(t testing.TB, got, want string) {
	t.Helper()
	g, w := FrameMD5(t, got), FrameMD5(t, want)
	if len(g) != len(w) {
		t.Fatalf("%s has %d frames, reference has %d", filepath.Base(got), len(g), len(w))
	}
	for i := range g {
		if g[i] != w[i] {
			t.Fatalf("frame %d differs from the single-pass render (%s vs %s)", i, g[i], w[i])
		}
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(context.Background(), name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// Bucket opens a bucket for a test and closes it when the test ends.
func Bucket(t testing.TB, url string) *blob.Bucket {
	t.Helper()
	b, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// MainWithStack is the TestMain of an end-to-end package: unless -short, it
// starts a stack in a fresh work dir, runs the tests and stops the stack;
// the work dir (logs) is removed if the tests passed and kept, and named,
// if not. It returns the exit code for os.Exit.
func MainWithStack(m *testing.M, name string, start func(dir string) (stop func(), err error)) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "helios-"+name+"-")
	if err != nil {
		log.Fatal(err)
	}
	stop, err := start(dir)
	if err != nil {
		log.Fatalf("start the %s stack: %v (logs in %s)", name, err, dir)
	}
	code := m.Run()
	stop()
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "%s logs kept in %s\n", name, dir)
	}
	return code
}

// WaitStatus polls job id's status until ok accepts it, and returns it; the
// test fails if limit passes first.
func WaitStatus(t testing.TB, b *blob.Bucket, id string, limit time.Duration, ok func(*job.Status) bool) *job.Status {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last *job.Status
	for {
		var st job.Status
		if err := storage.ReadJSON(context.Background(), b, layout.StatusKey(id), &st); err == nil {
			last = &st
			if ok(&st) {
				return &st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: status not reached in %s; last %+v", id, limit, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Final and Running are conditions for WaitStatus.
func Final(st *job.Status) bool   { return st.State.Final() }
func Running(st *job.Status) bool { return st.State == job.StateRunning }

// Accept stores spec (normalized) as an orchestrator accepts it, at
// renders/<id>/spec.json: what a directly invoked worker or stitcher checks.
func Accept(t testing.TB, b *blob.Bucket, spec *job.Spec) {
	t.Helper()
	spec.Normalize()
	data, err := spec.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if err := storage.Create(context.Background(), b, layout.SpecKey(spec.ID), data); err != nil {
		t.Fatal(err)
	}
}

// Renderer is the Helios renderer as `make renderer` installs it
// (renderers/helios): Bin is the directory to put on PATH, Shell the npm
// headless shell it unpacked.
type Renderer struct {
	Root, Bin, Shell string
}

// RequireRenderer returns the installed Helios renderer, failing the test
// (never skipping: `make test` installs it) if node, its packages or the
// headless shell are missing.
func RequireRenderer(t testing.TB) Renderer {
	t.Helper()
	root, err := localnet.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	r := Renderer{Root: filepath.Join(root, "renderers", "helios")}
	r.Bin, r.Shell = filepath.Join(r.Root, "bin"), filepath.Join(r.Root, ".browser", "chromium")
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node not found on PATH: install Node.js 20+ or run `make test`")
	}
	for _, p := range []string{filepath.Join(r.Root, "node_modules", "playwright-core"), r.Shell} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the Helios renderer is not installed (%v): run `make renderer`", err)
		}
	}
	return r
}

// ClientTo is an HTTP client that dials every name to srv and trusts its
// certificate: a test's stand-in for a server on the internet, reached by
// its real name.
func ClientTo(srv *httptest.Server) *http.Client {
	addr := srv.Listener.Addr().String()
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com"},
	}}
}
