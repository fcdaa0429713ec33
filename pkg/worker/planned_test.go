package worker_test

import (
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// A worker may be invoked directly (locally, or by anyone allowed to
// invoke it): it renders only what the accepted spec of the job plans.
func TestWorkerDoesOnlyWhatThePlanSays(t *testing.T) {
	h, b, _ := newHandler(t)
	h.Plans = jobstore.New(b, nil, nil).Plans()
	spec := testkit.NativeSpec("planned", 20, 5)
	testkit.Accept(t, b, spec)
	planned := spec.WorkerJob(spec.Plan()[1], 1, 1)
	other := testkit.NativeSpec("never-accepted", 20, 5)
	other.Normalize()

	cases := map[string]func(w *job.WorkerJob){
		"a job never accepted":  func(w *job.WorkerJob) { *w = other.WorkerJob(other.Plan()[0], 1, 1) },
		"a chunk past the plan": func(w *job.WorkerJob) { w.Chunk = job.Chunk{Index: 4, Start: 20, Count: 5} },
		"other frames":          func(w *job.WorkerJob) { w.Chunk.Count = 4 },
		"another command":       func(w *job.WorkerJob) { w.Args = append([]string{"-report"}, w.Args...) },
		"another output file":   func(w *job.WorkerJob) { w.OutputFile = "x.mp4" },
		"another environment":   func(w *job.WorkerJob) { w.Env = map[string]string{"TZ": "UTC"} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			w := planned
			w.Args = append([]string(nil), planned.Args...)
			mutate(&w)
			_, err := h.Handle(t.Context(), w)
			e := wantCode(t, err, joberr.Permanent, joberr.CodeInvalid)
			if !strings.Contains(e.Message, "accepted") {
				t.Errorf("message %q does not say why", e.Message)
			}
			if ok, _ := b.Exists(t.Context(), layout.MarkerKey(w.JobID, w.Chunk.Index)); ok {
				t.Error("a refused call created a completion marker")
			}
		})
	}
	if _, err := h.Handle(t.Context(), planned); err != nil {
		t.Fatalf("the planned chunk: %v", err)
	}
}

// A marker that does not describe the planned chunk (forged, or another
// job's) is not taken for the chunk's completion.
func TestWorkerIgnoresAForgedMarker(t *testing.T) {
	h, b, _ := newHandler(t)
	h.Plans = jobstore.New(b, nil, nil).Plans()
	spec := testkit.NativeSpec("forged", 10, 5)
	testkit.Accept(t, b, spec)
	forged := job.WorkerResult{JobID: "forged", Chunk: job.Chunk{Index: 0, Start: 0, Count: 5}, SegmentKey: "renders/victim/output.mp4", Frames: 5}
	if err := storage.CreateJSON(t.Context(), b, layout.MarkerKey("forged", 0), forged); err != nil {
		t.Fatal(err)
	}
	_, err := h.Handle(t.Context(), spec.WorkerJob(spec.Plan()[0], 1, 1))
	if err == nil {
		t.Fatal("the forged marker was taken as the chunk's result")
	}
	if e := wantCode(t, err, joberr.Retryable, joberr.CodeStorage); !strings.Contains(e.Message, "does not describe") {
		t.Errorf("error %q", e.Message)
	}
}
