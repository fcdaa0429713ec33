package trigger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/trigger"
)

// fakeOrch records what the triggers ask of the orchestrator. The real
// orchestrator's behaviour is covered end to end in e2e/ and
// pkg/orchestrator; here the question is only what each event turns into.
type fakeOrch struct {
	*orchestrator.Orchestrator
	mu   sync.Mutex
	keys []string
	ids  []string
	err  error
	hook func(ctx context.Context) // sees the context of each run
}

func (f *fakeOrch) RunKey(ctx context.Context, key string, _ orchestrator.RunOptions) (*job.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, key)
	if f.hook != nil {
		f.hook(ctx)
	}
	return &job.Status{State: job.StateDone}, f.err
}

func (f *fakeOrch) Resume(ctx context.Context, id string, _ orchestrator.RunOptions) (*job.Status, error) {
	f.ids = append(f.ids, id)
	if f.hook != nil {
		f.hook(ctx)
	}
	return &job.Status{JobID: id, State: job.StateDone}, f.err
}

func newHandler(t *testing.T) (*trigger.Handler, *fakeOrch) {
	t.Helper()
	b := testkit.Bucket(t, "mem://")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	jobs := jobstore.New(b, nil, log)
	f := &fakeOrch{Orchestrator: orchestrator.New(jobs, nil, nil, orchestrator.Config{}, log)}
	return &trigger.Handler{Orch: f, Jobs: jobs, BucketName: "renders", Log: log, MaxBody: 4096}, f
}

func invoke(t *testing.T, h *trigger.Handler, ev any) ([]byte, *joberr.Error) {
	t.Helper()
	payload, _ := json.Marshal(ev)
	out, err := h.Lambda().Invoke(t.Context(), payload)
	if err != nil {
		var fe messages.InvokeResponse_Error
		if !errors.As(err, &fe) {
			t.Fatalf("Invoke: %v", err)
		}
		return nil, joberr.DecodeFunctionError(fe.Type, fe.Message)
	}
	return out, nil
}

func record(bucket, name, key string) events.S3EventRecord {
	var r events.S3EventRecord
	r.EventSource, r.EventName = "aws:s3", name
	r.S3.Bucket.Name, r.S3.Object.Key = bucket, key
	return r
}

func TestS3Event(t *testing.T) {
	h, f := newHandler(t)
	ev := events.S3Event{Records: []events.S3EventRecord{
		record("renders", "ObjectCreated:Put", "jobs/my%2Dfilm_1.json"), // form-encoded "jobs/my-film_1.json"
		record("renders", "ObjectCreated:Put", "jobs/my+film.json"),     // "my film": not a valid id
		record("renders", "ObjectCreated:CompleteMultipartUpload", "jobs/b.json"),
		record("renders", "ObjectRemoved:Delete", "jobs/c.json"),
		record("other", "ObjectCreated:Put", "jobs/d.json"),
		record("renders", "ObjectCreated:Put", "renders/e/output.mp4"),
		record("renders", "ObjectCreated:Put", "jobs/f.txt"),
	}}
	out, e := invoke(t, h, ev)
	if e != nil {
		t.Fatal(e)
	}
	if got := strings.Join(slices.Sorted(slices.Values(f.keys)), ","); got != "jobs/b.json,jobs/my-film_1.json" {
		t.Errorf("ran %s", got)
	}
	if n := strings.Count(string(out), "ignored"); n != 5 || !strings.Contains(string(out), `"jobs/my film.json"`) {
		t.Errorf("%d records ignored, want 5 (keys decoded): %s", n, out)
	}
	if !strings.Contains(string(out), layout.IDRule) {
		t.Errorf("the invalid id's note does not state the rule %q: %s", layout.IDRule, out)
	}
}

func TestS3EventErrors(t *testing.T) {
	h, f := newHandler(t)
	ev := events.S3Event{Records: []events.S3EventRecord{record("renders", "ObjectCreated:Put", "jobs/a.json")}}

	f.err = &joberr.ValidationError{Problems: []joberr.Problem{{Path: "metadata.fps", Message: "must be greater than 0"}}}
	if _, e := invoke(t, h, ev); e == nil || e.Kind != joberr.Permanent || !strings.Contains(e.Message, "metadata.fps") {
		t.Errorf("invalid spec: %v, want a permanent error naming the field", e)
	}
	f.err = jobstore.ErrAlreadyRunning
	if out, e := invoke(t, h, ev); e != nil || !strings.Contains(string(out), "duplicate event") {
		t.Errorf("duplicate event: %s %v, want success", out, e)
	}
	// The run that wrote the final status may hold the lease a moment
	// longer: a redelivery then reports the job done, not running.
	if err := h.Jobs.WriteStatus(t.Context(), &job.Status{JobID: "a", State: job.StateDone}); err != nil {
		t.Fatal(err)
	}
	if out, e := invoke(t, h, ev); e != nil || !strings.Contains(string(out), `"state":"done"`) || strings.Contains(string(out), "duplicate") {
		t.Errorf("redelivery of a done job whose lease is still held: %s %v, want state done", out, e)
	}
	f.err = errors.New("S3 is down")
	if _, e := invoke(t, h, ev); e == nil || !e.Retryable() {
		t.Errorf("storage failure: %v, want retryable (the platform retries the event)", e)
	}
}

func TestDirectInvoke(t *testing.T) {
	h, f := newHandler(t)
	if _, e := invoke(t, h, map[string]string{"jobId": "abc"}); e != nil || len(f.ids) != 1 || f.ids[0] != "abc" {
		t.Errorf("resume: %v %v", f.ids, e)
	}
	if _, e := invoke(t, h, map[string]string{"key": "jobs/x.json"}); e != nil || f.keys[0] != "jobs/x.json" {
		t.Errorf("run key: %v %v", f.keys, e)
	}
	if _, e := invoke(t, h, map[string]string{"jobId": "a", "key": "jobs/a.json"}); e == nil || e.Kind != joberr.Permanent {
		t.Errorf("both: %v", e)
	}
	for _, bad := range []any{map[string]int{"x": 1}, []int{1}, "str"} {
		if _, e := invoke(t, h, bad); e == nil || e.Kind != joberr.Permanent {
			t.Errorf("%v: %v, want a permanent error", bad, e)
		}
	}
}

func TestAPI(t *testing.T) {
	h, _ := newHandler(t)
	srv := httptest.NewServer(h.API())
	defer srv.Close()
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	valid := `{"metadata":{"totalFrames":10,"fps":10,"width":8,"height":8},"command":"ffmpeg","args":["{output}"],"framesPerChunk":5}`
	code, body := do("POST", "/jobs", valid)
	var acc trigger.Accepted
	json.Unmarshal([]byte(body), &acc)
	if code != 202 || acc.JobID == "" || acc.SpecKey != layout.JobKey(acc.JobID) {
		t.Fatalf("POST = %d %s", code, body)
	}
	if ok, _ := h.Jobs.Bucket().Exists(t.Context(), acc.SpecKey); !ok {
		t.Error("POST did not write the spec")
	}
	if code, body = do("GET", "/jobs/"+acc.JobID, ""); code != 200 || !strings.Contains(body, `"pending"`) {
		t.Errorf("GET submitted = %d %s", code, body)
	}
	named := strings.Replace(valid, "{", `{"id":"named",`, 1)
	if code, _ = do("POST", "/jobs", named); code != 202 {
		t.Errorf("POST named = %d", code)
	}
	if code, _ = do("POST", "/jobs", named); code != 202 {
		t.Errorf("POST the same spec again = %d, want 202 (idempotent)", code)
	}
	if code, body = do("POST", "/jobs", strings.Replace(named, `"framesPerChunk":5`, `"framesPerChunk":2`, 1)); code != 409 {
		t.Errorf("POST a different spec under a taken id = %d %s, want 409", code, body)
	}
	if code, body = do("POST", "/jobs", strings.Repeat(" ", 5000)); code != 413 {
		t.Errorf("POST too large = %d %s", code, body)
	}
	if code, body = do("DELETE", "/jobs/named", ""); code != 202 {
		t.Errorf("DELETE = %d %s", code, body)
	}
	if err := h.Jobs.WriteStatus(t.Context(), &job.Status{JobID: "named", State: job.StateDone}); err != nil {
		t.Fatal(err)
	}
	if code, body = do("DELETE", "/jobs/named", ""); code != 409 || !strings.Contains(body, "nothing to cancel") {
		t.Errorf("DELETE of a done job = %d %s, want 409", code, body)
	}
	if code, _ = do("PUT", "/jobs/named", ""); code != 404 && code != 405 {
		t.Errorf("PUT = %d", code)
	}
}

// blockingOrch runs until its context ends, like a job longer than the
// function's time limit.
type blockingOrch struct{ *fakeOrch }

func (b *blockingOrch) RunKey(ctx context.Context, key string, _ orchestrator.RunOptions) (*job.Status, error) {
	<-ctx.Done()
	id, _ := layout.JobIDFromKey(key)
	return &job.Status{JobID: id, State: job.StateRunning}, fmt.Errorf("job interrupted: %w", ctx.Err())
}

// A run stops Margin before the function's deadline and fails retryably,
// so the platform's retry of the event resumes it.
func TestStopsBeforeTheDeadline(t *testing.T) {
	h, f := newHandler(t)
	h.Orch, h.Margin = &blockingOrch{fakeOrch: f}, 2*time.Second
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	payload, _ := json.Marshal(events.S3Event{Records: []events.S3EventRecord{record("renders", "ObjectCreated:Put", "jobs/long.json")}})
	start := time.Now()
	_, err := h.Lambda().Invoke(ctx, payload)
	var fe messages.InvokeResponse_Error
	if !errors.As(err, &fe) || !joberr.DecodeFunctionError(fe.Type, fe.Message).Retryable() {
		t.Fatalf("Invoke = %v, want a retryable function error", err)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("returned after %s, later than the margin before the 3s deadline", d)
	}
}

// With Continue, a run stopped by the margin is handed to a new invocation
// and this one succeeds.
func TestContinuesInANewInvocation(t *testing.T) {
	h, f := newHandler(t)
	var continued []string
	h.Orch, h.Margin = &blockingOrch{fakeOrch: f}, 2*time.Second
	h.Continue = func(ctx context.Context, in trigger.Invoke) error {
		continued = append(continued, in.JobID)
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	payload, _ := json.Marshal(events.S3Event{Records: []events.S3EventRecord{record("renders", "ObjectCreated:Put", "jobs/long.json")}})
	out, err := h.Lambda().Invoke(ctx, payload)
	if err != nil || !strings.Contains(string(out), "continuing in a new invocation") {
		t.Fatalf("Invoke = %s, %v", out, err)
	}
	if len(continued) != 1 || continued[0] != "long" {
		t.Errorf("continued %v, want [long]", continued)
	}
}

// A resume that finds the lease still held fails retryably, so the platform
// tries again once it has run out; a run taken over is no failure.
func TestDirectWhileLeaseHeld(t *testing.T) {
	h, f := newHandler(t)
	f.err = jobstore.ErrAlreadyRunning
	if _, e := invoke(t, h, map[string]string{"jobId": "busy"}); e == nil || !e.Retryable() {
		t.Errorf("resume while held: %v, want a retryable error", e)
	}
	f.err = jobstore.ErrLeaseLost
	if _, e := invoke(t, h, map[string]string{"jobId": "busy"}); e != nil {
		t.Errorf("resume taken over: %v, want success", e)
	}
}

// Whatever delivers it, an event that finds the lease held by a run that
// has already written its final status reports the job done: a resume on
// Lambda is not failed for the platform to retry, a resume over HTTP does
// not wait for the lease to run out.
func TestHeldButDone(t *testing.T) {
	h, f := newHandler(t)
	f.err = jobstore.ErrAlreadyRunning
	if err := h.Jobs.WriteStatus(t.Context(), &job.Status{JobID: "finished", State: job.StateDone}); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []map[string]string{{"jobId": "finished"}, {"key": "jobs/finished.json"}} {
		if out, e := invoke(t, h, ev); e != nil || !strings.Contains(string(out), `"state":"done"`) {
			t.Errorf("Lambda %v while the lease is held: %s %v, want the status, done", ev, out, e)
		}
	}
	h.ResumeWait = time.Minute
	start := time.Now()
	code, body := post(t, h.HTTP(), nil, []byte(`{"jobId":"finished"}`))
	if code != http.StatusOK || !strings.Contains(body, `"state": "done"`) {
		t.Errorf("HTTP resume while the lease is held: %d %s, want state done", code, body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("HTTP resume of a done job waited %s for the lease", d)
	}
}
