package orchestrator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// The run's states with fake workers and stitcher on a mem:// bucket: no
// ffmpeg, no processes, each test well under a second. (e2e_test.go runs
// the same paths through the real worker and stitcher.)

// fakeWorkers render a chunk as a worker does, without a command: a
// segment of a few bytes naming the chunk, and a completion marker created
// if not exists. fail, if set, decides an attempt's error (nil: succeed).
type fakeWorkers struct {
	bucket   *blob.Bucket
	fail     func(ctx context.Context, w job.WorkerJob) error
	requests job.RequestCounts // reported by every attempt that succeeds

	mu    sync.Mutex
	calls map[int]int // attempts invoked per chunk
}

func (f *fakeWorkers) Execute(ctx context.Context, w job.WorkerJob) (job.WorkerResult, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[int]int{}
	}
	f.calls[w.Chunk.Index]++
	f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(ctx, w); err != nil {
			return job.WorkerResult{}, err
		}
	}
	key := layout.SegmentKey(w.JobID, w.Chunk.Index, w.Run, w.Attempt, "mp4")
	data := fmt.Appendf(nil, "chunk %d frames %d-%d\n", w.Chunk.Index, w.Chunk.Start, w.Chunk.Start+w.Chunk.Count)
	if err := f.bucket.WriteAll(ctx, key, data, nil); err != nil {
		return job.WorkerResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err)
	}
	res := job.WorkerResult{JobID: w.JobID, Chunk: w.Chunk, Attempt: w.Attempt, SegmentKey: key, Bytes: int64(len(data)), Frames: w.Chunk.Count, Winner: true}
	if err := storage.CreateJSON(ctx, f.bucket, layout.MarkerKey(w.JobID, w.Chunk.Index), res); errors.Is(err, storage.ErrExists) {
		res.Winner = false
		err = storage.ReadJSON(ctx, f.bucket, layout.MarkerKey(w.JobID, w.Chunk.Index), &res)
		if err != nil {
			return job.WorkerResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err)
		}
	} else if err != nil {
		return job.WorkerResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err)
	}
	res.Requests = f.requests
	return res, nil
}

func (f *fakeWorkers) invoked() (total int, perChunk map[int]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	perChunk = map[int]int{}
	for i, n := range f.calls {
		perChunk[i] = n
		total += n
	}
	return total, perChunk
}

// fakeStitcher joins the segments' bytes into the output, refusing a
// request whose segments are missing. fail, if set, decides a stitch's
// error (nil: stitch).
type fakeStitcher struct {
	bucket *blob.Bucket
	fail   func(ctx context.Context, r job.StitchRequest) error
	calls  atomic.Int32
}

func (f *fakeStitcher) Stitch(ctx context.Context, r job.StitchRequest) (job.StitchResult, error) {
	f.calls.Add(1)
	if f.fail != nil {
		if err := f.fail(ctx, r); err != nil {
			return job.StitchResult{}, err
		}
	}
	var out bytes.Buffer
	for i, seg := range r.Segments {
		data, err := f.bucket.ReadAll(ctx, seg.Key)
		if err != nil {
			return job.StitchResult{}, joberr.Errorf(joberr.Permanent, joberr.CodeMissingOutput, "segment %s: %v", seg.Key, err).WithChunk(i)
		}
		out.Write(data)
	}
	if err := f.bucket.WriteAll(ctx, r.OutputKey, out.Bytes(), nil); err != nil {
		return job.StitchResult{}, joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err)
	}
	return job.StitchResult{OutputKey: r.OutputKey, Frames: r.TotalFrames(), Bytes: int64(out.Len())}, nil
}

// unit is an orchestrator with fakes on a fresh mem:// bucket.
type unit struct {
	t        *testing.T
	bucket   *blob.Bucket
	jobs     *jobstore.Store
	workers  *fakeWorkers
	stitcher *fakeStitcher
	cfg      orchestrator.Config
}

func newUnit(t *testing.T) *unit {
	b := testkit.Bucket(t, "mem://")
	return &unit{
		t: t, bucket: b,
		jobs:     jobstore.New(b, nil, slog.New(slog.DiscardHandler)),
		workers:  &fakeWorkers{bucket: b},
		stitcher: &fakeStitcher{bucket: b},
		cfg: orchestrator.Config{Concurrency: 2, StatusInterval: 5 * time.Millisecond, CancelPollInterval: 5 * time.Millisecond,
			LeaseTTL: 300 * time.Millisecond, StitchTimeout: 5 * time.Second},
	}
}

func (u *unit) orchestrator() *orchestrator.Orchestrator {
	return orchestrator.New(u.jobs, u.workers, u.stitcher, u.cfg, slog.New(slog.DiscardHandler))
}

// spec is a 20-frame job in chunks of 5, with quick retries.
func (u *unit) spec(id string) *job.Spec {
	s := testkit.NativeSpec(id, 20, 5)
	s.Retry = job.RetryPolicy{MaxAttempts: 3, InitialBackoff: job.Duration{Duration: time.Millisecond}, MaxBackoff: job.Duration{Duration: 5 * time.Millisecond}}
	s.Normalize()
	return s
}

func (u *unit) run(ctx context.Context, s *job.Spec, opts orchestrator.RunOptions) (*job.Status, error) {
	return u.orchestrator().Run(ctx, s, opts)
}

// stored is the job's status as written.
func (u *unit) stored(id string) *job.Status {
	u.t.Helper()
	st, err := u.jobs.Status(u.t.Context(), id)
	if err != nil {
		u.t.Fatal(err)
	}
	return st
}

// wantOutput checks the published video is every chunk once, in order.
func (u *unit) wantOutput(s *job.Spec) {
	u.t.Helper()
	got, err := u.bucket.ReadAll(u.t.Context(), s.Output)
	if err != nil {
		u.t.Fatalf("output: %v", err)
	}
	var want strings.Builder
	for _, c := range s.Plan() {
		fmt.Fprintf(&want, "chunk %d frames %d-%d\n", c.Index, c.Start, c.Start+c.Count)
	}
	if string(got) != want.String() {
		u.t.Errorf("output:\n%s\nwant:\n%s", got, want.String())
	}
}

func TestRunLifecycle(t *testing.T) {
	u := newUnit(t)
	s := u.spec("life")
	var states []job.State
	var mu sync.Mutex
	st, err := u.run(t.Context(), s, orchestrator.RunOptions{Progress: func(st job.Status) {
		mu.Lock()
		defer mu.Unlock()
		if len(states) == 0 || states[len(states)-1] != st.State {
			states = append(states, st.State)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != job.StateDone || st.ChunksDone != 4 || st.FramesDone != 20 || st.Output != s.Output {
		t.Fatalf("status %+v", st)
	}
	if want := []job.State{job.StatePending, job.StateRunning, job.StateStitching, job.StateDone}; fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("states %v, want %v", states, want)
	}
	u.wantOutput(s)
	if total, _ := u.workers.invoked(); total != 4 || u.stitcher.calls.Load() != 1 {
		t.Errorf("%d renders, %d stitches", total, u.stitcher.calls.Load())
	}
	if u.stored("life").State != job.StateDone {
		t.Error("the stored status is not done")
	}
	keys, _ := storage.List(t.Context(), u.bucket, layout.ChunksPrefix("life"))
	for _, k := range keys {
		if !strings.HasSuffix(k, ".json") {
			t.Errorf("segment %s left after the stitch", k)
		}
	}
	if len(keys) != 4 {
		t.Errorf("%d markers kept, want 4", len(keys))
	}
	for _, c := range st.Chunks {
		if c.SegmentKey != "" {
			t.Errorf("chunk %d still names its removed segment %s", c.Index, c.SegmentKey)
		}
	}
	for _, key := range []string{layout.ActiveKey("life"), layout.StitchLockKey("life")} {
		if ok, _ := u.bucket.Exists(t.Context(), key); ok {
			t.Errorf("%s left behind", key)
		}
	}

	// A second run of a done job does nothing.
	st, err = u.run(t.Context(), s, orchestrator.RunOptions{})
	if err != nil || st.State != job.StateDone {
		t.Fatalf("second run: %v %+v", err, st)
	}
	if total, _ := u.workers.invoked(); total != 4 || u.stitcher.calls.Load() != 1 {
		t.Errorf("the second run rendered or stitched: %d renders, %d stitches", total, u.stitcher.calls.Load())
	}
}

func TestRunRetries(t *testing.T) {
	cases := []struct {
		name      string
		fail      func(w job.WorkerJob) error // for chunk 1
		wantState job.State
		wantCalls int // of chunk 1
		wantError string
	}{
		{"retryable twice, then fine", failFirst(2, joberr.Retryable, joberr.CodeCommandFailed), job.StateDone, 3, ""},
		{"retryable every time", failFirst(99, joberr.Retryable, joberr.CodeCommandFailed), job.StateFailed, 3, "attempt 3; 3 in this run, the limit"},
		{"permanent", failFirst(99, joberr.Permanent, joberr.CodeNotAllowed), job.StateFailed, 1, "attempt 1, not retryable"},
		{"throttled 5 times: no attempt spent", failFirst(5, joberr.Retryable, joberr.CodeThrottled), job.StateDone, 6, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := newUnit(t)
			u.workers.fail = func(_ context.Context, w job.WorkerJob) error {
				if w.Chunk.Index != 1 {
					return nil
				}
				return c.fail(w)
			}
			s := u.spec("retries")
			st, err := u.run(t.Context(), s, orchestrator.RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.State != c.wantState {
				t.Fatalf("state %s (%v), want %s", st.State, st.Error, c.wantState)
			}
			if _, per := u.workers.invoked(); per[1] != c.wantCalls {
				t.Errorf("chunk 1 invoked %d times, want %d", per[1], c.wantCalls)
			}
			if c.wantError != "" {
				if st.Error == nil || !strings.Contains(st.Error.Message, c.wantError) || st.Error.Chunk == nil || *st.Error.Chunk != 1 {
					t.Errorf("error %+v, want chunk 1 and %q", st.Error, c.wantError)
				}
				if ok, _ := u.bucket.Exists(t.Context(), s.Output); ok {
					t.Error("a failed job published a video")
				}
				return
			}
			if got := st.Chunks[1].Attempts; got != c.wantCalls-throttles(c.name) {
				t.Errorf("chunk 1: %d attempts recorded", got)
			}
			u.wantOutput(s)
		})
	}
}

// failFirst fails the first n attempts of a chunk with kind and code.
func failFirst(n int, kind joberr.Kind, code string) func(job.WorkerJob) error {
	var calls atomic.Int32
	return func(w job.WorkerJob) error {
		if int(calls.Add(1)) <= n {
			return joberr.Errorf(kind, code, "injected %s", code)
		}
		return nil
	}
}

func throttles(name string) int {
	if strings.HasPrefix(name, "throttled") {
		return 5
	}
	return 0
}

// A run stopped by its caller keeps its progress; the next run renders
// only the rest, and attempt numbers go on.
func TestRunResumesWhereItStopped(t *testing.T) {
	u := newUnit(t)
	u.cfg.Concurrency = 1
	s := u.spec("resume")
	ctx, stop := context.WithCancel(t.Context())
	u.workers.fail = func(_ context.Context, w job.WorkerJob) error {
		if w.Chunk.Index == 2 {
			stop() // the caller goes away while chunk 2 renders
			return context.Canceled
		}
		return nil
	}
	st, err := u.run(ctx, s, orchestrator.RunOptions{})
	if !errors.Is(err, context.Canceled) || st == nil || st.State != job.StateRunning || st.ChunksDone != 2 {
		t.Fatalf("first run: %v %+v", err, st)
	}
	if stored := u.stored("resume"); stored.ChunksDone != 2 || stored.State != job.StateRunning {
		t.Errorf("stored progress %+v", stored)
	}
	u.workers.fail = nil
	st, err = u.orchestrator().Resume(t.Context(), "resume", orchestrator.RunOptions{})
	if err != nil || st.State != job.StateDone {
		t.Fatalf("resume: %v %+v", err, st)
	}
	if _, per := u.workers.invoked(); per[0] != 1 || per[1] != 1 || per[2] != 2 || per[3] != 1 {
		t.Errorf("renders per chunk %v: the resume rendered done chunks again", per)
	}
	if st.Chunks[2].Attempts != 1 || st.Chunks[3].Attempts != 1 {
		t.Errorf("attempts of chunks 2 and 3: %d, %d; want 1 each (an attempt abandoned by the stop is not counted)", st.Chunks[2].Attempts, st.Chunks[3].Attempts)
	}
	u.wantOutput(s)
}

func TestRunCancelled(t *testing.T) {
	cases := []struct {
		name   string
		before bool // cancel before the run starts, else while chunk 1 renders
		want   string
	}{
		{"before rendering", true, "cancelled before rendering"},
		{"while rendering", false, "cancelled by request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := newUnit(t)
			s := u.spec("cancelled")
			if c.before {
				if err := u.jobs.Submit(t.Context(), s); err != nil {
					t.Fatal(err)
				}
				if err := u.jobs.Cancel(t.Context(), s.ID); err != nil {
					t.Fatal(err)
				}
			}
			u.workers.fail = func(ctx context.Context, w job.WorkerJob) error {
				if w.Chunk.Index != 1 {
					return nil
				}
				if err := u.jobs.Cancel(ctx, w.JobID); err != nil {
					return err
				}
				<-ctx.Done() // abandoned by the cancel
				return ctx.Err()
			}
			st, err := u.run(t.Context(), s, orchestrator.RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.State != job.StateCancelled || st.Error == nil || st.Error.Message != c.want {
				t.Fatalf("%s %+v", st.State, st.Error)
			}
			if u.stitcher.calls.Load() != 0 {
				t.Error("a cancelled job was stitched")
			}
			if err := u.jobs.Cancel(t.Context(), s.ID); err != nil {
				t.Errorf("cancel again: %v (cancel is idempotent)", err)
			}
		})
	}
}

// One orchestrator at a time: a second run of a job whose lease is held is
// refused, unless it knows the holder is gone (Exclusive).
func TestRunLease(t *testing.T) {
	u := newUnit(t)
	// The first run lives on beside the exclusive one (which in use only
	// takes over from a dead process): until its lease renewal sees the
	// newer generation, a periodic flush of its progress could still land
	// after the exclusive run's final status. Only state changes write here.
	u.cfg.StatusInterval = time.Hour
	s := u.spec("leased")
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	u.workers.fail = func(ctx context.Context, w job.WorkerJob) error {
		once.Do(func() { close(started) })
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	first := make(chan error, 1)
	go func() {
		_, err := u.run(t.Context(), s, orchestrator.RunOptions{})
		first <- err
	}()
	<-started
	if _, err := u.run(t.Context(), s, orchestrator.RunOptions{}); !errors.Is(err, jobstore.ErrAlreadyRunning) {
		t.Fatalf("second run: %v, want ErrAlreadyRunning", err)
	}
	// The exclusive run takes the job over; the first one sees a newer
	// lease generation and stops without writing.
	close(release) // from now on every chunk renders at once
	st, err := u.run(t.Context(), s, orchestrator.RunOptions{Exclusive: true})
	if err != nil || st.State != job.StateDone {
		t.Fatalf("exclusive run: %v %+v", err, st)
	}
	if err := <-first; err != nil && !errors.Is(err, jobstore.ErrLeaseLost) {
		t.Errorf("first run: %v, want nil or ErrLeaseLost", err)
	}
	if got := u.stored("leased"); got.State != job.StateDone {
		t.Errorf("the stored status is not the exclusive run's: %s, %d chunks done, updated %s after the exclusive run's", got.State, got.ChunksDone, got.Timings.UpdatedAt.Sub(st.Timings.UpdatedAt))
	}
}

// A run whose lease another orchestrator took over stops, and writes no
// status of its own: the job is the other's.
func TestRunStopsWhenItsLeaseIsTaken(t *testing.T) {
	u := newUnit(t)
	s := u.spec("taken")
	u.workers.fail = func(ctx context.Context, w job.WorkerJob) error {
		if w.Chunk.Index == 0 {
			// Another orchestrator takes the job over.
			if err := storage.CreateJSON(ctx, u.bucket, layout.LeaseKey(w.JobID, w.Run+1), map[string]any{"owner": "other", "expiresAt": time.Now().Add(time.Hour)}); err != nil {
				return err
			}
		}
		<-ctx.Done()
		return ctx.Err()
	}
	start := time.Now()
	_, err := u.run(t.Context(), s, orchestrator.RunOptions{})
	if !errors.Is(err, jobstore.ErrLeaseLost) {
		t.Fatalf("run: %v, want ErrLeaseLost", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stopped after %s; the lease is checked every %s", d, u.cfg.LeaseTTL/3)
	}
	if st := u.stored("taken"); st.State.Final() {
		t.Errorf("the stopped run wrote a final state %s", st.State)
	}
}

// The stitch lock: a run that finds the lock of an interrupted run waits
// for that stitch's output instead of stitching again; an exclusive run
// knows that stitch is dead and stitches at once.
func TestRunStitchLock(t *testing.T) {
	for _, exclusive := range []bool{false, true} {
		t.Run(fmt.Sprintf("exclusive=%v", exclusive), func(t *testing.T) {
			u := newUnit(t)
			s := u.spec("locked")
			if err := u.jobs.Accept(t.Context(), s); err != nil {
				t.Fatal(err)
			}
			if err := u.jobs.LockStitch(t.Context(), s.ID, 1); err != nil {
				t.Fatal(err)
			}
			if !exclusive {
				// The interrupted run's stitcher finishes a moment later.
				go func() {
					time.Sleep(100 * time.Millisecond)
					u.bucket.WriteAll(context.Background(), s.Output, []byte("stitched by the interrupted run"), nil)
				}()
			}
			st, err := u.run(t.Context(), s, orchestrator.RunOptions{Exclusive: exclusive})
			if err != nil || st.State != job.StateDone {
				t.Fatalf("%v %+v", err, st)
			}
			got, _ := u.bucket.ReadAll(t.Context(), s.Output)
			switch {
			case exclusive && u.stitcher.calls.Load() != 1:
				t.Errorf("exclusive: %d stitches, want 1", u.stitcher.calls.Load())
			case !exclusive && (u.stitcher.calls.Load() != 0 || string(got) != "stitched by the interrupted run"):
				t.Errorf("%d stitches, output %q: the run did not wait for the interrupted stitch", u.stitcher.calls.Load(), got)
			}
		})
	}
}

// A segment the stitcher finds damaged has its chunk rendered again, once.
func TestRunRerendersADamagedSegment(t *testing.T) {
	for _, every := range []bool{false, true} {
		t.Run(fmt.Sprintf("damaged every time=%v", every), func(t *testing.T) {
			u := newUnit(t)
			u.stitcher.fail = func(_ context.Context, r job.StitchRequest) error {
				if every || u.stitcher.calls.Load() == 1 {
					return joberr.Errorf(joberr.Permanent, joberr.CodeFrameMismatch, "segment %s is damaged", r.Segments[2].Key).WithChunk(2)
				}
				return nil
			}
			s := u.spec("damaged")
			st, err := u.run(t.Context(), s, orchestrator.RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, per := u.workers.invoked()
			if per[2] != 2 || per[0] != 1 {
				t.Errorf("renders per chunk %v: want chunk 2 twice, the others once", per)
			}
			if every {
				if st.State != job.StateFailed || st.Error.Chunk == nil || *st.Error.Chunk != 2 {
					t.Errorf("%s %+v, want failed naming chunk 2", st.State, st.Error)
				}
				return
			}
			if st.State != job.StateDone || st.Chunks[2].Attempts != 2 {
				t.Fatalf("%s %+v, chunk 2 attempts %d", st.State, st.Error, st.Chunks[2].Attempts)
			}
			u.wantOutput(s)
		})
	}
}

func TestRunRefusesAnotherSpecUnderTheSameID(t *testing.T) {
	u := newUnit(t)
	s := u.spec("same-id")
	if _, err := u.run(t.Context(), s, orchestrator.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	other := u.spec("same-id")
	other.Env = map[string]string{"X": "1"}
	if _, err := u.run(t.Context(), other, orchestrator.RunOptions{}); !errors.Is(err, jobstore.ErrConflict) {
		t.Fatalf("%v, want ErrConflict", err)
	}
}
