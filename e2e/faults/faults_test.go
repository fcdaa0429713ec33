// Package faults is the fault-injection suite: one job per case through the
// real pipeline (orchestrator, local adapter, confined worker, stitcher) on
// an S3-compatible bucket, with a fault injected into storage, the
// transport, the worker or the orchestrator. Every case must end in a
// frame-exact video or a failed status that names the cause — never a
// partial or wrong video. The suite prints a table of cases and outcomes.
//
//	make test-faults            the suite alone, verbose
package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/awslocal"
	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/adapter"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/pipeline"
	"github.com/helios-project/infrastructure/pkg/sandbox"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// outcomes collects one row per case for the table TestMain prints.
var outcomes struct {
	sync.Mutex
	rows [][3]string
}

func record(name, want, got string) {
	outcomes.Lock()
	defer outcomes.Unlock()
	outcomes.rows = append(outcomes.rows, [3]string{name, want, got})
}

func TestMain(m *testing.M) {
	sandbox.Main() // the worker confines its commands by re-executing this binary
	code := m.Run()
	if len(outcomes.rows) > 0 {
		w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CASE\tEXPECTED\tOUTCOME")
		for _, r := range outcomes.rows {
			fmt.Fprintf(w, "%s\t%s\t%s\n", r[0], r[1], r[2])
		}
		w.Flush()
	}
	os.Exit(code)
}

// faultyStorage fronts the S3 server: a share of calls fail with 503
// SlowDown (S3's throttling answer) and every call waits up to maxDelay.
type faultyStorage struct {
	next     http.Handler
	failRate float64
	maxDelay time.Duration
	calls    atomic.Int64
	failed   atomic.Int64
}

func (f *faultyStorage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	if f.maxDelay > 0 {
		time.Sleep(time.Duration(rand.Int64N(int64(f.maxDelay))))
	}
	if rand.Float64() < f.failRate {
		f.failed.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`)
		return
	}
	f.next.ServeHTTP(w, r)
}

// faultyDriver wraps the local transport: before, if set, may refuse an
// invocation or change its context; after sees each answer.
type faultyDriver struct {
	inner  adapter.Driver
	before func(ctx context.Context, fn adapter.Function, n int64) (context.Context, error)
	after  func(fn adapter.Function, err error)
	calls  [2]atomic.Int64 // worker, stitcher
}

func (d *faultyDriver) Invoke(ctx context.Context, fn adapter.Function, payload []byte) ([]byte, error) {
	i := 0
	if fn == adapter.Stitcher {
		i = 1
	}
	n := d.calls[i].Add(1)
	if d.before != nil {
		var err error
		if ctx, err = d.before(ctx, fn, n); err != nil {
			return nil, err
		}
	}
	out, err := d.inner.Invoke(ctx, fn, payload)
	if d.after != nil {
		d.after(fn, err)
	}
	return out, err
}

// rig is one pipeline on a (possibly faulty) S3 bucket.
type rig struct {
	t      *testing.T
	bucket *blob.Bucket
	url    string // the bucket's storage URL, through the faulty front
	store  *faultyStorage
	driver *faultyDriver
	orch   *orchestrator.Orchestrator
}

func newRig(t *testing.T, store *faultyStorage) *rig {
	t.Helper()
	testkit.RequireFFmpeg(t)
	s3, err := awslocal.StartS3("faults")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s3.Close)
	for k, v := range awslocal.CredentialsEnv() {
		t.Setenv(k, v)
	}
	target, _ := url.Parse(s3.Endpoint)
	if store == nil {
		store = &faultyStorage{}
	}
	store.next = httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(store)
	t.Cleanup(front.Close)
	q := url.Values{"endpoint": {front.URL}, "region": {awslocal.Region}, "use_path_style": {"true"}}
	bucketURL := "s3://faults?" + q.Encode()
	b := testkit.Bucket(t, bucketURL)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Config{Allowed: job.Allowlist{"ffmpeg"}, Concurrency: 3, StatusInterval: 50 * time.Millisecond, StitchTimeout: 5 * time.Second}
	stack := pipeline.New(b, cfg, log)
	w, err := stack.Worker()
	if err != nil {
		t.Fatal(err)
	}
	d := &faultyDriver{inner: adapter.NewLocal(w, stack.Stitcher(), 3)}
	return &rig{t: t, bucket: b, url: bucketURL, store: store, driver: d, orch: stack.OrchestratorWith(adapter.New(d))}
}

// upload puts a spec of total frames in chunks at jobs/<id>.json.
func (r *rig) upload(id string, total, perChunk int) {
	r.t.Helper()
	r.uploadSpec(testkit.NativeSpec(id, total, perChunk))
}

// uploadSpec puts spec at jobs/<id>.json, with quick retries.
func (r *rig) uploadSpec(spec *job.Spec) {
	r.t.Helper()
	id := spec.ID
	spec.Retry = job.RetryPolicy{MaxAttempts: 4, InitialBackoff: job.Duration{Duration: 20 * time.Millisecond}, MaxBackoff: job.Duration{Duration: 100 * time.Millisecond}}
	spec.Normalize()
	data, _ := spec.Canonical()
	for {
		err := r.bucket.WriteAll(r.t.Context(), layout.JobKey(id), data, nil)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "SlowDown") && !strings.Contains(err.Error(), "503") {
			r.t.Fatal(err)
		}
	}
}

// run runs (or resumes) the uploaded job, riding out what a platform would
// retry: an orchestrator that stopped is started again, as the sweep does.
func (r *rig) run(ctx context.Context, id string) (*job.Status, error) {
	return r.orch.RunKey(ctx, layout.JobKey(id), orchestrator.RunOptions{})
}

// verdict checks the end of a case: a video that is frame-exact, or a
// failed status naming the cause (want) with no video.
func (r *rig) verdict(name, expected string, st *job.Status, total int, cause string) {
	r.t.Helper()
	switch {
	case st == nil:
		record(name, expected, "WRONG: no status")
		r.t.Fatalf("%s: no status", name)
	case st.State == job.StateDone:
		path := filepath.Join(r.t.TempDir(), "out.mp4")
		if _, err := storage.DownloadFile(r.t.Context(), r.bucket, st.Output, path); err != nil {
			record(name, expected, "WRONG: "+err.Error())
			r.t.Fatal(err)
		}
		testkit.AssertFrameExact(r.t, path, testkit.SinglePass(r.t, r.t.TempDir(), total))
		record(name, expected, fmt.Sprintf("done, frame-exact (%d frames)", total))
	case st.State == job.StateFailed && st.Error != nil && strings.Contains(st.Error.Error(), cause) && cause != "":
		if ok, _ := r.bucket.Exists(r.t.Context(), st.Output); ok && st.Output != "" {
			record(name, expected, "WRONG: failed but published a video")
			r.t.Fatal("failed job published a video")
		}
		record(name, expected, "failed: "+firstLine(st.Error.Error()))
	default:
		record(name, expected, fmt.Sprintf("WRONG: %s %v", st.State, st.Error))
		r.t.Fatalf("%s: state %s, error %v", name, st.State, st.Error)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 90 {
		s = s[:90] + "…"
	}
	return s
}

// untilFinal runs the job again after every stop of its orchestrator, up to
// a few times, as the platform's retries and the sweep would.
func (r *rig) untilFinal(id string) *job.Status {
	r.t.Helper()
	for range 5 {
		st, err := r.run(r.t.Context(), id)
		if err == nil && st.State.Final() {
			return st
		}
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, jobstore.ErrAlreadyRunning) {
			r.t.Logf("run: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, _ := jobstore.New(r.bucket, nil, nil).Status(r.t.Context(), id)
	return st
}

func TestStorageFailsAndIsSlow(t *testing.T) {
	r := newRig(t, &faultyStorage{failRate: 0.08, maxDelay: 30 * time.Millisecond})
	r.upload("flaky-storage", 24, 6)
	st := r.untilFinal("flaky-storage")
	r.verdict(fmt.Sprintf("storage: 8%% of calls 503, up to 30 ms each (%d of %d failed)", r.store.failed.Load(), r.store.calls.Load()),
		"frame-exact", st, 24, "storage")
}

func TestThrottlingBurst(t *testing.T) {
	r := newRig(t, nil)
	r.driver.before = func(ctx context.Context, fn adapter.Function, n int64) (context.Context, error) {
		if fn == adapter.Worker && n <= 6 {
			return ctx, joberr.Errorf(joberr.Retryable, joberr.CodeThrottled, "injected throttle %d", n)
		}
		return ctx, nil
	}
	r.upload("throttled", 20, 5)
	st := r.untilFinal("throttled")
	for _, c := range st.Chunks {
		if c.Attempts != 1 {
			t.Errorf("chunk %d: %d attempts; throttling spends none", c.Index, c.Attempts)
		}
	}
	r.verdict("transport: the first 6 worker invocations throttled", "frame-exact", st, 20, "throttled")
}

func TestWorkerKilledMidChunk(t *testing.T) {
	r := newRig(t, nil)
	r.driver.before = func(ctx context.Context, fn adapter.Function, n int64) (context.Context, error) {
		if fn == adapter.Worker && n <= 2 {
			// The worker dies 150 ms into the chunk: its command tree is
			// killed, the invocation is lost.
			ctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
			_ = cancel
			return ctx, nil
		}
		return ctx, nil
	}
	r.upload("killed-worker", 20, 5)
	st := r.untilFinal("killed-worker")
	r.verdict("worker: 2 chunks killed mid-render", "frame-exact", st, 20, "")
}

// The command itself killed with SIGKILL in the middle of its chunk (an
// out-of-memory kill): the attempt fails, the chunk is rendered again.
func TestCommandKilledMidChunk(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // the work dirs, where the commands run
	r := newRig(t, nil)
	spec := testkit.NativeSpec("killed-command", 30, 10)
	vf := slices.Index(spec.Args, "-vf") + 1
	spec.Args[vf] += ",realtime" // a third of a second a chunk
	r.uploadSpec(spec)
	var killed atomic.Int64
	r.driver.before = func(ctx context.Context, fn adapter.Function, n int64) (context.Context, error) {
		if fn == adapter.Worker && n == 1 {
			// Kill the commands running as soon as there are some (each runs
			// for a third of a second), whatever the machine's load.
			go func() {
				for deadline := time.Now().Add(10 * time.Second); killed.Load() == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					for _, pid := range processesUnder(tmp) {
						if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "ffmpeg" {
							if syscall.Kill(pid, syscall.SIGKILL) == nil {
								killed.Add(1)
							}
						}
					}
				}
			}()
		}
		return ctx, nil
	}
	st := r.untilFinal(spec.ID)
	if killed.Load() == 0 {
		t.Fatal("no command was found running to kill")
	}
	retried := 0
	for _, c := range st.Chunks {
		if c.Attempts > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Error("no chunk was rendered again after its command was killed")
	}
	r.verdict(fmt.Sprintf("worker: %d running ffmpeg SIGKILLed mid-chunk (%d chunks rendered again)", killed.Load(), retried), "frame-exact", st, 30, "")
}

func TestSameUploadThreeTimesOutOfOrder(t *testing.T) {
	r := newRig(t, nil)
	r.upload("dup", 20, 5)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { _, _ = r.run(t.Context(), "dup") })
	}
	wg.Wait()
	st := r.untilFinal("dup") // the late, out-of-order delivery
	if n := r.driver.calls[0].Load(); n != 4 {
		t.Errorf("%d worker invocations for 4 chunks", n)
	}
	if n := r.driver.calls[1].Load(); n != 1 {
		t.Errorf("%d stitches", n)
	}
	r.verdict(fmt.Sprintf("events: one upload delivered 3× at once, then late (%d renders, %d stitch)", r.driver.calls[0].Load(), r.driver.calls[1].Load()),
		"frame-exact", st, 20, "")
}

// The orchestrator stopped at a point of its life, then started again.
func TestOrchestratorKilled(t *testing.T) {
	cases := []struct {
		name string
		at   func(stop context.CancelFunc) (before func(context.Context, adapter.Function, int64) (context.Context, error), after func(adapter.Function, error))
	}{
		{"during dispatch (after 2 chunks)", func(stop context.CancelFunc) (func(context.Context, adapter.Function, int64) (context.Context, error), func(adapter.Function, error)) {
			return nil, func(fn adapter.Function, err error) {
				if fn == adapter.Worker && err == nil {
					stop()
				}
			}
		}},
		{"during the stitch", func(stop context.CancelFunc) (func(context.Context, adapter.Function, int64) (context.Context, error), func(adapter.Function, error)) {
			return func(ctx context.Context, fn adapter.Function, n int64) (context.Context, error) {
				if fn == adapter.Stitcher && n == 1 {
					stop()
				}
				return ctx, nil
			}, nil
		}},
		{"between the output and its status", func(stop context.CancelFunc) (func(context.Context, adapter.Function, int64) (context.Context, error), func(adapter.Function, error)) {
			return nil, func(fn adapter.Function, err error) {
				if fn == adapter.Stitcher && err == nil {
					stop()
				}
			}
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, nil)
			id := fmt.Sprintf("killed-orchestrator-%d", i)
			r.upload(id, 20, 5)
			ctx, stop := context.WithCancel(t.Context())
			var once sync.Once
			r.driver.before, r.driver.after = c.at(func() { once.Do(stop) })
			first, err := r.run(ctx, id)
			r.driver.before, r.driver.after = nil, nil
			if err == nil && first.State.Final() && first.State != job.StateDone {
				t.Fatalf("the first run ended %s", first.State)
			}
			time.Sleep(50 * time.Millisecond)
			st := r.untilFinal(id)
			r.verdict("orchestrator: stopped "+c.name+", then resumed", "frame-exact", st, 20, "")
		})
	}
}

// A segment damaged after its worker checked it: the stitcher refuses it
// naming the chunk, and the orchestrator renders that chunk again and
// stitches a frame-exact video. A segment damaged again after that fails
// the job naming the chunk; no video is published.
func TestDamagedSegment(t *testing.T) {
	cases := []struct {
		damage string
		every  bool // damage it before every stitch, not only the first
	}{{"truncated", false}, {"corrupted", false}, {"corrupted", true}}
	for _, c := range cases {
		name := "segment " + c.damage + " before the stitch"
		if c.every {
			name = "segment " + c.damage + " before every stitch"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, nil)
			id := "segment-" + c.damage
			r.upload(id, 20, 5)
			r.driver.before = func(ctx context.Context, fn adapter.Function, n int64) (context.Context, error) {
				if fn != adapter.Stitcher || (n > 1 && !c.every) {
					return ctx, nil
				}
				return ctx, damageSegment(ctx, r.bucket, id, 2, c.damage)
			}
			st := r.untilFinal(id)
			if c.every {
				r.verdict(name, "failed, naming chunk 2", st, 20, "chunk 2")
				return
			}
			if n := r.driver.calls[0].Load(); n != 5 {
				t.Errorf("%d worker invocations; want the 4 chunks and chunk 2 again", n)
			}
			if a := st.Chunks[2].Attempts; a != 2 {
				t.Errorf("chunk 2: %d attempts, want 2", a)
			}
			r.verdict(fmt.Sprintf("%s (%d renders for 4 chunks, %d stitches)", name, r.driver.calls[0].Load(), r.driver.calls[1].Load()), "frame-exact", st, 20, "")
		})
	}
}

// damageSegment truncates or corrupts (same size) the segment chunk i's
// marker names.
func damageSegment(ctx context.Context, b *blob.Bucket, id string, i int, damage string) error {
	var m job.WorkerResult
	if err := storage.ReadJSON(ctx, b, layout.MarkerKey(id, i), &m); err != nil {
		return err
	}
	data, err := b.ReadAll(ctx, m.SegmentKey)
	if err != nil {
		return err
	}
	if damage == "truncated" {
		data = data[:len(data)/2]
	} else {
		for i := len(data) / 3; i < len(data)/3+4096 && i < len(data); i++ {
			data[i] = 0
		}
	}
	return b.WriteAll(ctx, m.SegmentKey, data, nil)
}
