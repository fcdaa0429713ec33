package worker_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/pagefetch"
	"github.com/helios-project/infrastructure/pkg/storage"
	"github.com/helios-project/infrastructure/pkg/worker"
)

func newHandler(t *testing.T) (*worker.Handler, *blob.Bucket, string) {
	t.Helper()
	testkit.RequireFFmpeg(t)
	b := testkit.Bucket(t, "mem://")
	tmp := t.TempDir()
	return &worker.Handler{Store: jobstore.New(b, nil, nil), Runner: &execx.Runner{Allowed: job.Allowlist{"ffmpeg"}}, Media: ffmpeg.New(), TempDir: tmp}, b, tmp
}

func chunkJob(start, count, attempt int) job.WorkerJob {
	spec := testkit.NativeSpec("w", 100, 10)
	spec.Normalize()
	return spec.WorkerJob(job.Chunk{Index: start / 10, Start: start, Count: count}, 1, attempt)
}

func wantCode(t *testing.T, err error, kind joberr.Kind, code string) *joberr.Error {
	t.Helper()
	var e *joberr.Error
	if !errors.As(err, &e) || e.Kind != kind || e.Code != code {
		t.Fatalf("err = %v; want %s %s", err, kind, code)
	}
	return e
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("work dirs left in %s: %v %v", dir, entries, err)
	}
}

func TestRenderChunk(t *testing.T) {
	h, b, tmp := newHandler(t)
	w := chunkJob(20, 4, 1)
	res, err := h.Handle(t.Context(), w)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Winner || res.Frames != 4 || res.Bytes == 0 || res.SegmentKey != layout.SegmentKey("w", 2, 1, 1, "mp4") {
		t.Errorf("result = %+v", res)
	}
	var marker job.WorkerResult
	if err := storage.ReadJSON(t.Context(), b, layout.MarkerKey("w", 2), &marker); err != nil || marker.SegmentKey != res.SegmentKey {
		t.Errorf("marker = %+v, %v", marker, err)
	}
	assertEmpty(t, tmp)

	// A second attempt finds the marker and does no work.
	again, err := h.Handle(t.Context(), chunkJob(20, 4, 2))
	if err != nil || again.Winner || again.SegmentKey != res.SegmentKey {
		t.Errorf("second attempt = %+v, %v; want the first attempt's result, not winner", again, err)
	}
	if ok, _ := b.Exists(t.Context(), layout.SegmentKey("w", 2, 1, 2, "mp4")); ok {
		t.Error("second attempt uploaded a segment")
	}
}

// Two attempts of a chunk at once (a hedge beside a straggler): one
// completes it, the other answers with the winner's result, and only the
// winner's segment is left, whichever way the race went.
func TestRacingAttemptsLeaveOneSegment(t *testing.T) {
	h, b, _ := newHandler(t)
	results := make(chan job.WorkerResult, 2)
	for attempt := 1; attempt <= 2; attempt++ {
		go func() {
			res, err := h.Handle(t.Context(), chunkJob(30, 6, attempt))
			if err != nil {
				t.Error(err)
			}
			results <- res
		}()
	}
	first, second := <-results, <-results
	if first.SegmentKey != second.SegmentKey || first.Winner == second.Winner {
		t.Errorf("results %+v and %+v; want one winner, both naming its segment", first, second)
	}
	keys, _ := storage.List(t.Context(), b, layout.ChunksPrefix("w"))
	if want := []string{first.SegmentKey, layout.MarkerKey("w", 3)}; len(keys) != 2 || !slices.Contains(keys, want[0]) || !slices.Contains(keys, want[1]) {
		t.Errorf("chunk objects = %q; want %q", keys, want)
	}
}

func TestWrongFrameCountIsRefused(t *testing.T) {
	h, b, _ := newHandler(t)
	w := chunkJob(0, 5, 1)
	w.Chunk.Count = 6 // the command renders 5 frames, the chunk needs 6
	wantCode(t, func() error { _, err := h.Handle(t.Context(), w); return err }(), joberr.Retryable, joberr.CodeFrameMismatch)
	keys, _ := storage.List(t.Context(), b, "")
	if len(keys) != 0 {
		t.Errorf("a bad segment was uploaded: %v", keys)
	}
}

func TestMissingSegment(t *testing.T) {
	h, _, _ := newHandler(t)
	w := chunkJob(0, 3, 1)
	w.Args[len(w.Args)-1] = "elsewhere.mp4"
	wantCode(t, func() error { _, err := h.Handle(t.Context(), w); return err }(), joberr.Retryable, joberr.CodeMissingOutput)
}

func TestCommandNotAllowed(t *testing.T) {
	h, _, tmp := newHandler(t)
	w := chunkJob(0, 3, 1)
	w.Command = "sh"
	e := wantCode(t, func() error { _, err := h.Handle(t.Context(), w); return err }(), joberr.Permanent, joberr.CodeNotAllowed)
	if e.Chunk == nil || *e.Chunk != 0 {
		t.Errorf("error does not name the chunk: %#v", e)
	}
	assertEmpty(t, tmp)
}

func TestInvalidJob(t *testing.T) {
	h, _, _ := newHandler(t)
	w := chunkJob(0, 3, 1)
	w.OutputFile = "../../etc/passwd.mp4"
	wantCode(t, func() error { _, err := h.Handle(t.Context(), w); return err }(), joberr.Permanent, joberr.CodeInvalid)
}

// bundle makes a tar.gz holding one file and returns it with its asset key.
func bundle(t *testing.T, name string, data []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	tw.Close()
	gz.Close()
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), "assets/" + hex.EncodeToString(sum[:]) + ".tar.gz"
}

func TestAssets(t *testing.T) {
	h, b, tmp := newHandler(t)
	source := testkit.SinglePass(t, t.TempDir(), 30)
	data, err := os.ReadFile(source)
	if err != nil {
		t.Fatal(err)
	}
	archive, key := bundle(t, "media/source.mp4", data)
	if err := b.WriteAll(t.Context(), key, archive, nil); err != nil {
		t.Fatal(err)
	}
	// The chunk cuts frames [10, 17) out of the bundled video.
	w := job.WorkerJob{JobID: "a", Chunk: job.Chunk{Index: 1, Start: 10, Count: 7}, Attempt: 1, Command: "ffmpeg",
		Args: []string{"-nostdin", "-loglevel", "error", "-i", "media/source.mp4", "-vf", "trim=start_frame=10:end_frame=17,setpts=PTS-STARTPTS",
			"-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", "-y", "out.mp4"},
		OutputFile: "out.mp4", Assets: key}
	res, err := h.Handle(t.Context(), w)
	if err != nil || res.Frames != 7 {
		t.Fatalf("Handle with assets = %+v, %v", res, err)
	}
	assertEmpty(t, tmp)

	t.Run("wrong digest", func(t *testing.T) {
		other, _ := bundle(t, "x", []byte("other"))
		if err := b.WriteAll(t.Context(), key, other, nil); err != nil {
			t.Fatal(err)
		}
		w.JobID = "b"
		wantCode(t, func() error { _, err := h.Handle(t.Context(), w); return err }(), joberr.Permanent, joberr.CodeBadAssets)
	})
	t.Run("missing", func(t *testing.T) {
		w.JobID, w.Assets = "c", "assets/"+hex.EncodeToString(make([]byte, 32))+".tar.gz"
		wantCode(t, func() error { _, err := h.Handle(t.Context(), w); return err }(), joberr.Permanent, joberr.CodeBadAssets)
	})
}

// On a platform with a deadline (Lambda's function timeout), a chunk whose
// command cannot end in time is refused for good: it would time out again.
func TestChunkLongerThanTheDeadline(t *testing.T) {
	h, b, _ := newHandler(t)
	h.UploadReserve = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
	defer cancel()
	w := chunkJob(0, 3, 1)
	// ffmpeg reading a never-ending source at its native rate never finishes.
	w.Args = []string{"-nostdin", "-re", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-y", "chunk.mp4"}
	w.OutputFile = "chunk.mp4"
	e := wantCode(t, func() error { _, err := h.Handle(ctx, w); return err }(), joberr.Permanent, joberr.CodeTimeout)
	if !strings.Contains(e.Message, "use smaller chunks") {
		t.Errorf("message %q does not say what to do", e.Message)
	}
	if keys, _ := storage.List(t.Context(), b, ""); len(keys) != 0 {
		t.Errorf("wrote %v", keys)
	}
}

// outputFile is resolved inside the work dir: a directory symlink the
// command made cannot lead the upload elsewhere.
func TestOutputThroughSymlinkedDirectory(t *testing.T) {
	h, _, _ := newHandler(t)
	h.Runner.Allowed = append(h.Runner.Allowed, "ln")
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.mp4"), []byte("not yours"), 0o600)
	w := job.WorkerJob{JobID: "s", Chunk: job.Chunk{Count: 1}, Attempt: 1, Command: "ln", Args: []string{"-s", outside, "sub"}, OutputFile: "sub/secret.mp4"}
	wantCode(t, func() error { _, err := h.Handle(t.Context(), w); return err }(), joberr.Permanent, joberr.CodeMissingOutput)
}

func TestKeepSegmentIsNotTaggedForExpiry(t *testing.T) {
	// The tag itself is checked against the S3 server in pkg/storage; here,
	// that KeepSegment reaches the upload: the handler's only S3-specific
	// decision.
	w := chunkJob(0, 3, 1)
	if w.KeepSegment {
		t.Fatal("chunk jobs keep their segments only when the spec says keepChunks")
	}
	spec := testkit.NativeSpec("k", 10, 5)
	spec.KeepChunks = true
	spec.Normalize()
	if !spec.WorkerJob(spec.Plan()[0], 1, 1).KeepSegment {
		t.Error("keepChunks does not reach the worker")
	}
}

// A command's warnings (JSON lines appended to $HELIOS_REPORT) come back
// in the result and the marker: deduplicated, shortened, at most
// job.MaxWarnings, other lines ignored. A report that is a link out of the
// work dir is not read. With a page fetcher, the command finds its socket
// at $HELIOS_FETCH_SOCKET.
func TestWarningsAndFetchSocket(t *testing.T) {
	h, b, tmp := newHandler(t)
	h.Runner.Allowed = job.Allowlist{"sh"}
	f, err := pagefetch.New(nil, pagefetch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.Fetcher = f
	render := chunkJob(0, 3, 1)
	script := `set -e
test -S "$HELIOS_FETCH_SOCKET"
test "$HELIOS_FETCH_SOCKET" = ../home/fetch.sock || exit 9
test "$HOME" = "$(cd ../home && pwd)" && test "$TMPDIR" = "$HOME" && test "$XDG_DATA_HOME" = "$HOME/.local/share" || exit 10
test -z "$(ls -A "$HOME" | grep -v '^fetch.sock$')" || exit 11
ffmpeg "$@"
{ echo '{"warning": "the video clip.mp4 stayed at 0.000s"}'
  echo 'not json'
  echo '{"warning": "the video clip.mp4 stayed at 0.000s"}'
  echo '{"warning": "media data:video/mp4;base64,` + strings.Repeat("A", 3000) + ` failed"}'
  i=0; while [ $i -lt 30 ]; do echo "{\"warning\": \"w$i\"}"; i=$((i+1)); done
} >> "$HELIOS_REPORT"`
	w := render
	w.Command, w.Args = "sh", append([]string{"-c", script, "sh"}, render.Args...)
	res, err := h.Handle(t.Context(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != job.MaxWarnings || res.Warnings[0] != "the video clip.mp4 stayed at 0.000s" ||
		!strings.Contains(res.Warnings[1], "(3022 characters) failed") || len(res.Warnings[1]) > 200 || res.Warnings[2] != "w0" {
		t.Errorf("warnings = %q", res.Warnings)
	}
	var marker job.WorkerResult
	if err := storage.ReadJSON(t.Context(), b, layout.MarkerKey("w", 0), &marker); err != nil || !slices.Equal(marker.Warnings, res.Warnings) {
		t.Errorf("marker warnings = %q, %v", marker.Warnings, err)
	}
	assertEmpty(t, tmp)

	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte(`{"warning": "the worker's secret"}`+"\n"), 0o600)
	w = chunkJob(10, 3, 1)
	w.Command, w.Args = "sh", append([]string{"-c", `ffmpeg "$@" && ln -s "` + secret + `" "$HELIOS_REPORT"`, "sh"}, chunkJob(10, 3, 1).Args...)
	res, err = h.Handle(t.Context(), w)
	if err != nil || len(res.Warnings) != 0 {
		t.Errorf("a report linked out of the work dir: warnings %q, %v; want none", res.Warnings, err)
	}
	// A FIFO in its place, which nothing writes to: read without blocking.
	w = chunkJob(20, 3, 1)
	w.Command, w.Args = "sh", append([]string{"-c", `ffmpeg "$@" && mkfifo "$HELIOS_REPORT"`, "sh"}, chunkJob(20, 3, 1).Args...)
	h.UploadReserve = time.Second
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err = h.Handle(ctx, w)
	if err != nil || len(res.Warnings) != 0 {
		t.Errorf("a FIFO as the report: warnings %q, %v; want none", res.Warnings, err)
	}
}
