package stitch_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/stitch"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// segments renders Matroska chunks of the given sizes, which the concat
// demuxer joins, and uploads them; it returns the stitch request for them.
// (join_test.go has the MP4 family's.)
func segments(t *testing.T, b *blob.Bucket, sizes ...int) job.StitchRequest {
	t.Helper()
	spec := testkit.NativeSpec("s", 1000, 1)
	spec.SegmentFormat = "mkv"
	spec.Normalize()
	dir := t.TempDir()
	req := job.StitchRequest{JobID: "s", OutputKey: "renders/s/output.mkv"}
	start := 0
	for i, n := range sizes {
		w := spec.WorkerJob(job.Chunk{Index: i, Start: start, Count: n}, 1, 1)
		args := append([]string(nil), w.Args...)
		args[len(args)-1] = filepath.Join(dir, w.OutputFile)
		if out, err := runFFmpeg(args); err != nil {
			t.Fatalf("render segment: %v\n%s", err, out)
		}
		key := w.SegmentKey()
		if _, err := storage.UploadFile(t.Context(), b, filepath.Join(dir, w.OutputFile), key); err != nil {
			t.Fatal(err)
		}
		req.Segments = append(req.Segments, job.Segment{Key: key, Frames: n})
		start += n
	}
	return req
}

func newHandler(t *testing.T) (*stitch.Handler, *blob.Bucket, string) {
	t.Helper()
	testkit.RequireFFmpeg(t)
	b := testkit.Bucket(t, "mem://")
	tool := ffmpeg.New()
	tmp := t.TempDir()
	return &stitch.Handler{Store: jobstore.New(b, nil, nil), Stitcher: &stitch.FfmpegStitcher{Tool: tool}, Media: tool, TempDir: tmp}, b, tmp
}

func TestStitchIsFrameExact(t *testing.T) {
	h, b, tmp := newHandler(t)
	req := segments(t, b, 4, 1, 7, 3)
	res, err := h.Handle(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Frames != 15 || res.OutputKey != req.OutputKey || res.Bytes == 0 {
		t.Errorf("result = %+v", res)
	}
	out := filepath.Join(t.TempDir(), "out.mkv")
	if _, err := storage.DownloadFile(t.Context(), b, req.OutputKey, out); err != nil {
		t.Fatal(err)
	}
	testkit.AssertFrameExact(t, out, testkit.SinglePass(t, t.TempDir(), 15))
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("temp files left: %v", entries)
	}
}

func TestStitchRefusesBadInput(t *testing.T) {
	tests := []struct {
		name string
		edit func(*job.StitchRequest)
		kind joberr.Kind
		code string
	}{
		{"declared frames wrong", func(r *job.StitchRequest) { r.Segments[1].Frames++ }, joberr.Retryable, joberr.CodeFrameMismatch},
		{"segment missing", func(r *job.StitchRequest) { r.Segments[0].Key = "renders/s/chunks/999999.1-1.mkv" }, joberr.Permanent, joberr.CodeMissingOutput},
		{"segment outside the job", func(r *job.StitchRequest) { r.Segments[0].Key = "renders/other/chunks/000000.1-1.mkv" }, joberr.Permanent, joberr.CodeInvalid},
		{"output under jobs/", func(r *job.StitchRequest) { r.OutputKey = "jobs/x.mp4" }, joberr.Permanent, joberr.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, b, tmp := newHandler(t)
			req := segments(t, b, 3, 2)
			tt.edit(&req)
			_, err := h.Handle(t.Context(), req)
			var e *joberr.Error
			if !errors.As(err, &e) || e.Kind != tt.kind || e.Code != tt.code {
				t.Fatalf("err = %v, want %s %s", err, tt.kind, tt.code)
			}
			if ok, _ := b.Exists(t.Context(), req.OutputKey); ok {
				t.Error("output published despite the error")
			}
			if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
				t.Errorf("temp files left: %v", entries)
			}
		})
	}
}

func TestFfmpegStitcherSeedInterface(t *testing.T) {
	testkit.RequireFFmpeg(t)
	dir := t.TempDir()
	var inputs []string
	spec := testkit.NativeSpec("x", 100, 1)
	spec.Normalize()
	for i, c := range []job.Chunk{{Start: 0, Count: 2}, {Start: 2, Count: 3}} {
		w := spec.WorkerJob(c, 1, 1)
		in := filepath.Join(dir, fmt.Sprintf("odd name '%d'.mp4", i)) // quotes must not break the concat list
		args := append([]string(nil), w.Args...)
		args[len(args)-1] = in
		if out, err := runFFmpeg(args); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		inputs = append(inputs, in)
	}
	var s stitch.VideoStitcher = &stitch.FfmpegStitcher{Tool: ffmpeg.New()}
	out := filepath.Join(dir, "joined.mp4")
	if err := s.Stitch(t.Context(), inputs, out); err != nil {
		t.Fatal(err)
	}
	testkit.AssertFrameExact(t, out, testkit.SinglePass(t, t.TempDir(), 5))
}
