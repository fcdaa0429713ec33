package orchestrator_test

import (
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// Every invocation is recorded on a lane below the concurrency, with its
// outcome, and each run adds to what the earlier ones recorded.
func TestHistory(t *testing.T) {
	r := newRig(t)
	spec := r.prepare(specJSON(t, testkit.NativeSpec("recorded", 12, 3)), "")
	r.run(spec)
	var h job.History
	if err := storage.ReadJSON(t.Context(), r.bucket, layout.HistoryKey("recorded"), &h); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, a := range h.Attempts {
		if a.Outcome != job.OutcomeDone || a.Attempt != 1 || a.Lane < 0 || a.Lane >= r.cfg.Concurrency || a.End < a.Start || seen[a.Chunk] {
			t.Errorf("attempt %+v", a)
		}
		seen[a.Chunk] = true
	}
	if len(seen) != 4 || len(h.Stitches) != 1 || h.Stitches[0].Start < h.Attempts[0].Start {
		t.Fatalf("history: %d chunks, stitches %v", len(seen), h.Stitches)
	}

	failing := testkit.NativeSpec("recorded-fails", 2, 2)
	failing.Args = []string{"-hide_banner", "-loglevel", "error", "-i", "nonexistent/input.mp4", "{output}"}
	failing.Retry.MaxAttempts = 1
	prepared := r.prepare(specJSON(t, failing), "")
	counts := []int{}
	for range 2 {
		r.run(prepared)
		var h job.History
		if err := storage.ReadJSON(t.Context(), r.bucket, layout.HistoryKey("recorded-fails"), &h); err != nil {
			t.Fatal(err)
		}
		counts = append(counts, len(h.Attempts))
		if last := h.Attempts[len(h.Attempts)-1]; last.Outcome != job.OutcomeFailed || last.Attempt != len(counts) {
			t.Errorf("run %d's attempt: %+v", len(counts), last)
		}
	}
	if counts[0] != 1 || counts[1] != 2 {
		t.Errorf("attempts recorded after each run: %v, want [1 2]", counts)
	}
}
