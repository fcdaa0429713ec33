package job_test

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
)

// FuzzSpec decodes and validates arbitrary specs (both forms). Whatever the
// input: no panic; a spec that validates plans chunks that cover
// [0, totalFrames) exactly once, within MaxChunks, and each chunk's worker
// payload passes the worker's own checks and the plan check.
func FuzzSpec(f *testing.F) {
	if demo, err := os.ReadFile("../../examples/jobs/demo.json"); err == nil {
		f.Add(demo)
	}
	f.Add([]byte(testkit.HeliosSpecJSON("h", 3, 4, 5)))
	f.Add([]byte(`{"metadata":{"totalFrames":10,"fps":30,"width":8,"height":8},"command":"ffmpeg","args":["-af","ladspa=f=x","{output}"],"chunkCount":3}`))
	f.Add([]byte(`{"id":"x","metadata":{"totalFrames":1e9}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := job.Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		if spec.ID == "" {
			spec.ID = "fuzz"
		}
		spec.Normalize()
		if spec.Validate(job.Allowlist{"ffmpeg"}) != nil {
			return
		}
		plan := spec.Plan()
		if len(plan) == 0 || len(plan) > job.MaxChunks {
			t.Fatalf("valid spec plans %d chunks", len(plan))
		}
		next := 0
		for i, c := range plan {
			if c.Index != i || c.Start != next || c.Count < 1 {
				t.Fatalf("chunk %d = %+v; next frame %d", i, c, next)
			}
			next = c.End()
			w := spec.WorkerJob(c, 1, 1)
			if err := w.Validate(); err != nil {
				t.Fatalf("chunk %d payload: %v", i, err)
			}
			if err := spec.CheckWorkerJob(w); err != nil {
				t.Fatalf("chunk %d is not what its own spec plans: %v", i, err)
			}
			for _, a := range w.Args {
				if strings.Contains(strings.ToLower(a), "ladspa=") {
					t.Fatalf("a code-loading filter passed validation: %q", a)
				}
			}
		}
		if next != spec.Metadata.TotalFrames {
			t.Fatalf("chunks end at %d, totalFrames %d", next, spec.Metadata.TotalFrames)
		}
		if !layout.ValidOutputKey(spec.ID, spec.Output) {
			t.Fatalf("valid spec with output %q", spec.Output)
		}
	})
}

// FuzzExpand expands placeholders in arbitrary arguments: no panic, and no
// braces of a known placeholder survive in an argument that validated.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"trim=start_frame={start}:end_frame={end}", "{{literal}}", "{output}", "{", "}}{{{", "{jobId}-{chunk}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		spec := testkit.NativeSpec("fuzz", 10, 5)
		spec.Args = []string{arg, "{output}"}
		spec.Normalize()
		valid := spec.Validate(job.Allowlist{"ffmpeg"}) == nil
		vars := job.Vars{JobID: "fuzz", Chunk: job.Chunk{Index: 1, Start: 5, Count: 5}, Output: "o.mp4", FPS: 10, Width: 8, Height: 8}
		out := vars.Expand([]string{arg})
		if valid && strings.Contains(out[0], "{start}") && !strings.Contains(arg, "{{start}}") {
			t.Fatalf("%q expanded to %q", arg, out[0])
		}
	})
}

// FuzzKeys parses arbitrary storage keys: whatever a key parses as, it is
// the key the constructors make, and nothing that leaves its prefix is a
// valid output.
func FuzzKeys(f *testing.F) {
	for _, k := range []string{"jobs/demo.json", "jobs/../x.json", "renders/j/chunks/000001.json", "renders/j/chunks/000001.2-3.mp4",
		"renders/j/lease.000004", "renders/j/output.mp4", "outputs/j/a/b.mov", "renders/j/../k/output.mp4"} {
		f.Add("j", k)
	}
	f.Fuzz(func(t *testing.T, id, key string) {
		if got, ok := layout.JobIDFromKey(key); ok && (layout.JobKey(got) != key || !layout.ValidID(got)) {
			t.Fatalf("JobIDFromKey(%q) = %q", key, got)
		}
		if !layout.ValidID(id) {
			return
		}
		if i, ok := job.MarkerIndex(id, key); ok && layout.MarkerKey(id, i) != key {
			t.Fatalf("MarkerIndex(%q) = %d", key, i)
		}
		if i, ok := job.SegmentIndex(id, key); ok && !strings.HasPrefix(key, fmt.Sprintf("%s%06d.", layout.ChunksPrefix(id), i)) {
			t.Fatalf("SegmentIndex(%q) = %d", key, i)
		}
		if layout.ValidOutputKey(id, key) {
			clean := path.Clean(key)
			if clean != key || !(strings.HasPrefix(key, "renders/"+id+"/") || strings.HasPrefix(key, "outputs/"+id+"/")) {
				t.Fatalf("ValidOutputKey(%q, %q) leaves the job's prefixes", id, key)
			}
			if key == layout.SpecKey(id) || key == layout.StatusKey(id) || strings.HasPrefix(key, layout.LeasePrefix(id)) || strings.HasPrefix(key, layout.ChunksPrefix(id)) {
				t.Fatalf("ValidOutputKey(%q, %q): one of the job's own objects", id, key)
			}
		}
	})
}
