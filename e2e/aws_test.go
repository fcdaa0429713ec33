// Package e2e runs the AWS deployment on loopback: the real bootstrap
// binaries under the Lambda Runtime Interface Emulator, invoked through the
// real aws-sdk-go-v2 Lambda client, reading and writing through the real S3
// client against an S3-compatible server. The sample events in events/ are
// the ones used here, so they stay true.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/helios-project/infrastructure/internal/awslocal"
	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

var stack *awslocal.Stack

func TestMain(m *testing.M) {
	os.Exit(testkit.MainWithStack(m, "e2e", func(dir string) (func(), error) {
		var err error
		stack, err = awslocal.StartStack(context.Background(), awslocal.StackOptions{WorkDir: dir, ShortOrchestratorTimeout: 25 * time.Second})
		if err != nil {
			return nil, err
		}
		return stack.Close, nil
	}))
}

func needStack(t *testing.T) {
	t.Helper()
	if stack == nil {
		t.Skip("-short: the emulated AWS stack is not started")
	}
	testkit.RequireFFmpeg(t)
}

// event reads a sample event from events/.
func event(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("events/%s: %v", name, err)
	}
}

// invoke calls a function through the SDK and returns its payload, or the
// function error's message.
func invoke(t *testing.T, fn string, payload any) (out []byte, funcErr string) {
	t.Helper()
	in, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	res, err := stack.Client.Invoke(t.Context(), &lambda.InvokeInput{FunctionName: aws.String(fn), Payload: in})
	if err != nil {
		t.Fatalf("Invoke %s: %v", fn, err)
	}
	if res.FunctionError != nil {
		var doc struct{ ErrorMessage string }
		json.Unmarshal(res.Payload, &doc)
		return res.Payload, doc.ErrorMessage
	}
	return res.Payload, ""
}

// upload puts a spec at jobs/<id>.json, as a user's `aws s3 cp` does.
func upload(t *testing.T, id, spec string) {
	t.Helper()
	if err := stack.Bucket.WriteAll(t.Context(), layout.JobKey(id), []byte(spec), nil); err != nil {
		t.Fatal(err)
	}
}

// s3Event is events/s3-put.json for another key.
func s3Event(t *testing.T, key string) events.S3Event {
	t.Helper()
	var ev events.S3Event
	event(t, "s3-put.json", &ev)
	ev.Records[0].S3.Object.Key = key
	return ev
}

func specJSON(t *testing.T, s *job.Spec) string {
	t.Helper()
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func download(t *testing.T, key string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), filepath.Base(key))
	if _, err := storage.DownloadFile(t.Context(), stack.Bucket, key, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func status(t *testing.T, id string) *job.Status {
	t.Helper()
	st, err := jobstore.New(stack.Bucket, nil, nil).Status(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestS3TriggerFrameExact(t *testing.T) {
	needStack(t)
	workers, stitches := stack.Lambda.Calls(awslocal.WorkerFunction), stack.Lambda.Calls(awslocal.StitcherFunction)
	spec := testkit.NativeSpec("", 43, 10) // id from the key
	upload(t, "s3-frame-exact", specJSON(t, spec))
	out, ferr := invoke(t, awslocal.OrchestratorFunction, s3Event(t, "jobs/s3-frame-exact.json"))
	if ferr != "" {
		t.Fatalf("orchestrator failed: %s", ferr)
	}
	if !strings.Contains(string(out), `"state": "done"`) && !strings.Contains(string(out), `"state":"done"`) {
		t.Errorf("orchestrator answered %s", out)
	}
	st := status(t, "s3-frame-exact")
	if st.State != job.StateDone || st.ChunksDone != 5 {
		t.Fatalf("status %+v", st)
	}
	testkit.AssertFrameExact(t, download(t, st.Output), testkit.SinglePass(t, t.TempDir(), 43))
	if w, s := stack.Lambda.Calls(awslocal.WorkerFunction)-workers, stack.Lambda.Calls(awslocal.StitcherFunction)-stitches; w != 5 || s != 1 {
		t.Errorf("%d worker and %d stitcher invocations, want 5 and 1", w, s)
	}
}

// S3 delivers events at least once: the same upload event twice, at the same
// time, renders every chunk once and stitches once.
func TestDuplicateS3EventRendersOnce(t *testing.T) {
	needStack(t)
	workers, stitches := stack.Lambda.Calls(awslocal.WorkerFunction), stack.Lambda.Calls(awslocal.StitcherFunction)
	upload(t, "dup-event", specJSON(t, testkit.NativeSpec("dup-event", 30, 10)))
	ev := s3Event(t, "jobs/dup-event.json")
	var wg sync.WaitGroup
	errs := make([]string, 2)
	for i := range 2 {
		wg.Go(func() { _, errs[i] = invoke(t, awslocal.OrchestratorFunction, ev) })
	}
	wg.Wait()
	if errs[0] != "" || errs[1] != "" {
		t.Fatalf("orchestrator errors: %q", errs)
	}
	// A late redelivery finds the job done.
	if _, ferr := invoke(t, awslocal.OrchestratorFunction, ev); ferr != "" {
		t.Fatalf("redelivery: %s", ferr)
	}
	if w, s := stack.Lambda.Calls(awslocal.WorkerFunction)-workers, stack.Lambda.Calls(awslocal.StitcherFunction)-stitches; w != 3 || s != 1 {
		t.Errorf("%d worker and %d stitcher invocations, want 3 and 1", w, s)
	}
	if st := status(t, "dup-event"); st.State != job.StateDone {
		t.Errorf("state %s", st.State)
	}
}

func TestHTTPTrigger(t *testing.T) {
	needStack(t)
	// The sample POST carries the demo spec; a smaller lossless one keeps
	// this test quick and frame-exact.
	var post events.APIGatewayV2HTTPRequest
	event(t, "http-post-job.json", &post)
	spec := testkit.NativeSpec("", 25, 8)
	post.Body = specJSON(t, spec)
	out, ferr := invoke(t, awslocal.OrchestratorFunction, post)
	if ferr != "" {
		t.Fatalf("POST /jobs: %s", ferr)
	}
	var resp events.APIGatewayV2HTTPResponse
	json.Unmarshal(out, &resp)
	var accepted struct{ JobID, StatusURL string }
	json.Unmarshal([]byte(resp.Body), &accepted)
	if resp.StatusCode != http.StatusAccepted || accepted.JobID == "" || accepted.StatusURL != "/jobs/"+accepted.JobID {
		t.Fatalf("POST /jobs answered %d %s", resp.StatusCode, resp.Body)
	}
	id := accepted.JobID

	// Pending until the upload's event arrives.
	var get events.APIGatewayV2HTTPRequest
	event(t, "http-get-status.json", &get)
	get.RawPath, get.RequestContext.HTTP.Path = "/jobs/"+id, "/jobs/"+id
	out, _ = invoke(t, awslocal.OrchestratorFunction, get)
	json.Unmarshal(out, &resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Body, `"state": "pending"`) {
		t.Errorf("GET before the render: %d %s", resp.StatusCode, resp.Body)
	}

	// S3 notifies the orchestrator of the upload the POST made.
	if _, ferr := invoke(t, awslocal.OrchestratorFunction, s3Event(t, layout.JobKey(id))); ferr != "" {
		t.Fatalf("render: %s", ferr)
	}
	out, _ = invoke(t, awslocal.OrchestratorFunction, get)
	json.Unmarshal(out, &resp)
	var st struct {
		State     job.State
		OutputURL string
	}
	json.Unmarshal([]byte(resp.Body), &st)
	if resp.StatusCode != http.StatusOK || st.State != job.StateDone || st.OutputURL == "" {
		t.Fatalf("GET after the render: %d %s", resp.StatusCode, resp.Body)
	}
	// The presigned URL downloads the video with no credentials.
	res, err := http.Get(st.OutputURL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	path := filepath.Join(t.TempDir(), "via-url.mp4")
	f, _ := os.Create(path)
	io.Copy(f, res.Body)
	f.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET outputUrl: %s", res.Status)
	}
	testkit.AssertFrameExact(t, path, testkit.SinglePass(t, t.TempDir(), 25))
}

func TestHTTPErrors(t *testing.T) {
	needStack(t)
	var post events.APIGatewayV2HTTPRequest
	event(t, "http-post-job.json", &post)
	before, _ := storage.List(t.Context(), stack.Bucket, "")
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"bad JSON", "POST", "/jobs", `{"metadata":`, 400, "invalid JSON"},
		{"invalid spec", "POST", "/jobs", `{"metadata":{"totalFrames":0,"fps":30,"width":8,"height":8},"command":"bash","args":["{output}"],"framesPerChunk":1}`, 400, "metadata.totalFrames"},
		{"too large", "POST", "/jobs", strings.Repeat(" ", 5<<20+1), 413, "over"},
		{"unknown job", "GET", "/jobs/nope", "", 404, "not found"},
		{"cancel unknown job", "DELETE", "/jobs/nope", "", 404, "not found"},
		{"unknown route", "GET", "/", "", 404, "no route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := post
			ev.RequestContext.HTTP.Method, ev.RawPath, ev.Body = tt.method, tt.path, tt.body
			out, ferr := invoke(t, awslocal.OrchestratorFunction, ev)
			var resp events.APIGatewayV2HTTPResponse
			json.Unmarshal(out, &resp)
			if ferr != "" || resp.StatusCode != tt.status || !strings.Contains(resp.Body, tt.want) {
				t.Errorf("%s %s: %d %s (function error %q); want %d with %q", tt.method, tt.path, resp.StatusCode, resp.Body, ferr, tt.status, tt.want)
			}
		})
	}
	after, _ := storage.List(t.Context(), stack.Bucket, "")
	if len(after) != len(before) {
		t.Errorf("bad requests wrote to the bucket: %d keys before, %d after", len(before), len(after))
	}
}

func TestMalformedEvents(t *testing.T) {
	needStack(t)
	upload(t, "bad-spec", `{"metadata":{"totalFrames":10,"fps":30,"width":8,"height":8},"command":"ffmpeg","args":["{frame}","{output}"],"framesPerChunk":3}`)
	tests := []struct {
		name  string
		event any
		want  string
	}{
		{"unknown shape", map[string]int{"foo": 1}, "unrecognised event"},
		{"REST API v1", map[string]any{"requestContext": map[string]string{"httpMethod": "GET"}}, "payload format 2.0"},
		{"invalid spec upload", s3Event(t, "jobs/bad-spec.json"), "unknown placeholder {frame}"},
		{"missing upload", s3Event(t, "jobs/never-uploaded.json"), "job not found"},
		{"resume unknown job", map[string]string{"jobId": "never-submitted"}, "job not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ferr := invoke(t, awslocal.OrchestratorFunction, tt.event)
			if !strings.Contains(ferr, tt.want) {
				t.Errorf("function error %q, want it to mention %q", ferr, tt.want)
			}
		})
	}
	if keys, _ := storage.List(t.Context(), stack.Bucket, "renders/bad-spec/"); len(keys) != 0 {
		t.Errorf("an invalid spec wrote %v", keys)
	}
	// Records outside jobs/ or not naming a valid id are ignored, not failed.
	for _, key := range []string{"renders/x/output.mp4", "jobs/two+words.json", "jobs/sub/x.json"} {
		out, ferr := invoke(t, awslocal.OrchestratorFunction, s3Event(t, key))
		if ferr != "" || !strings.Contains(string(out), "ignored") {
			t.Errorf("record for %s: %s %s", key, out, ferr)
		}
	}
	// The status of an invalid upload says why it will never run.
	var get events.APIGatewayV2HTTPRequest
	event(t, "http-get-status.json", &get)
	get.RawPath = "/jobs/bad-spec"
	out, _ := invoke(t, awslocal.OrchestratorFunction, get)
	var resp events.APIGatewayV2HTTPResponse
	json.Unmarshal(out, &resp)
	if resp.StatusCode != 200 || !strings.Contains(resp.Body, `"state": "failed"`) || !strings.Contains(resp.Body, "unknown placeholder {frame}") {
		t.Errorf("GET /jobs/bad-spec = %d %s", resp.StatusCode, resp.Body)
	}
}

func TestPermanentFailureFailsJob(t *testing.T) {
	needStack(t)
	spec := testkit.NativeSpec("aws-broken", 20, 10)
	spec.Args = append([]string{"-i", "no-such-input.mov"}, spec.Args...)
	upload(t, "aws-broken", specJSON(t, spec))
	if _, ferr := invoke(t, awslocal.OrchestratorFunction, s3Event(t, "jobs/aws-broken.json")); ferr != "" {
		t.Fatalf("a failed job is not a function error: %s", ferr)
	}
	st := status(t, "aws-broken")
	if st.State != job.StateFailed || st.Error == nil || st.Error.Chunk == nil || !strings.Contains(st.Error.StderrTail, "no-such-input.mov") {
		t.Fatalf("status = %s %#v", st.State, st.Error)
	}
	if ok, _ := stack.Bucket.Exists(t.Context(), layout.DefaultOutputKey("aws-broken", "mp4")); ok {
		t.Error("a failed job published an output")
	}
}

// Throttled invocations of the worker are retried by the SDK.
func TestThrottledWorkerIsRetried(t *testing.T) {
	needStack(t)
	upload(t, "throttled", specJSON(t, testkit.NativeSpec("throttled", 12, 4)))
	stack.Lambda.Throttle(awslocal.WorkerFunction, 3)
	defer stack.Lambda.Throttle(awslocal.WorkerFunction, 0)
	if _, ferr := invoke(t, awslocal.OrchestratorFunction, s3Event(t, "jobs/throttled.json")); ferr != "" {
		t.Fatal(ferr)
	}
	if st := status(t, "throttled"); st.State != job.StateDone {
		t.Fatalf("state %s: %v", st.State, st.Error)
	}
}

// The sample worker and stitcher events render the demo's first chunk and
// join its six, as `sam local invoke -e` would once the demo job has been
// accepted: a direct call is checked against the accepted spec.
func TestSampleWorkerAndStitcherEvents(t *testing.T) {
	needStack(t)
	var w job.WorkerJob
	event(t, "worker-invoke.json", &w)
	// Before any orchestrator accepted the demo, a direct call is refused.
	if _, ferr := invoke(t, awslocal.WorkerFunction, w); !strings.Contains(ferr, "never accepted") {
		t.Fatalf("worker call for a job never accepted: %q", ferr)
	}
	spec, _ := demoSpec(t)
	testkit.Accept(t, stack.Bucket, spec)
	// A chunk the spec does not plan is refused too.
	off := w
	off.Chunk.Count--
	if _, ferr := invoke(t, awslocal.WorkerFunction, off); !strings.Contains(ferr, "not what the accepted spec") {
		t.Errorf("worker call for an unplanned chunk: %q", ferr)
	}
	out, ferr := invoke(t, awslocal.WorkerFunction, w)
	var res job.WorkerResult
	json.Unmarshal(out, &res)
	if ferr != "" || res.Frames != w.Chunk.Count {
		t.Fatalf("worker: %s %s", out, ferr)
	}
	var wg sync.WaitGroup
	for _, c := range spec.Plan()[1:] {
		wg.Go(func() {
			if _, ferr := invoke(t, awslocal.WorkerFunction, spec.WorkerJob(c, w.Run, 1)); ferr != "" {
				t.Errorf("worker, chunk %d: %s", c.Index, ferr)
			}
		})
	}
	wg.Wait()
	var req job.StitchRequest
	event(t, "stitcher-invoke.json", &req)
	if req.Segments[0].Key != res.SegmentKey {
		t.Fatalf("events/stitcher-invoke.json names %s; the worker event writes %s", req.Segments[0].Key, res.SegmentKey)
	}
	out, ferr = invoke(t, awslocal.StitcherFunction, req)
	var sres job.StitchResult
	json.Unmarshal(out, &sres)
	if ferr != "" || sres.Frames != spec.Metadata.TotalFrames {
		t.Fatalf("stitcher: %s %s", out, ferr)
	}
	var resume map[string]string
	event(t, "direct-resume.json", &resume)
	if resume["jobId"] != "demo" {
		t.Errorf("events/direct-resume.json: %v", resume)
	}
}

// demoSpec is examples/jobs/demo.json, normalized, and its bytes.
func demoSpec(t *testing.T) (*job.Spec, []byte) {
	t.Helper()
	data, err := os.ReadFile("../examples/jobs/demo.json")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := job.Decode(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	spec.Normalize()
	return spec, data
}

// The sample events describe the example job: keep them in step.
func TestSampleEventsMatchTheDemo(t *testing.T) {
	spec, data := demoSpec(t)
	var post events.APIGatewayV2HTTPRequest
	event(t, "http-post-job.json", &post)
	var a, b any
	json.Unmarshal(data, &a)
	json.Unmarshal([]byte(post.Body), &b)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("events/http-post-job.json body differs from examples/jobs/demo.json")
	}
	var w job.WorkerJob
	event(t, "worker-invoke.json", &w)
	want, _ := json.Marshal(spec.WorkerJob(spec.Plan()[0], 0, 1))
	got, _ := json.Marshal(w)
	if string(got) != string(want) {
		t.Errorf("events/worker-invoke.json is not the demo's chunk 0:\n got %s\nwant %s", got, want)
	}
	var s3ev events.S3Event
	event(t, "s3-put.json", &s3ev)
	if s3ev.Records[0].S3.Object.Key != layout.JobKey(spec.ID) || s3ev.Records[0].S3.Bucket.Name != awslocal.BucketName {
		t.Errorf("events/s3-put.json names %s in %s", s3ev.Records[0].S3.Object.Key, s3ev.Records[0].S3.Bucket.Name)
	}
}

// Workers tag segments so the bucket's lifecycle rule expires leftovers; a
// job that keeps its chunks gets untagged segments, which stay.
func TestSegmentTags(t *testing.T) {
	needStack(t)
	for _, keep := range []bool{false, true} {
		id := fmt.Sprintf("tags-keep-%v", keep)
		spec := testkit.NativeSpec(id, 8, 4)
		spec.KeepChunks = keep
		upload(t, id, specJSON(t, spec))
		if _, ferr := invoke(t, awslocal.OrchestratorFunction, s3Event(t, layout.JobKey(id))); ferr != "" {
			t.Fatal(ferr)
		}
		st := status(t, id)
		for _, c := range st.Chunks {
			var m job.WorkerResult // the markers stay, and name each chunk's segment
			if err := storage.ReadJSON(t.Context(), stack.Bucket, layout.MarkerKey(id, c.Index), &m); err != nil {
				t.Fatal(err)
			}
			tagging := stack.S3.Tagging(awslocal.BucketName, m.SegmentKey)
			exists, _ := stack.Bucket.Exists(t.Context(), m.SegmentKey)
			switch {
			case keep && (tagging != "" || !exists):
				t.Errorf("kept segment %s: tagging %q, exists %v", m.SegmentKey, tagging, exists)
			case !keep && (tagging != "helios-kind=segment" || exists || c.SegmentKey != ""):
				t.Errorf("segment %s: tagging %q, exists after success %v, still in the status as %q", m.SegmentKey, tagging, exists, c.SegmentKey)
			}
		}
	}
}

// A job longer than one invocation of the orchestrator (here a 25 s time
// limit, 15 s of it kept as the margin) stops before the limit, saves its
// progress and continues in a new invocation it queues itself.
func TestJobLongerThanOneInvocation(t *testing.T) {
	needStack(t)
	// The realtime filter paces each chunk at 10 fps: a 30-frame chunk takes
	// 3 s, 12 chunks on 3 workers about 12 s, more than the 10 s window.
	spec := testkit.NativeSpec("long", 360, 30)
	vf := slices.Index(spec.Args, "-vf") + 1
	spec.Args[vf] += ",realtime"
	upload(t, "long", specJSON(t, spec))
	before := stack.Lambda.Calls(awslocal.ShortOrchestratorFunction)
	out, ferr := invoke(t, awslocal.ShortOrchestratorFunction, s3Event(t, "jobs/long.json"))
	if ferr != "" || !strings.Contains(string(out), "continuing in a new invocation") {
		t.Fatalf("first invocation: %s %s", out, ferr)
	}
	st := testkit.WaitStatus(t, stack.Bucket, "long", 3*time.Minute, testkit.Final)
	if st.State != job.StateDone {
		t.Fatalf("job did not finish: %+v", st)
	}
	if n := stack.Lambda.Calls(awslocal.ShortOrchestratorFunction) - before; n < 2 {
		t.Errorf("%d orchestrator invocations, want at least 2", n)
	}
	testkit.AssertFrameExact(t, download(t, st.Output), testkit.SinglePass(t, t.TempDir(), 360))
}

// An orchestrator that crashes mid-job (here killed with SIGKILL) leaves the
// job running under a lease nobody renews; once Lambda's retries of the
// event are spent, nothing would resume it. The scheduled sweep
// ({"sweep": {}}, EventBridge Scheduler in the stack) does, once the lease
// has expired, and the job finishes frame-exact.
func TestSweepFinishesAJobWhoseOrchestratorCrashed(t *testing.T) {
	needStack(t)
	spec := testkit.NativeSpec("aws-orphan", 120, 30)
	vf := slices.Index(spec.Args, "-vf") + 1
	spec.Args[vf] += ",realtime" // 3 s a chunk
	upload(t, "aws-orphan", specJSON(t, spec))
	// The job runs on the short orchestrator, whose environments the crash
	// then leaves unusable (the emulator does not recover from a killed
	// runtime); the sweep runs on the other one, as a fresh environment.
	crashed := make(chan string, 1)
	go func() {
		_, ferr := invoke(t, awslocal.ShortOrchestratorFunction, s3Event(t, "jobs/aws-orphan.json"))
		crashed <- ferr
	}()
	testkit.WaitStatus(t, stack.Bucket, "aws-orphan", time.Minute, testkit.Running)
	stack.Lambda.Crash(awslocal.ShortOrchestratorFunction)
	if ferr := <-crashed; ferr == "" {
		t.Fatal("the orchestrator was not killed")
	}
	time.Sleep(awslocal.LeaseTTL + time.Second) // the dead run's lease expires
	if st := status(t, "aws-orphan"); st.State.Final() {
		t.Fatalf("the job should be stranded: %s", st.State)
	}
	out, ferr := invoke(t, awslocal.OrchestratorFunction, map[string]any{"sweep": map[string]any{}})
	if ferr != "" || !strings.Contains(string(out), `"aws-orphan"`) {
		t.Fatalf("sweep: %s %s", out, ferr)
	}
	st := testkit.WaitStatus(t, stack.Bucket, "aws-orphan", 2*time.Minute, testkit.Final)
	if st.State != job.StateDone {
		t.Fatalf("job did not finish after the sweep: %+v", st)
	}
	testkit.AssertFrameExact(t, download(t, st.Output), testkit.SinglePass(t, t.TempDir(), 120))
}
