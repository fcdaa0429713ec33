// Package adaptertest is the conformance suite every adapter driver must
// pass, in the manner of gocloud.dev's drivertest. The suite drives a probe
// worker (ProbeWorker) whose behaviour is chosen by the job's command, so a
// remote driver runs the same probe built as its function binary.
package adaptertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/adapter"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
)

// Probe commands.
const (
	ProbeEcho      = "echo"      // succeed, describing the job
	ProbePermanent = "permanent" // fail with a permanent *joberr.Error
	ProbeRetryable = "retryable" // fail with a retryable *joberr.Error (exit code 3)
	ProbeUntyped   = "untyped"   // fail with a plain error
	ProbePanic     = "panic"     // crash
	ProbeBlock     = "block"     // wait for cancellation (at most 5 s)
	ProbeBarrier   = "barrier"   // args: dir, n — succeed once n invocations are in flight together
)

// probeRequests are the storage requests the probe worker reports.
func probeRequests() job.RequestCounts { return job.RequestCounts{Put: 3, Get: 5, List: 1} }

// ProbeWorker is the worker the suite talks to.
func ProbeWorker(ctx context.Context, w job.WorkerJob) (job.WorkerResult, error) {
	echo := job.WorkerResult{
		JobID: w.JobID, Chunk: w.Chunk, Attempt: w.Attempt, SegmentKey: w.SegmentKey(),
		Frames: w.Chunk.Count, Bytes: int64(len(strings.Join(w.Args, " "))), Winner: true,
		Requests: probeRequests(), // the job's cost counts them: they must cross every transport
	}
	switch w.Command {
	case ProbeEcho:
		return echo, nil
	case ProbePermanent:
		e := joberr.Errorf(joberr.Permanent, joberr.CodeNotAllowed, "probe refuses %q", strings.Join(w.Args, " ")).WithChunk(w.Chunk.Index)
		e.StderrTail = "probe: permanent failure\nlast line"
		return job.WorkerResult{}, e
	case ProbeRetryable:
		e := joberr.Errorf(joberr.Retryable, joberr.CodeCommandFailed, "probe exited with status 3").WithChunk(w.Chunk.Index)
		e.ExitCode, e.StderrTail = 3, "probe: transient failure"
		return job.WorkerResult{}, e
	case ProbeUntyped:
		return job.WorkerResult{}, errors.New("probe: untyped failure")
	case ProbePanic:
		panic("probe: crash")
	case ProbeBlock:
		select {
		case <-ctx.Done():
			return job.WorkerResult{}, ctx.Err()
		case <-time.After(5 * time.Second):
			// A remote function keeps running after its caller gives up,
			// as on Lambda; do not hold the instance for long.
			return job.WorkerResult{}, errors.New("probe: block was never cancelled")
		}
	case ProbeBarrier:
		if err := barrier(ctx, w.Args); err != nil {
			return job.WorkerResult{}, joberr.Errorf(joberr.Permanent, joberr.CodeInternal, "%v", err)
		}
		return echo, nil
	}
	return job.WorkerResult{}, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "unknown probe command %q", w.Command)
}

// ProbeStitcher is the stitcher the suite talks to.
func ProbeStitcher(ctx context.Context, r job.StitchRequest) (job.StitchResult, error) {
	return job.StitchResult{OutputKey: r.OutputKey, Frames: r.TotalFrames(), Bytes: int64(len(r.Segments))}, nil
}

// barrier registers this invocation in a directory shared by every instance
// of the function (a file per invocation) and waits until n are there: it
// only succeeds if the transport really runs n invocations at once.
func barrier(ctx context.Context, args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("barrier wants dir, n and a name")
	}
	dir, name := args[0], args[2]
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		if len(entries) >= n {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("barrier: fewer than %d invocations ran at once", n)
}

// Options describe what a driver under test supports.
type Options struct {
	// Concurrency is how many invocations the driver can run at once
	// (at least 2 for the concurrency test to mean anything).
	Concurrency int
}

func probeJob(command string, args ...string) job.WorkerJob {
	return job.WorkerJob{
		JobID: "conformance", Chunk: job.Chunk{Index: 7, Start: 70, Count: 10}, Attempt: 2,
		Command: command, Args: args, OutputFile: "chunk.mp4",
		Env: map[string]string{"TZ": "Europe/Zürich"},
	}
}

// RunConformance runs the suite against adapters made by open, which must
// wire ProbeWorker and ProbeStitcher as the worker and stitcher functions.
func RunConformance(t *testing.T, opts Options, open func(t *testing.T) *adapter.Adapter) {
	checks := []struct {
		name  string
		check func(t *testing.T, a *adapter.Adapter)
	}{
		{"RoundTrip", checkRoundTrip},
		{"StitchRoundTrip", checkStitchRoundTrip},
		{"PermanentError", checkPermanentError},
		{"RetryableError", checkRetryableError},
		{"UntypedErrorIsRetryable", checkUntypedErrorIsRetryable},
		{"CrashIsRetryable", checkCrashIsRetryable},
		{"PayloadTooLarge", checkPayloadTooLarge},
		{"Cancellation", checkCancellation},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.check(t, open(t)) })
	}
	t.Run("Concurrency", func(t *testing.T) { checkConcurrency(t, opts.Concurrency, open) })
}

// checkRoundTrip: a job crosses the transport whole (arguments with quotes
// and non-ASCII, environment), and so does its result, the probe's storage
// requests included.
func checkRoundTrip(t *testing.T, a *adapter.Adapter) {
	w := probeJob(ProbeEcho, "-i", "quote's \"and\" ünicode", "{}")
	got, err := a.Execute(t.Context(), w)
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	want := job.WorkerResult{JobID: w.JobID, Chunk: w.Chunk, Attempt: 2, SegmentKey: w.SegmentKey(),
		Frames: 10, Bytes: int64(len(strings.Join(w.Args, " "))), Winner: true, Requests: probeRequests()}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Execute = %+v, want %+v", got, want)
	}
}

// checkStitchRoundTrip: a stitch request reaches the stitcher and its
// result comes back.
func checkStitchRoundTrip(t *testing.T, a *adapter.Adapter) {
	req := job.StitchRequest{JobID: "conformance", OutputKey: "renders/conformance/output.mp4",
		Segments: []job.Segment{{Key: "a", Frames: 3}, {Key: "b", Frames: 4}}}
	got, err := a.Stitch(t.Context(), req)
	if err != nil {
		t.Fatalf("Stitch: %v", err)
	}
	if got.OutputKey != req.OutputKey || got.Frames != 7 || got.Bytes != 2 {
		t.Errorf("Stitch = %+v", got)
	}
}

// checkPermanentError: a permanent *joberr.Error arrives as one, with its
// stderr tail, chunk and message.
func checkPermanentError(t *testing.T, a *adapter.Adapter) {
	e := wantJobError(t, a, probeJob(ProbePermanent, "rm", "-rf"), joberr.Permanent, joberr.CodeNotAllowed)
	if e.StderrTail != "probe: permanent failure\nlast line" || e.Chunk == nil || *e.Chunk != 7 ||
		!strings.Contains(e.Message, `"rm -rf"`) {
		t.Errorf("error lost detail in transit: %#v", e)
	}
}

// checkRetryableError: a retryable *joberr.Error arrives as one, with its
// exit code and stderr tail.
func checkRetryableError(t *testing.T, a *adapter.Adapter) {
	e := wantJobError(t, a, probeJob(ProbeRetryable), joberr.Retryable, joberr.CodeCommandFailed)
	if e.ExitCode != 3 || e.StderrTail != "probe: transient failure" {
		t.Errorf("error lost detail in transit: %#v", e)
	}
}

// checkUntypedErrorIsRetryable: a plain error is worth another attempt.
func checkUntypedErrorIsRetryable(t *testing.T, a *adapter.Adapter) {
	wantJobError(t, a, probeJob(ProbeUntyped), joberr.Retryable, joberr.CodeInternal)
}

// checkCrashIsRetryable: a worker that crashes is lost, worth another
// attempt.
func checkCrashIsRetryable(t *testing.T, a *adapter.Adapter) {
	wantJobError(t, a, probeJob(ProbePanic), joberr.Retryable, joberr.CodeWorkerLost)
}

// checkPayloadTooLarge: a job over adapter.MaxPayload is refused for good.
func checkPayloadTooLarge(t *testing.T, a *adapter.Adapter) {
	wantJobError(t, a, probeJob(ProbeEcho, strings.Repeat("x", adapter.MaxPayload)), joberr.Permanent, joberr.CodePayloadTooLarge)
}

// checkCancellation: cancelling the context ends an invocation promptly,
// with context.Canceled.
func checkCancellation(t *testing.T, a *adapter.Adapter) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := a.Execute(ctx, probeJob(ProbeBlock))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute after cancel: err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Execute returned %s after cancellation", d)
	}
}

// checkConcurrency: n invocations run at once, each waiting at a barrier
// until all n are in flight. Skipped, with no adapter opened, for a driver
// that runs one at a time.
func checkConcurrency(t *testing.T, n int, open func(t *testing.T) *adapter.Adapter) {
	if n < 2 {
		t.Skip("driver runs one invocation at a time")
	}
	a := open(t)
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = a.Execute(t.Context(), probeJob(ProbeBarrier, dir, strconv.Itoa(n), fmt.Sprintf("call-%d", i)))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("%d concurrent invocations: %v", n, err)
	}
}

func wantJobError(t *testing.T, a *adapter.Adapter, w job.WorkerJob, kind joberr.Kind, code string) *joberr.Error {
	t.Helper()
	_, err := a.Execute(t.Context(), w)
	var e *joberr.Error
	if !errors.As(err, &e) {
		t.Fatalf("Execute(%s): err = %v (%T), want *joberr.Error", w.Command, err, err)
	}
	if e.Kind != kind || e.Code != code {
		t.Fatalf("Execute(%s): error kind/code = %s/%s, want %s/%s (%v)", w.Command, e.Kind, e.Code, kind, code, e)
	}
	return e
}
