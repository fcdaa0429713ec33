package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/adapter"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/pipeline"
	"github.com/helios-project/infrastructure/pkg/sandbox"
	"github.com/helios-project/infrastructure/pkg/storage"
	"github.com/helios-project/infrastructure/pkg/worker"
)

// The test binary doubles as a misbehaving render command, allowlisted by
// its absolute path:
//
//	orchestrator.test helper-flaky STATE_DIR FAILURES CHUNK ffmpeg-args...
//	orchestrator.test helper-sleep
//	orchestrator.test helper-stall STATE_DIR CHUNK STALLING_CHUNK ffmpeg-args...
func TestMain(m *testing.M) {
	sandbox.Main() // the rig's worker confines its commands by re-executing this binary
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "helper-") {
		os.Exit(helper(os.Args[1], os.Args[2:]))
	}
	os.Exit(m.Run())
}

func helper(mode string, args []string) int {
	switch mode {
	case "helper-sleep":
		time.Sleep(time.Minute)
		return 0
	case "helper-flaky":
		state, failures, chunk := args[0], args[1], args[2]
		n, _ := strconv.Atoi(failures)
		if calls := count(state, chunk); calls < n {
			fmt.Fprintf(os.Stderr, "flaky: simulated failure %d of chunk %s\n", calls+1, chunk)
			return 1
		}
		return execFFmpeg(args[3:])
	case "helper-stall":
		state, chunk, stalling := args[0], args[1], args[2]
		if count(state, chunk) == 0 && chunk == stalling {
			time.Sleep(10 * time.Minute) // a worker that hangs
		}
		return execFFmpeg(args[3:])
	}
	return 2
}

// count returns how many times a helper ran for chunk before, and counts
// this one, in a file of STATE_DIR.
func count(state, chunk string) int {
	counter := filepath.Join(state, "chunk-"+chunk)
	data, _ := os.ReadFile(counter)
	_ = os.WriteFile(counter, append(data, 'x'), 0o600)
	return len(data)
}

func execFFmpeg(args []string) int {
	ffmpeg, err := execLookPath("ffmpeg")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 127
	}
	_ = syscall.Exec(ffmpeg, append([]string{"ffmpeg"}, args...), os.Environ())
	return 126
}

func execLookPath(name string) (string, error) {
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(dir, name)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not on PATH", name)
}

func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// rig is one local pipeline on a file:// bucket, with every invocation
// counted on its way through the adapter.
type rig struct {
	t        *testing.T
	bucket   *blob.Bucket
	adapter  *adapter.Adapter
	executes atomic.Int32
	stitches atomic.Int32
	cfg      orchestrator.Config
	allowed  job.Allowlist // what the orchestrator's store accepts
	// afterExecute, if set, runs after each successful worker invocation.
	afterExecute func(n int32)
}

func newRig(t *testing.T, allowed ...string) *rig { return newRigConfined(t, true, allowed...) }

// newRigConfined makes a rig whose commands run confined (as deployed) or
// not: a helper command that keeps state across attempts outside its work
// dir is refused by the sandbox.
func newRigConfined(t *testing.T, confined bool, allowed ...string) *rig {
	t.Helper()
	testkit.RequireFFmpeg(t)
	b := testkit.Bucket(t, t.TempDir())
	if len(allowed) == 0 {
		allowed = []string{"ffmpeg"}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stack := pipeline.New(b, config.Config{Allowed: allowed, Concurrency: 2}, log)
	w, err := stack.Worker()
	if err != nil {
		t.Fatal(err)
	}
	if !confined {
		h := &worker.Handler{Store: jobstore.New(b, nil, nil), Runner: &execx.Runner{Allowed: allowed}, Media: ffmpeg.New(), Logger: log}
		w = h.Handle
	}
	a := adapter.New(adapter.NewLocal(w, stack.Stitcher(), 4))
	return &rig{t: t, bucket: b, adapter: a, allowed: allowed, cfg: orchestrator.Config{
		Concurrency: 2, StatusInterval: 20 * time.Millisecond, CancelPollInterval: 20 * time.Millisecond,
	}}
}

func (r *rig) Execute(ctx context.Context, w job.WorkerJob) (job.WorkerResult, error) {
	res, err := r.adapter.Execute(ctx, w)
	if err == nil {
		n := r.executes.Add(1)
		if r.afterExecute != nil {
			r.afterExecute(n)
		}
	}
	return res, err
}

func (r *rig) Stitch(ctx context.Context, req job.StitchRequest) (job.StitchResult, error) {
	r.stitches.Add(1)
	return r.adapter.Stitch(ctx, req)
}

func (r *rig) jobs() *jobstore.Store {
	return jobstore.New(r.bucket, r.allowed, slog.New(slog.DiscardHandler))
}

func (r *rig) orchestrator() *orchestrator.Orchestrator {
	return orchestrator.New(r.jobs(), r, r, r.cfg, slog.New(slog.DiscardHandler))
}

func (r *rig) prepare(spec string, id string) *job.Spec {
	r.t.Helper()
	s, err := r.jobs().Prepare(strings.NewReader(spec), id)
	if err != nil {
		r.t.Fatalf("Prepare: %v", err)
	}
	return s
}

func (r *rig) run(spec *job.Spec) *job.Status {
	r.t.Helper()
	st, err := r.orchestrator().Run(r.t.Context(), spec, orchestrator.RunOptions{})
	if err != nil {
		r.t.Fatalf("Run: %v", err)
	}
	return st
}

// output downloads the job's output to a local file.
func (r *rig) output(st *job.Status) string {
	r.t.Helper()
	if st.State != job.StateDone {
		r.t.Fatalf("job state = %s, want done (error: %v)", st.State, st.Error)
	}
	path := filepath.Join(r.t.TempDir(), "output"+filepath.Ext(st.Output))
	if _, err := storage.DownloadFile(r.t.Context(), r.bucket, st.Output, path); err != nil {
		r.t.Fatal(err)
	}
	return path
}

func (r *rig) keys(prefix string) []string {
	r.t.Helper()
	keys, err := storage.List(r.t.Context(), r.bucket, prefix)
	if err != nil {
		r.t.Fatal(err)
	}
	return keys
}

func (r *rig) exists(key string) bool {
	ok, err := r.bucket.Exists(r.t.Context(), key)
	if err != nil {
		r.t.Fatal(err)
	}
	return ok
}

func specJSON(t *testing.T, s *job.Spec) string {
	t.Helper()
	data, err := s.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestFrameExact(t *testing.T) {
	ref := t.TempDir()
	chunkCount := testkit.NativeSpec("count", 23, 0)
	chunkCount.ChunkCount = 4
	tests := []struct {
		name   string
		spec   string
		chunks int
	}{
		{"uneven chunks", specJSON(t, testkit.NativeSpec("uneven", 47, 10)), 5},
		{"one-frame chunks", specJSON(t, testkit.NativeSpec("single", 7, 1)), 7},
		{"chunkCount", specJSON(t, chunkCount), 4},
		{"helios form", testkit.HeliosSpecJSON("helios", 5, 9, 6), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			spec := r.prepare(tt.spec, "")
			st := r.run(spec)
			if st.ChunksTotal != tt.chunks || st.ChunksDone != tt.chunks || st.FramesDone != spec.Metadata.TotalFrames {
				t.Errorf("status chunks %d/%d frames %d, want %d chunks and %d frames", st.ChunksDone, st.ChunksTotal, st.FramesDone, tt.chunks, spec.Metadata.TotalFrames)
			}
			testkit.AssertFrameExact(t, r.output(st), testkit.SinglePass(t, ref, spec.Metadata.TotalFrames))

			// The stored status says the same; segments are cleaned up, markers stay.
			stored, err := jobstore.New(r.bucket, nil, nil).Status(t.Context(), spec.ID)
			if err != nil || stored.State != job.StateDone || stored.Output != spec.Output || stored.OutputBytes == 0 {
				t.Fatalf("stored status = %+v, %v", stored, err)
			}
			for _, k := range r.keys(layout.ChunksPrefix(spec.ID)) {
				if !strings.HasSuffix(k, ".json") {
					t.Errorf("segment %s left after success", k)
				}
			}
			if got := len(r.keys(layout.ChunksPrefix(spec.ID))); got != tt.chunks {
				t.Errorf("%d markers, want %d", got, tt.chunks)
			}
			// The lease is released (marked expired) so a resume starts at once.
			for _, k := range r.keys(layout.LeasePrefix(spec.ID)) {
				var l struct{ ExpiresAt time.Time }
				if err := storage.ReadJSON(t.Context(), r.bucket, k, &l); err != nil || l.ExpiresAt.After(time.Now()) {
					t.Errorf("lease %s still held after the run: %+v %v", k, l, err)
				}
			}
		})
	}
}

// Running a finished job again does nothing and returns its status.
func TestRerunFinishedJob(t *testing.T) {
	r := newRig(t)
	spec := r.prepare(specJSON(t, testkit.NativeSpec("again", 12, 5)), "")
	first := r.run(spec)
	n := r.executes.Load()
	second := r.run(spec)
	if r.executes.Load() != n || r.stitches.Load() != 1 {
		t.Errorf("second run executed %d chunks and %d stitches in total, want %d and 1", r.executes.Load(), r.stitches.Load(), n)
	}
	if second.State != job.StateDone || second.Output != first.Output {
		t.Errorf("second run status = %+v", second)
	}
}

func TestInvalidSpecWritesNothing(t *testing.T) {
	docs := map[string]string{
		"not json":       `{"metadata":`,
		"unknown field":  `{"metadata":{"totalFrames":10,"fps":10,"width":8,"height":8},"command":"ffmpeg","args":["{output}"],"framesPerChunk":2,"colour":"red"}`,
		"zero frames":    `{"metadata":{"totalFrames":0,"fps":10,"width":8,"height":8},"command":"ffmpeg","args":["{output}"],"framesPerChunk":2}`,
		"not allowed":    `{"metadata":{"totalFrames":10,"fps":10,"width":8,"height":8},"command":"curl","args":["{output}"],"framesPerChunk":2}`,
		"overlap":        `{"metadata":{"totalFrames":10,"fps":10,"width":8,"height":8},"chunks":[{"id":0,"startFrame":0,"frameCount":6,"outputFile":"a.mp4","command":"ffmpeg {output}"},{"id":1,"startFrame":5,"frameCount":5,"outputFile":"b.mp4","command":"ffmpeg {output}"}]}`,
		"traversal":      `{"metadata":{"totalFrames":10,"fps":10,"width":8,"height":8},"chunks":[{"id":0,"startFrame":0,"frameCount":10,"outputFile":"../a.mp4","command":"ffmpeg {output}"}]}`,
		"id mismatch":    `{"id":"other","metadata":{"totalFrames":10,"fps":10,"width":8,"height":8},"command":"ffmpeg","args":["{output}"],"framesPerChunk":2}`,
		"unknown holder": `{"metadata":{"totalFrames":10,"fps":10,"width":8,"height":8},"command":"ffmpeg","args":["{output}","{frame}"],"framesPerChunk":2}`,
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			key := layout.JobKey("bad")
			if err := r.bucket.WriteAll(t.Context(), key, []byte(doc), nil); err != nil {
				t.Fatal(err)
			}
			_, err := r.orchestrator().RunKey(t.Context(), key, orchestrator.RunOptions{})
			var ve *joberr.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("RunKey: err = %v, want a *joberr.ValidationError", err)
			}
			if got := r.keys(""); len(got) != 1 || got[0] != key {
				t.Errorf("bucket holds %v after an invalid spec; want only %s", got, key)
			}
			if r.executes.Load() != 0 {
				t.Error("a worker ran for an invalid spec")
			}
		})
	}
}

func TestSameIDDifferentSpecIsRefused(t *testing.T) {
	r := newRig(t)
	r.run(r.prepare(specJSON(t, testkit.NativeSpec("taken", 6, 3)), ""))
	before := r.executes.Load()
	other := r.prepare(specJSON(t, testkit.NativeSpec("taken", 8, 3)), "")
	_, err := r.orchestrator().Run(t.Context(), other, orchestrator.RunOptions{})
	if !errors.Is(err, jobstore.ErrConflict) {
		t.Fatalf("Run of a different spec under a taken id: err = %v, want ErrConflict", err)
	}
	if r.executes.Load() != before {
		t.Error("the refused spec rendered chunks")
	}
}

func TestFlakyCommandSucceedsOnRetry(t *testing.T) {
	exe := self(t)
	r := newRigConfined(t, false, "ffmpeg", exe) // the helper counts attempts outside its work dir
	state := t.TempDir()
	spec := testkit.NativeSpec("flaky", 20, 5)
	spec.Command = exe
	spec.Args = append([]string{"helper-flaky", state, "1", "{chunk}"}, spec.Args...)
	st := r.run(r.prepare(specJSON(t, spec), ""))
	testkit.AssertFrameExact(t, r.output(st), testkit.SinglePass(t, t.TempDir(), 20))
	for _, c := range st.Chunks {
		if c.Attempts != 2 || c.State != job.StateDone {
			t.Errorf("chunk %d: %d attempts, state %s; want 2 attempts and done", c.Index, c.Attempts, c.State)
		}
	}
}

// A chunk whose first attempt hangs is hedged: the job ends in about the
// time of its other chunks, frame-exact, and the hung attempt is cancelled
// (its process killed) with nothing of it left in the bucket.
func TestStalledChunkIsHedged(t *testing.T) {
	exe := self(t)
	r := newRigConfined(t, false, "ffmpeg", exe) // the helper counts attempts outside its work dir
	state := t.TempDir()
	spec := testkit.NativeSpec("stalled", 60, 5)
	spec.Command = exe
	spec.Args = append([]string{"helper-stall", state, "{chunk}", "4"}, spec.Args...)
	spec.KeepChunks = true // so what is left of the losing attempt shows
	start := time.Now()
	st := r.run(r.prepare(specJSON(t, spec), ""))
	took := time.Since(start)
	testkit.AssertFrameExact(t, r.output(st), testkit.SinglePass(t, t.TempDir(), 60))
	// Twelve chunks of a fraction of a second on two lanes, and the hedge
	// after the 2 s an attempt must run before it can be hedged.
	if took > 30*time.Second {
		t.Errorf("the job took %s; the hang was not overtaken", took)
	}
	if st.Hedges != 1 || st.Chunks[4].Hedges != 1 || st.Chunks[4].Attempts != 2 {
		t.Errorf("%d hedges; chunk 4: %+v", st.Hedges, st.Chunks[4])
	}
	var segments []string
	for _, k := range r.keys(layout.ChunksPrefix(st.JobID)) {
		if job.IsSegmentKey(st.JobID, k) {
			segments = append(segments, k)
		}
	}
	if len(segments) != 12 || slices.Contains(segments, layout.SegmentKey(st.JobID, 4, 1, 1, "mp4")) {
		t.Errorf("segments kept: %q; want the 12 winners', not the hung attempt's", segments)
	}
	t.Logf("job took %s with chunk 4's first attempt hung", took.Round(time.Millisecond))
}

func TestFailingCommandFailsJob(t *testing.T) {
	r := newRig(t)
	spec := testkit.NativeSpec("broken", 20, 5)
	spec.Args = append([]string{"-i", "no-such-input.mp4"}, spec.Args...)
	spec = r.prepare(specJSON(t, spec), "")
	st := r.run(spec)
	if st.State != job.StateFailed {
		t.Fatalf("state = %s, want failed", st.State)
	}
	e := st.Error
	if e == nil || e.Chunk == nil || e.Code != joberr.CodeCommandFailed || !strings.Contains(e.StderrTail, "no-such-input.mp4") {
		t.Fatalf("status error = %#v; want command_failed naming the chunk with the stderr tail", e)
	}
	if c := st.Chunks[*e.Chunk]; c.Attempts != 3 || c.State != job.StateFailed {
		t.Errorf("failed chunk: %d attempts, state %s; want 3 and failed", c.Attempts, c.State)
	}
	if r.exists(spec.Output) || r.exists(layout.StitchLockKey(spec.ID)) || r.stitches.Load() != 0 {
		t.Error("a failed job published an output or stitched")
	}
	stored, err := jobstore.New(r.bucket, nil, nil).Status(t.Context(), spec.ID)
	if err != nil || stored.State != job.StateFailed || stored.Error == nil || stored.Error.StderrTail == "" {
		t.Errorf("stored status = %+v, %v", stored, err)
	}
}

// A program the orchestrator accepts but the worker does not is refused by
// the worker permanently: one attempt, no retries.
func TestWorkerAllowlistIsPermanent(t *testing.T) {
	exe := self(t)
	r := newRig(t)
	r.allowed = job.Allowlist{"ffmpeg", exe}
	spec := testkit.NativeSpec("refused", 10, 5)
	spec.Command = exe
	spec.Args = []string{"helper-sleep", "{output}"}
	st := r.run(r.prepare(specJSON(t, spec), ""))
	if st.State != job.StateFailed || st.Error == nil || st.Error.Code != joberr.CodeNotAllowed {
		t.Fatalf("status = %s %#v, want failed with command_not_allowed", st.State, st.Error)
	}
	if c := st.Chunks[*st.Error.Chunk]; c.Attempts != 1 {
		t.Errorf("permanent error retried: %d attempts", c.Attempts)
	}
}

func TestCancel(t *testing.T) {
	exe := self(t)
	r := newRig(t, "ffmpeg", exe)
	spec := testkit.NativeSpec("cancel-me", 40, 5)
	spec.Command, spec.Args = exe, []string{"helper-sleep", "{output}"}
	prepared := r.prepare(specJSON(t, spec), "")
	type result struct {
		st  *job.Status
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := r.orchestrator().Run(t.Context(), prepared, orchestrator.RunOptions{})
		done <- result{st, err}
	}()
	// Wait for the job to be running, then cancel it as `helios job cancel` does.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := jobstore.New(r.bucket, nil, nil).Status(t.Context(), spec.ID)
		if err == nil && st.State == job.StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("job never started running")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.jobs().Cancel(t.Context(), spec.ID); err != nil {
		t.Fatal(err)
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if res.err != nil || res.st.State != job.StateCancelled {
		t.Fatalf("Run = %v, %v; want cancelled", res.st, res.err)
	}
	if r.exists(prepared.Output) || r.stitches.Load() != 0 {
		t.Error("a cancelled job stitched")
	}
	// Running it again keeps it cancelled and renders nothing.
	st := r.run(prepared)
	if st.State != job.StateCancelled || r.executes.Load() != 0 {
		t.Errorf("rerun of a cancelled job: state %s, %d chunks rendered", st.State, r.executes.Load())
	}
}

func TestResumeAfterCrash(t *testing.T) {
	r := newRig(t)
	r.cfg.Concurrency = 1
	spec := r.prepare(specJSON(t, testkit.NativeSpec("crash", 60, 10)), "")

	// The first orchestrator dies after three chunks.
	ctx, crash := context.WithCancel(t.Context())
	r.afterExecute = func(n int32) {
		if n == 3 {
			crash()
		}
	}
	if _, err := r.orchestrator().Run(ctx, spec, orchestrator.RunOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("crashed Run: err = %v, want context.Canceled", err)
	}
	r.afterExecute = nil
	markers := len(r.keys(layout.ChunksPrefix(spec.ID)))
	var withMarker int
	for _, k := range r.keys(layout.ChunksPrefix(spec.ID)) {
		if strings.HasSuffix(k, ".json") {
			withMarker++
		}
	}
	if withMarker < 3 || withMarker == 6 {
		t.Fatalf("%d chunks done before the crash (%d keys); the test needs 3 to 5", withMarker, markers)
	}
	stored, err := jobstore.New(r.bucket, nil, nil).Status(t.Context(), spec.ID)
	if err != nil || stored.State.Final() || stored.ChunksDone < 3 {
		t.Fatalf("status after crash = %+v, %v; want running with progress", stored, err)
	}

	// A fresh orchestrator renders only the chunks without a marker.
	r.executes.Store(0)
	st := r.run(spec)
	if got, want := int(r.executes.Load()), 6-withMarker; got != want {
		t.Errorf("resume rendered %d chunks, want %d", got, want)
	}
	testkit.AssertFrameExact(t, r.output(st), testkit.SinglePass(t, t.TempDir(), 60))
}

// Two orchestrators started on the same job (a duplicated trigger) render
// each chunk once and stitch once.
func TestDuplicateRunRendersOnce(t *testing.T) {
	r := newRig(t)
	spec := r.prepare(specJSON(t, testkit.NativeSpec("dup", 30, 10)), "")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { _, errs[i] = r.orchestrator().Run(t.Context(), spec, orchestrator.RunOptions{}) })
	}
	wg.Wait()
	busy := 0
	for _, err := range errs {
		switch {
		case errors.Is(err, jobstore.ErrAlreadyRunning):
			busy++
		case err != nil:
			t.Fatalf("Run: %v", err)
		}
	}
	if busy != 1 || r.executes.Load() != 3 || r.stitches.Load() != 1 {
		t.Errorf("%d runs refused, %d chunks rendered, %d stitches; want 1, 3, 1", busy, r.executes.Load(), r.stitches.Load())
	}
	st, err := jobstore.New(r.bucket, nil, nil).Status(t.Context(), spec.ID)
	if err != nil || st.State != job.StateDone {
		t.Fatalf("final status %+v, %v", st, err)
	}
}

// throttler refuses the first n invocations as a busy platform does.
type throttler struct {
	orchestrator.WorkerAdapter
	left atomic.Int32
}

func (t *throttler) Execute(ctx context.Context, w job.WorkerJob) (job.WorkerResult, error) {
	if t.left.Add(-1) >= 0 {
		return job.WorkerResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeThrottled, "TooManyRequestsException: Rate Exceeded.")
	}
	return t.WorkerAdapter.Execute(ctx, w)
}

// Throttling spends no attempts: a job allowed a single attempt per chunk
// still succeeds when the platform is busy at first.
func TestThrottlingSpendsNoAttempts(t *testing.T) {
	r := newRig(t)
	spec := testkit.NativeSpec("busy", 20, 10)
	spec.Retry.MaxAttempts = 1
	prepared := r.prepare(specJSON(t, spec), "")
	th := &throttler{WorkerAdapter: r}
	th.left.Store(5)
	o := orchestrator.New(r.jobs(), th, r, r.cfg, slog.New(slog.DiscardHandler))
	st, err := o.Run(t.Context(), prepared, orchestrator.RunOptions{})
	if err != nil || st.State != job.StateDone {
		t.Fatalf("Run = %v, %v", st, err)
	}
	for _, c := range st.Chunks {
		if c.Attempts != 1 {
			t.Errorf("chunk %d: %d attempts, want 1", c.Index, c.Attempts)
		}
	}
	// Past the budget, throttling fails the job.
	r.cfg.ThrottleBudget = 50 * time.Millisecond
	th.left.Store(1 << 30)
	o = orchestrator.New(r.jobs(), th, r, r.cfg, slog.New(slog.DiscardHandler))
	st, err = o.Run(t.Context(), r.prepare(specJSON(t, testkit.NativeSpec("always-busy", 10, 10)), ""), orchestrator.RunOptions{})
	if err != nil || st.State != job.StateFailed || st.Error.Code != joberr.CodeThrottled {
		t.Fatalf("Run while always throttled = %v %v, %v", st.State, st.Error, err)
	}
}

// An orchestrator that crashed mid-stitch leaves the stitch lock behind: the
// next run, holding the lease, takes it over and stitches.
func TestStaleStitchLockIsTakenOver(t *testing.T) {
	r := newRig(t)
	spec := r.prepare(specJSON(t, testkit.NativeSpec("stale-lock", 10, 5)), "")
	if err := storage.CreateJSON(t.Context(), r.bucket, layout.StitchLockKey(spec.ID), map[string]any{"run": 99}); err != nil {
		t.Fatal(err)
	}
	st := r.run(spec)
	if st.State != job.StateDone || r.stitches.Load() != 1 {
		t.Fatalf("state %s after %d stitches", st.State, r.stitches.Load())
	}
	// The output gone, a rerun renders and stitches again.
	if err := r.bucket.Delete(t.Context(), st.Output); err != nil {
		t.Fatal(err)
	}
	st = r.run(spec)
	if st.State != job.StateDone || r.stitches.Load() != 2 {
		t.Fatalf("rerun after the output was deleted: state %s, %d stitches", st.State, r.stitches.Load())
	}
	testkit.AssertFrameExact(t, r.output(st), testkit.SinglePass(t, t.TempDir(), 10))
}

// A lease whose holder stopped renewing it is taken over by exactly one of
// the orchestrators that find it expired.
func TestExpiredLeaseIsTakenOverOnce(t *testing.T) {
	r := newRig(t)
	spec := r.prepare(specJSON(t, testkit.NativeSpec("takeover", 10, 5)), "")
	stale := map[string]any{"owner": "crashed", "expiresAt": time.Now().Add(-time.Minute)}
	if err := storage.CreateJSON(t.Context(), r.bucket, layout.LeaseKey(spec.ID, 1), stale); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { _, errs[i] = r.orchestrator().Run(t.Context(), spec, orchestrator.RunOptions{}) })
	}
	wg.Wait()
	ran := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ran++
		case !errors.Is(err, jobstore.ErrAlreadyRunning):
			t.Fatalf("Run: %v", err)
		}
	}
	if ran < 1 || r.executes.Load() != 2 || r.stitches.Load() != 1 {
		t.Errorf("%d runs went ahead, %d chunks rendered, %d stitches; want the job rendered and stitched once", ran, r.executes.Load(), r.stitches.Load())
	}
}

// A cancel that arrives after the last chunk still stops the stitch.
func TestCancelAfterRenderingStopsStitch(t *testing.T) {
	r := newRig(t)
	spec := r.prepare(specJSON(t, testkit.NativeSpec("late-cancel", 10, 5)), "")
	r.afterExecute = func(n int32) {
		if n == 2 {
			if err := r.jobs().Cancel(t.Context(), spec.ID); err != nil {
				t.Error(err)
			}
		}
	}
	st := r.run(spec)
	if st.State != job.StateCancelled || r.stitches.Load() != 0 {
		t.Errorf("state %s, %d stitches; want cancelled and none", st.State, r.stitches.Load())
	}
}

// The stitch of an interrupted run may still finish (a remote stitcher
// outlives its caller): a resume that finds its fresh lock waits for that
// output instead of stitching a second time.
func TestResumeWaitsForAnInFlightStitch(t *testing.T) {
	r := newRig(t)
	spec := r.prepare(specJSON(t, testkit.NativeSpec("in-flight", 10, 5)), "")
	if err := storage.CreateJSON(t.Context(), r.bucket, layout.StitchLockKey(spec.ID), map[string]any{"createdAt": time.Now().UTC(), "run": 1}); err != nil {
		t.Fatal(err)
	}
	r.afterExecute = func(n int32) {
		if n == 2 { // the orphaned stitcher publishes a little later
			time.AfterFunc(300*time.Millisecond, func() {
				if err := r.bucket.WriteAll(context.Background(), spec.Output, []byte("stitched elsewhere"), nil); err != nil {
					t.Error(err)
				}
			})
		}
	}
	st := r.run(spec)
	if st.State != job.StateDone || r.stitches.Load() != 0 {
		t.Errorf("state %s after %d stitches; want done without stitching again", st.State, r.stitches.Load())
	}
	if r.exists(layout.StitchLockKey(spec.ID)) {
		t.Error("stitch lock left after the job is done")
	}
}

// Markers that do not describe a planned chunk of the job — one for a chunk
// past the plan, one naming another job's video as its segment — are
// logged and removed, never trusted and never fatal: the job renders every
// chunk and stitches frame-exact.
func TestStrayMarkersAreIgnored(t *testing.T) {
	r := newRig(t)
	spec := r.prepare(specJSON(t, testkit.NativeSpec("stray", 10, 5)), "")
	strays := map[string]job.WorkerResult{
		layout.MarkerKey("stray", 7): {JobID: "stray", Chunk: job.Chunk{Index: 7, Start: 35, Count: 5}, SegmentKey: layout.SegmentKey("stray", 7, 1, 1, "mp4"), Frames: 5},
		layout.MarkerKey("stray", 0): {JobID: "stray", Chunk: job.Chunk{Index: 0, Start: 0, Count: 5}, SegmentKey: "renders/victim/output.mp4", Frames: 5},
	}
	for key, m := range strays {
		if err := storage.CreateJSON(t.Context(), r.bucket, key, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.bucket.WriteAll(t.Context(), layout.MarkerKey("stray", 1), []byte("not json"), nil); err != nil {
		t.Fatal(err)
	}
	st := r.run(spec)
	if r.executes.Load() != 2 {
		t.Errorf("%d chunks rendered, want both (no stray marker counts)", r.executes.Load())
	}
	testkit.AssertFrameExact(t, r.output(st), testkit.SinglePass(t, t.TempDir(), 10))
	if ok, _ := r.bucket.Exists(t.Context(), layout.MarkerKey("stray", 7)); ok {
		t.Error("the marker past the plan is still there")
	}
}
