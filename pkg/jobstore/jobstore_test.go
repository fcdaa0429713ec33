package jobstore_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

func newStore(t *testing.T) *jobstore.Store {
	return jobstore.New(testkit.Bucket(t, "mem://"), nil, slog.New(slog.DiscardHandler))
}

func spec(t *testing.T, id string) *job.Spec {
	t.Helper()
	s := testkit.NativeSpec(id, 20, 5)
	s.Normalize()
	return s
}

func TestSpecs(t *testing.T) {
	s, ctx := newStore(t), t.Context()
	a := spec(t, "a")

	// Prepare: the id a spec is submitted under wins, unless it names another.
	data, _ := a.Canonical()
	if _, err := s.Prepare(strings.NewReader(string(data)), "other"); err == nil || !strings.Contains(err.Error(), `is "a" but the job is submitted as "other"`) {
		t.Errorf("Prepare under another id: %v", err)
	}
	if _, err := s.Prepare(strings.NewReader(`{"metadata": {}}`), "x"); !errors.As(err, new(*joberr.ValidationError)) {
		t.Errorf("Prepare of an invalid spec: %v, want a ValidationError", err)
	}

	// Submit and Accept are create-once: the same spec again is fine,
	// another under the id is a conflict.
	changed := spec(t, "a")
	changed.Env = map[string]string{"X": "1"}
	for name, write := range map[string]func(*job.Spec) error{
		"Submit": func(sp *job.Spec) error { return s.Submit(ctx, sp) },
		"Accept": func(sp *job.Spec) error { return s.Accept(ctx, sp) },
	} {
		if err := write(a); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := write(a); err != nil {
			t.Errorf("%s again: %v", name, err)
		}
		if err := write(changed); !errors.Is(err, jobstore.ErrConflict) {
			t.Errorf("%s of another spec: %v, want ErrConflict", name, err)
		}
	}
	if got, err := s.Uploaded(ctx, layout.JobKey("a")); err != nil || got.ID != "a" {
		t.Errorf("Uploaded: %v %v", got, err)
	}
	if _, err := s.Uploaded(ctx, "jobs/../x.json"); !errors.As(err, new(*joberr.ValidationError)) {
		t.Errorf("Uploaded of a bad key: %v", err)
	}
	if got, err := s.Accepted(ctx, "a"); err != nil || got.Output != a.Output {
		t.Errorf("Accepted: %v %v", got, err)
	}
	if _, err := s.Accepted(ctx, "never"); !errors.Is(err, jobstore.ErrNotAccepted) {
		t.Errorf("Accepted of an unknown job: %v", err)
	}
	if _, err := s.Resumable(ctx, "never"); !errors.Is(err, jobstore.ErrNotFound) {
		t.Errorf("Resumable of an unknown job: %v", err)
	}
}

func TestLookupAndCancel(t *testing.T) {
	s, ctx := newStore(t), t.Context()
	if err := s.Submit(ctx, spec(t, "uploaded")); err != nil {
		t.Fatal(err)
	}
	if err := s.Bucket().WriteAll(ctx, layout.JobKey("broken"), []byte(`{"metadata": {}}`), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteStatus(ctx, &job.Status{JobID: "ran", State: job.StateRunning}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id        string
		wantState job.State
		wantErr   error
	}{
		{"ran", job.StateRunning, nil},
		{"uploaded", job.StatePending, nil},   // not started yet
		{"broken", job.StateFailed, nil},      // an invalid upload never runs: the lookup says why
		{"unknown", "", jobstore.ErrNotFound}, // nothing under the id
		{"../x", "", jobstore.ErrNotFound},
	}
	for _, tt := range tests {
		st, err := s.Lookup(ctx, tt.id)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && st.State != tt.wantState) {
			t.Errorf("Lookup(%q) = %+v, %v; want %s, %v", tt.id, st, err, tt.wantState, tt.wantErr)
		}
	}
	if st, _ := s.Lookup(ctx, "broken"); st.Error == nil || st.Error.Code != joberr.CodeInvalid {
		t.Errorf("broken upload: error %+v", st.Error)
	}

	if err := s.Cancel(ctx, "unknown"); !errors.Is(err, jobstore.ErrNotFound) {
		t.Errorf("Cancel of an unknown job: %v", err)
	}
	for range 2 { // idempotent
		if err := s.Cancel(ctx, "uploaded"); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.CancelRequested(ctx, "uploaded"); !ok || err != nil {
		t.Errorf("CancelRequested = %v, %v", ok, err)
	}
	// An ended job has nothing to cancel, and gets no cancel request that
	// would stop a later run of it; a cancelled one is cancelled already.
	for state, want := range map[job.State]error{job.StateDone: jobstore.ErrEnded, job.StateFailed: jobstore.ErrEnded, job.StateCancelled: nil} {
		id := "ended-" + string(state)
		if err := s.WriteStatus(ctx, &job.Status{JobID: id, State: state}); err != nil {
			t.Fatal(err)
		}
		if err := s.Cancel(ctx, id); !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("Cancel of a %s job: %v, want %v", state, err, want)
		}
		if ok, _ := s.CancelRequested(ctx, id); ok {
			t.Errorf("a cancel request was left for a %s job", state)
		}
	}
}

func TestLeases(t *testing.T) {
	s, ctx := newStore(t), t.Context()
	opts := jobstore.LeaseOptions{TTL: time.Minute}
	first, err := s.AcquireLease(ctx, "j", opts)
	if err != nil || first.Gen != 1 || !first.Valid() {
		t.Fatalf("first lease: %+v %v", first, err)
	}
	if live, _ := s.LeaseLive(ctx, "j"); !live {
		t.Error("a held lease is not live")
	}
	if _, err := s.AcquireLease(ctx, "j", opts); !errors.Is(err, jobstore.ErrAlreadyRunning) {
		t.Errorf("second lease while held: %v", err)
	}
	// Exclusive: the holder is known to be gone. The TTL is long enough that
	// a loaded machine renews in time (a lease unrenewed for half its life
	// is lost too, for another cause), short enough to renew within a second.
	lost := make(chan error, 1)
	second, err := s.AcquireLease(ctx, "j", jobstore.LeaseOptions{TTL: 3 * time.Second, Exclusive: true, OnLost: func(cause error) { lost <- cause }})
	if err != nil || second.Gen != 2 {
		t.Fatalf("exclusive lease: %+v %v", second, err)
	}
	first.Release() // a released lease of an older generation does not touch the newer one
	if live, _ := s.LeaseLive(ctx, "j"); !live {
		t.Error("releasing an old generation expired the new one")
	}
	// A newer generation appearing makes the holder lose its lease.
	if err := storage.CreateJSON(ctx, s.Bucket(), layout.LeaseKey("j", 3), map[string]any{"owner": "x", "expiresAt": time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-lost:
		if !errors.Is(cause, jobstore.ErrLeaseLost) {
			t.Errorf("OnLost got %v, want ErrLeaseLost", cause)
		}
	case <-time.After(10 * time.Second):
		t.Error("the holder was not told of the newer generation")
	}
	second.Release()
}

// Markers keep only what describes a planned chunk whose segment exists;
// the rest is removed, never trusted.
func TestMarkers(t *testing.T) {
	s, ctx := newStore(t), t.Context()
	sp := spec(t, "m")
	b := s.Bucket()
	put := func(key string, v any) {
		t.Helper()
		if err := storage.WriteJSON(ctx, b, key, v); err != nil {
			t.Fatal(err)
		}
	}
	plan := sp.Plan()
	good := func(i int) job.WorkerResult {
		key := layout.SegmentKey("m", i, 1, 1, "mp4")
		if err := b.WriteAll(ctx, key, []byte("segment"), nil); err != nil {
			t.Fatal(err)
		}
		return job.WorkerResult{JobID: "m", Chunk: plan[i], Attempt: 1, SegmentKey: key, Frames: plan[i].Count, Bytes: 7}
	}
	put(layout.MarkerKey("m", 0), good(0))
	gone := good(1)
	put(layout.MarkerKey("m", 1), gone)
	if err := b.Delete(ctx, gone.SegmentKey); err != nil { // its segment was lost
		t.Fatal(err)
	}
	forged := good(2)
	forged.Frames = 99
	put(layout.MarkerKey("m", 2), forged)
	put(layout.ChunksPrefix("m")+"000007.json", good(0)) // not a planned chunk
	if err := b.WriteAll(ctx, layout.ChunksPrefix("m")+"junk.json", []byte("{"), nil); err != nil {
		t.Fatal(err)
	}

	got, err := s.Markers(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].SegmentKey != layout.SegmentKey("m", 0, 1, 1, "mp4") {
		t.Errorf("Markers = %+v, want chunk 0 only", got)
	}
	keys, _ := storage.List(ctx, b, layout.ChunksPrefix("m"))
	var markers []string
	for _, k := range keys {
		if strings.HasSuffix(k, ".json") {
			markers = append(markers, k)
		}
	}
	if len(markers) != 1 || markers[0] != layout.MarkerKey("m", 0) {
		t.Errorf("markers left %v, want only chunk 0's", markers)
	}

	if err := s.ForgetChunk(ctx, "m", 0, got[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveSegments(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if keys, _ := storage.List(ctx, b, layout.ChunksPrefix("m")); len(keys) != 0 {
		t.Errorf("left after ForgetChunk and RemoveSegments: %v", keys)
	}
}
