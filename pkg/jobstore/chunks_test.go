package jobstore_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// An attempt's upload and marker, as a worker and a stitcher see them
// through the store: the first marker wins, a stray one is named as such.
func TestAttemptAndMarker(t *testing.T) {
	s, ctx := newStore(t), t.Context()
	sp := spec(t, "c")
	w := sp.WorkerJob(sp.Plan()[1], 2, 3)
	dir := t.TempDir()
	seg, pcm := filepath.Join(dir, "seg"), filepath.Join(dir, "pcm")
	os.WriteFile(seg, []byte("segment"), 0o600)
	os.WriteFile(pcm, []byte("pcm"), 0o600)

	if _, err := s.Marker(ctx, "c", 1, sp); !errors.Is(err, jobstore.ErrNoMarker) {
		t.Fatalf("Marker before any: %v, want ErrNoMarker", err)
	}
	up, err := s.UploadAttempt(ctx, w, seg, pcm)
	if err != nil {
		t.Fatal(err)
	}
	if up.SegmentKey != w.SegmentKey() || up.AudioKey != jobstore.AudioKey(up.SegmentKey) || up.Bytes != 7 {
		t.Errorf("UploadAttempt = %+v", up)
	}
	stored, err := s.StoredChunks(ctx, "c")
	if err != nil || stored[up.SegmentKey].Size != 7 || stored[up.AudioKey].Size != 3 {
		t.Errorf("StoredChunks = %+v, %v", stored, err)
	}
	r, err := s.OpenSegment(ctx, up.SegmentKey)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(r)
	r.Close()
	if string(data) != "segment" {
		t.Errorf("OpenSegment read %q", data)
	}

	res := job.WorkerResult{JobID: "c", Chunk: w.Chunk, Attempt: w.Attempt, SegmentKey: up.SegmentKey, Bytes: up.Bytes, Frames: w.Chunk.Count,
		Audio: &job.AudioPart{Key: up.AudioKey}}
	if err := s.CreateMarker(ctx, res); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateMarker(ctx, res); !errors.Is(err, storage.ErrExists) {
		t.Errorf("second CreateMarker: %v, want storage.ErrExists", err)
	}
	if got, err := s.Marker(ctx, "c", 1, sp); err != nil || got.SegmentKey != up.SegmentKey {
		t.Errorf("Marker = %+v, %v", got, err)
	}
	other := spec(t, "c")
	other.FramesPerChunk = 4 // another plan: the marker does not describe its chunk 1
	other.Normalize()
	var stray *jobstore.StrayMarkerError
	if got, err := s.Marker(ctx, "c", 1, other); !errors.As(err, &stray) || stray.Index != 1 || got.SegmentKey != up.SegmentKey {
		t.Errorf("Marker of another plan = %+v, %v; want a StrayMarkerError with the marker read", got, err)
	}

	// A losing attempt's upload goes; the winner's stays.
	if err := s.RemoveAttempt(ctx, w, res); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Bucket().Exists(ctx, up.SegmentKey); !ok {
		t.Error("RemoveAttempt removed the winner's segment")
	}
	if err := s.RemoveUpload(ctx, res); err != nil {
		t.Fatal(err)
	}
	if stored, _ := s.StoredChunks(ctx, "c"); len(stored) != 1 {
		t.Errorf("after RemoveUpload: %v, want the marker only", stored)
	}
}

// The output is published once; a second publication is storage.ErrExists
// and leaves the first.
func TestOutput(t *testing.T) {
	s, ctx := newStore(t), t.Context()
	key := "renders/o/output.mp4"
	if err := s.Bucket().WriteAll(ctx, "renders/o/chunks/a", []byte("ab"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Bucket().WriteAll(ctx, "renders/o/chunks/b", []byte("cd"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.JoinOutput(ctx, key, []string{"renders/o/chunks/a", "renders/o/chunks/b"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.OutputSize(ctx, key); err != nil || n != 4 {
		t.Errorf("OutputSize = %d, %v", n, err)
	}
	file := filepath.Join(t.TempDir(), "out")
	os.WriteFile(file, []byte("other"), 0o600)
	if _, err := s.PublishOutputFile(ctx, key, file); !errors.Is(err, storage.ErrExists) {
		t.Errorf("PublishOutputFile over the output: %v, want storage.ErrExists", err)
	}
	if ok, err := s.Exists(ctx, key); err != nil || !ok {
		t.Errorf("Exists = %v, %v", ok, err)
	}
}

func TestHistory(t *testing.T) {
	s, ctx := newStore(t), t.Context()
	if _, err := s.History(ctx, "h"); !errors.Is(err, jobstore.ErrNotFound) {
		t.Fatalf("History before any: %v, want ErrNotFound", err)
	}
	h := job.History{JobID: "h", Runs: []job.Span{{Start: time.Now().UnixMilli()}}}
	if err := s.SaveHistory(ctx, h); err != nil {
		t.Fatal(err)
	}
	if got, err := s.History(ctx, "h"); err != nil || !slices.Equal(got.Runs, h.Runs) {
		t.Errorf("History = %+v, %v", got, err)
	}
}
