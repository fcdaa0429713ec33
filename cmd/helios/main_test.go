package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
)

type result struct {
	code           int
	stdout, stderr string
}

func helios(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
	return result{code, stdout.String(), stderr.String()}
}

func writeSpec(t *testing.T, spec *job.Spec) string {
	t.Helper()
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), spec.ID+".json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// slowSpec is a native spec whose chunks take real time (ffmpeg's
// realtime filter: a frame a tenth of a second), so a test can stop a run
// in the middle.
func slowSpec(id string, frames, perChunk int) *job.Spec {
	spec := testkit.NativeSpec(id, frames, perChunk)
	vf := slices.Index(spec.Args, "-vf") + 1
	spec.Args[vf] += ",realtime"
	return spec
}

// runUntilFirstChunk runs `job run` of the spec at path on storage, one
// chunk at a time, and stops it (as Ctrl-C does) once a chunk is done.
func runUntilFirstChunk(t *testing.T, path, storage, id string) {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	go func() {
		for ctx.Err() == nil {
			if keys, _ := filepath.Glob(filepath.Join(storage, "renders", id, "chunks", "*.json")); len(keys) > 0 {
				stop()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var stdout, stderr bytes.Buffer
	run(ctx, []string{"job", "run", path, "--out", filepath.Join(t.TempDir(), "v.mp4"), "--storage", storage, "--concurrency", "1"},
		strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
}

func TestJobRunStatus(t *testing.T) {
	testkit.RequireFFmpeg(t)
	storage := t.TempDir()
	env := map[string]string{"HELIOS_STORAGE_URL": storage}
	spec := testkit.NativeSpec("cli", 12, 5)
	out := filepath.Join(t.TempDir(), "video.mp4")

	r := helios(t, env, "job", "run", writeSpec(t, spec), "--out", out, "--json")
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	var st job.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.State != job.StateDone || st.FramesDone != 12 {
		t.Fatalf("--json printed %q (%v)", r.stdout, err)
	}
	testkit.AssertFrameExact(t, out, testkit.SinglePass(t, t.TempDir(), 12))
	if !strings.Contains(r.stderr, "done: 3/3 chunks, 12/12 frames") {
		t.Errorf("no plain progress lines on a non-terminal:\n%s", r.stderr)
	}

	r = helios(t, env, "job", "status", "cli")
	if r.code != exitOK || !strings.Contains(r.stdout, "job cli: done") || !strings.Contains(r.stdout, "frames: 12 of 12") {
		t.Errorf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = helios(t, env, "job", "status", "nope")
	if r.code != exitUsage {
		t.Errorf("status of an unknown job: exit %d, want %d", r.code, exitUsage)
	}
}

func TestJobRunSummary(t *testing.T) {
	testkit.RequireFFmpeg(t)
	spec := testkit.NativeSpec("summary", 10, 4)
	r := helios(t, nil, "job", "run", writeSpec(t, spec), "-o", filepath.Join(t.TempDir(), "v.mp4"), "--storage", t.TempDir(), "--concurrency", "1")
	for _, want := range []string{"frames:    10 (160x120 at 10 fps)", "duration:  1.00 s", "chunks:    3", "wall time:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestJobRunBadInput(t *testing.T) {
	storage := t.TempDir()
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"metadata":{"totalFrames":0,"fps":30,"width":64,"height":64},"command":"rm","args":["-rf","{output}"],"framesPerChunk":1}`), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"invalid spec", []string{"job", "run", bad, "--out", "x.mp4", "--storage", storage}, "metadata.totalFrames"},
		{"no --out", []string{"job", "run", bad, "--storage", storage}, "--out PATH is required"},
		{"missing file", []string{"job", "run", "/nonexistent.json", "--out", "x.mp4", "--storage", storage}, "no such file"},
		{"two specs", []string{"job", "run", bad, bad, "--out", "x.mp4"}, "expected one job spec file"},
		{"unknown flag", []string{"job", "run", bad, "--colour"}, "unknown flag"},
		{"unknown command", []string{"jobs"}, "unknown command"},
		{"bad concurrency env", []string{"job", "status", "x"}, "HELIOS_CONCURRENCY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			if tt.name == "bad concurrency env" {
				env["HELIOS_CONCURRENCY"] = "lots"
			}
			r := helios(t, env, tt.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, want %d with %q in stderr:\n%s", r.code, exitUsage, tt.want, r.stderr)
			}
		})
	}
	if entries, _ := os.ReadDir(storage); len(entries) != 0 {
		t.Errorf("bad input wrote to storage: %v", entries)
	}
}

func TestJobRunFailure(t *testing.T) {
	testkit.RequireFFmpeg(t)
	spec := testkit.NativeSpec("fails", 6, 3)
	spec.Retry.MaxAttempts = 1
	spec.Args = append([]string{"-i", "missing-input.mov"}, spec.Args...)
	out := filepath.Join(t.TempDir(), "v.mp4")
	r := helios(t, nil, "job", "run", writeSpec(t, spec), "--out", out, "--storage", t.TempDir())
	if r.code != exitFailed || !strings.Contains(r.stdout, "job fails failed") || !strings.Contains(r.stdout, "missing-input.mov") {
		t.Errorf("exit %d, want %d naming the chunk's stderr:\n%s\n%s", r.code, exitFailed, r.stdout, r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("a failed job left a video at --out")
	}
}

func TestJobCancel(t *testing.T) {
	testkit.RequireFFmpeg(t)
	storage := t.TempDir()
	spec := testkit.NativeSpec("stopme", 6, 3)
	path := writeSpec(t, spec)
	// Cancelling an unknown job is an error; a submitted one can be cancelled
	// before it runs, and then runs to the cancelled state.
	if r := helios(t, nil, "job", "cancel", "stopme", "--storage", storage); r.code != exitUsage {
		t.Errorf("cancel of an unknown job: exit %d", r.code)
	}
	if r := helios(t, nil, "job", "run", path, "--out", filepath.Join(t.TempDir(), "a.mp4"), "--storage", storage); r.code != exitOK {
		t.Fatalf("first run: exit %d %s", r.code, r.stderr)
	}
	spec.ID = "stopme2"
	path2 := writeSpec(t, spec)
	data, _ := os.ReadFile(path2)
	os.MkdirAll(filepath.Join(storage, "jobs"), 0o755)
	os.WriteFile(filepath.Join(storage, "jobs", "stopme2.json"), data, 0o600)
	if r := helios(t, nil, "job", "cancel", "stopme2", "--storage", storage); r.code != exitOK || !strings.Contains(r.stdout, "cancel requested") {
		t.Fatalf("cancel: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	r := helios(t, nil, "job", "run", path2, "--out", filepath.Join(t.TempDir(), "b.mp4"), "--storage", storage)
	if r.code != exitFailed || !strings.Contains(r.stdout, "cancelled") {
		t.Errorf("run of a cancelled job: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// submit validates and uploads; watch follows the job to its end while an
// orchestrator (here in process, as the trigger would start it) renders it.
func TestJobSubmitWatch(t *testing.T) {
	testkit.RequireFFmpeg(t)
	storage := t.TempDir()
	env := map[string]string{"HELIOS_STORAGE_URL": storage}
	spec := testkit.NativeSpec("submitted", 9, 3)
	path := writeSpec(t, spec)
	r := helios(t, env, "job", "submit", path)
	if r.code != exitOK || !strings.Contains(r.stdout, "submitted job submitted as "+filepath.Join(storage, "jobs", "submitted.json")) {
		t.Fatalf("submit: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(storage, "jobs", "submitted.json")); err != nil {
		t.Fatal(err)
	}
	if r := helios(t, env, "job", "watch", "nope", "--interval", "10ms"); r.code != exitUsage {
		t.Errorf("watch of an unknown job: exit %d", r.code)
	}
	// The trigger starts it: run the same job through the CLI in the background.
	done := make(chan result, 1)
	go func() { done <- helios(t, env, "job", "run", path, "--out", filepath.Join(t.TempDir(), "v.mp4")) }()
	// Watched once the run holds the job: before, nothing runs it, and
	// watch says so and ends (TestLocalSubmitAndWatch).
	for deadline := time.Now().Add(10 * time.Second); holderGone(storage, "submitted") && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	r = helios(t, env, "job", "watch", "submitted", "--interval", "20ms")
	if r.code != exitOK || !strings.Contains(r.stdout, "job submitted done: /") || !strings.Contains(r.stdout, "/renders/submitted/output.mp4 (9 frames") {
		t.Errorf("watch: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if run := <-done; run.code != exitOK {
		t.Errorf("run: exit %d %s", run.code, run.stderr)
	}
	// Submitting a different spec under the same id is refused.
	spec.Metadata.TotalFrames = 12
	if r := helios(t, env, "job", "submit", writeSpec(t, spec)); r.code != exitUsage || !strings.Contains(r.stderr, "--id") {
		t.Errorf("conflicting submit: exit %d %s", r.code, r.stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"metadata":{}}`), 0o600)
	if r := helios(t, env, "job", "submit", bad); r.code != exitUsage || !strings.Contains(r.stderr, "metadata.totalFrames") {
		t.Errorf("invalid submit: exit %d %s", r.code, r.stderr)
	}
}

// Two runs of one job on one storage folder do not overlap.
func TestJobRunLocksTheJob(t *testing.T) {
	storage := t.TempDir()
	unlock, err := lockJob(storage, "locked")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	spec := testkit.NativeSpec("locked", 6, 3)
	r := helios(t, nil, "job", "run", writeSpec(t, spec), "--out", filepath.Join(t.TempDir(), "v.mp4"), "--storage", storage)
	if r.code != exitFailed || !strings.Contains(r.stderr, "being run by another helios process") {
		t.Errorf("exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(storage, "renders")); !os.IsNotExist(err) {
		t.Error("the locked-out run wrote to the storage")
	}
}
