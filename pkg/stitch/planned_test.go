package stitch_test

import (
	"errors"
	"strings"
	"testing"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// plannedJob accepts the spec whose chunks segments() renders for sizes,
// and writes the markers its workers would have written.
func plannedJob(t *testing.T, b *blob.Bucket, req job.StitchRequest, sizes ...int) {
	t.Helper()
	total := 0
	for _, n := range sizes {
		total += n
	}
	// Chunks of unequal sizes: the Helios form plans them as listed.
	spec := &job.Spec{ID: "s", Metadata: job.Metadata{TotalFrames: total, FPS: testkit.FPS, Width: testkit.Width, Height: testkit.Height}}
	start := 0
	for i, n := range sizes {
		spec.Chunks = append(spec.Chunks, job.HeliosChunk{ID: i, StartFrame: start, FrameCount: n,
			OutputFile: "c.mkv", Command: "ffmpeg -y c.mkv"})
		start += n
	}
	testkit.Accept(t, b, spec)
	for i, c := range spec.Plan() {
		attrs, err := b.Attributes(t.Context(), req.Segments[i].Key)
		if err != nil {
			t.Fatal(err)
		}
		m := job.WorkerResult{JobID: "s", Chunk: c, Attempt: 1, SegmentKey: req.Segments[i].Key, Frames: c.Count, Bytes: attrs.Size}
		if err := storage.CreateJSON(t.Context(), b, layout.MarkerKey("s", i), m); err != nil {
			t.Fatal(err)
		}
	}
}

// A stitcher may be invoked directly: it joins only the accepted spec's
// planned chunks, each the segment its marker names, into the spec's
// output, and never replaces a published video.
func TestStitchDoesOnlyWhatThePlanSays(t *testing.T) {
	cases := []struct {
		name string
		edit func(t *testing.T, b *blob.Bucket, r *job.StitchRequest)
		want string
	}{
		{"another job's video as output", func(t *testing.T, b *blob.Bucket, r *job.StitchRequest) {
			r.OutputKey = "renders/s/other.mkv"
		}, "not the spec's output"},
		{"a chunk left out", func(t *testing.T, b *blob.Bucket, r *job.StitchRequest) {
			r.Segments = r.Segments[1:]
		}, "segments for 2 planned chunks"},
		{"a segment the marker does not name", func(t *testing.T, b *blob.Bucket, r *job.StitchRequest) {
			other := "renders/s/chunks/000001.9-9.mkv"
			data, _ := b.ReadAll(t.Context(), r.Segments[1].Key)
			b.WriteAll(t.Context(), other, data, nil)
			r.Segments[1].Key = other
		}, "not the one chunk 1's marker names"},
		{"a segment replaced since its worker checked it", func(t *testing.T, b *blob.Bucket, r *job.StitchRequest) {
			data, _ := b.ReadAll(t.Context(), r.Segments[0].Key)
			b.WriteAll(t.Context(), r.Segments[0].Key, data[:len(data)/2], nil)
		}, "its marker promises"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, b, _ := newHandler(t)
			h.Plans = jobstore.New(b, nil, nil).Plans()
			req := segments(t, b, 3, 2)
			plannedJob(t, b, req, 3, 2)
			c.edit(t, b, &req)
			_, err := h.Handle(t.Context(), req)
			var e *joberr.Error
			if !errors.As(err, &e) || e.Kind != joberr.Permanent || !strings.Contains(e.Error(), c.want) {
				t.Fatalf("err = %v, want a permanent error saying %q", err, c.want)
			}
			if ok, _ := b.Exists(t.Context(), req.OutputKey); ok {
				t.Error("output published despite the error")
			}
		})
	}
	t.Run("an existing output is left as it is", func(t *testing.T) {
		h, b, _ := newHandler(t)
		h.Plans = jobstore.New(b, nil, nil).Plans()
		req := segments(t, b, 3, 2)
		plannedJob(t, b, req, 3, 2)
		b.WriteAll(t.Context(), req.OutputKey, []byte("published earlier"), nil)
		res, err := h.Handle(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := b.ReadAll(t.Context(), req.OutputKey); string(got) != "published earlier" || res.Bytes != int64(len(got)) {
			t.Errorf("output now %q (%+v)", got, res)
		}
	})
	t.Run("a job never accepted", func(t *testing.T) {
		h, b, _ := newHandler(t)
		h.Plans = jobstore.New(b, nil, nil).Plans()
		_, err := h.Handle(t.Context(), segments(t, b, 2))
		if e := joberr.AsError(err); e == nil || e.Code != joberr.CodeInvalid || !strings.Contains(e.Message, "never accepted") {
			t.Errorf("err = %v", err)
		}
	})
}
