package orchestrator_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/storage"
	"github.com/helios-project/infrastructure/pkg/webhook"
)

// strand leaves job id as a dead orchestrator would: claimed, marked
// active, status running with done chunks, its lease expiring at until.
func strand(t *testing.T, b *blob.Bucket, id string, done int, until time.Time) {
	t.Helper()
	strandSpec(t, b, testkit.NativeSpec(id, 20, 5), done, until)
}

func strandSpec(t *testing.T, b *blob.Bucket, spec *job.Spec, done int, until time.Time) {
	t.Helper()
	ctx, id := t.Context(), spec.ID
	spec.Normalize()
	data, _ := spec.Canonical()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(storage.Create(ctx, b, layout.SpecKey(id), data))
	must(storage.WriteJSON(ctx, b, layout.ActiveKey(id), map[string]any{"claimedAt": time.Now().UTC()}))
	must(storage.WriteJSON(ctx, b, layout.StatusKey(id), job.Status{JobID: id, State: job.StateRunning, ChunksTotal: 4, ChunksDone: done}))
	must(storage.WriteJSON(ctx, b, layout.LeaseKey(id, 1), map[string]any{"owner": "dead", "expiresAt": until.UTC()}))
}

func TestSweepResumesStrandedJobs(t *testing.T) {
	b := testkit.Bucket(t, "mem://")
	o := orchestrator.New(jobstore.New(b, nil, nil), nil, nil, orchestrator.Config{}, slog.New(slog.DiscardHandler))
	strand(t, b, "stranded", 1, time.Now().Add(-time.Minute))
	strand(t, b, "alive", 1, time.Now().Add(time.Minute)) // its orchestrator renews the lease
	strand(t, b, "ended", 4, time.Now().Add(-time.Minute))
	storage.WriteJSON(t.Context(), b, layout.StatusKey("ended"), job.Status{JobID: "ended", State: job.StateDone})

	var resumed []string
	opts := orchestrator.SweepOptions{MaxResumes: 2, Resume: func(_ context.Context, id string) error { resumed = append(resumed, id); return nil }}
	rep, err := o.Sweep(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resumed, []string{"stranded"}) || rep.Checked != 3 || rep.Cleared != 1 {
		t.Errorf("resumed %v, report %+v", resumed, rep)
	}
	if ok, _ := b.Exists(t.Context(), layout.ActiveKey("ended")); ok {
		t.Error("an ended job is still marked active")
	}

	// Progress between sweeps resets the count; none, and the job is
	// failed after MaxResumes sweeps, with the reason.
	storage.WriteJSON(t.Context(), b, layout.StatusKey("stranded"), job.Status{JobID: "stranded", State: job.StateRunning, ChunksTotal: 4, ChunksDone: 2})
	o.Sweep(t.Context(), opts) // progress: resume 1 again
	o.Sweep(t.Context(), opts) // resume 2
	rep, _ = o.Sweep(t.Context(), opts)
	if !slices.Equal(rep.Failed, []string{"stranded"}) || len(resumed) != 3 {
		t.Fatalf("report %+v after %v", rep, resumed)
	}
	st, err := jobstore.New(b, nil, nil).Status(t.Context(), "stranded")
	if err != nil || st.State != job.StateFailed || !strings.Contains(st.Error.Message, "resumed 2 times by the sweep") {
		t.Fatalf("status %+v %v", st, err)
	}
	if st.ChunksDone != 2 {
		t.Errorf("the failed status lost the finished chunks: %d", st.ChunksDone)
	}
	if ok, _ := b.Exists(t.Context(), layout.ActiveKey("stranded")); ok {
		t.Error("a failed job is still marked active")
	}
}

// A job the sweep gives up on ends like any other: its webhook says
// job.failed.
func TestSweepFailureSendsTheWebhook(t *testing.T) {
	var got atomic.Int32
	var typ atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Type string }
		json.NewDecoder(r.Body).Decode(&ev)
		typ.Store(ev.Type)
		got.Add(1)
	}))
	defer srv.Close()
	b := testkit.Bucket(t, "mem://")
	o := orchestrator.New(jobstore.New(b, nil, nil), nil, nil, orchestrator.Config{
		Webhooks: &webhook.Sender{Key: []byte("0123456789abcdef0123456789abcdef"), AllowPrivate: true},
	}, slog.New(slog.DiscardHandler))
	spec := testkit.NativeSpec("stranded-hook", 20, 5)
	spec.Webhook = srv.URL + "/hook"
	strandSpec(t, b, spec, 1, time.Now().Add(-time.Minute))
	opts := orchestrator.SweepOptions{MaxResumes: 1, Resume: func(context.Context, string) error { return nil }}
	o.Sweep(t.Context(), opts) // resume 1
	rep, _ := o.Sweep(t.Context(), opts)
	if !slices.Equal(rep.Failed, []string{"stranded-hook"}) {
		t.Fatalf("report %+v", rep)
	}
	if got.Load() != 1 || typ.Load() != "job.failed" {
		t.Errorf("%d deliveries, last %v; want one job.failed", got.Load(), typ.Load())
	}
}

// A job is marked active while it runs and unmarked when it ends.
func TestRunMarksTheJobActive(t *testing.T) {
	r := newRig(t)
	var sawMark atomic.Bool
	spec := r.prepare(specJSON(t, testkit.NativeSpec("marked", 6, 3)), "")
	r.afterExecute = func(n int32) {
		if ok, _ := r.bucket.Exists(t.Context(), layout.ActiveKey("marked")); ok {
			sawMark.Store(true)
		}
	}
	r.run(spec)
	if !sawMark.Load() {
		t.Error("no active mark while the job ran")
	}
	if ok, _ := r.bucket.Exists(t.Context(), layout.ActiveKey("marked")); ok {
		t.Error("the active mark outlived the job")
	}
}
