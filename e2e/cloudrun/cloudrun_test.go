// Package cloudrun runs the Cloud Run deployment on loopback: the real
// function binaries served by functions-framework-go behind fronts that act
// as Cloud Run does, the bucket on a GCS server reached through the real
// cloud.google.com/go/storage client, and uploads under jobs/ notified to a
// Pub/Sub server whose subscription is pushed to the orchestrator, as
// infra/cloudrun/deploy.sh sets it up.
package cloudrun

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/gcplocal"
	"github.com/helios-project/infrastructure/internal/localnet"
	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

var (
	stack     *gcplocal.Stack
	heliosBin string // the helios CLI, built for the CLI tests
)

// pushDeadline is the push subscription's ack deadline here: jobs that
// render longer are delivered again while they run.
const pushDeadline = 10 * time.Second

func TestMain(m *testing.M) {
	os.Exit(testkit.MainWithStack(m, "cloudrun", func(dir string) (func(), error) {
		var err error
		stack, err = gcplocal.StartStack(context.Background(), gcplocal.StackOptions{
			WorkDir: dir, PushDeadline: pushDeadline, ShortRequestTimeout: 25 * time.Second,
		})
		if err != nil {
			return nil, err
		}
		if heliosBin, err = localnet.Build(context.Background(), "./cmd/helios", filepath.Join(dir, "bin"), "helios"); err != nil {
			stack.Close()
			return nil, err
		}
		return stack.Close, nil
	}))
}

func needStack(t *testing.T) {
	t.Helper()
	if stack == nil {
		t.Skip("-short: the emulated Cloud Run stack is not started")
	}
	testkit.RequireFFmpeg(t)
}

func specJSON(t *testing.T, s *job.Spec) []byte {
	t.Helper()
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// upload writes jobs/<id>.json as `gcloud storage cp` would: the bucket's
// notification then pushes the upload to the orchestrator.
func upload(t *testing.T, id string, spec []byte) {
	t.Helper()
	if err := stack.Bucket.WriteAll(t.Context(), layout.JobKey(id), spec, nil); err != nil {
		t.Fatal(err)
	}
}

// waitFinal waits until the job ends.
func waitFinal(t *testing.T, id string, limit time.Duration) *job.Status {
	t.Helper()
	return testkit.WaitStatus(t, stack.Bucket, id, limit, testkit.Final)
}

func download(t *testing.T, key string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), filepath.Base(key))
	if _, err := storage.DownloadFile(t.Context(), stack.Bucket, key, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// request sends an HTTP request to a service, as an authorised caller
// (the stack's token; IAM on Cloud Run) sending JSON unless header says
// otherwise, and returns status and body.
func request(t *testing.T, method, url string, header http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+stack.Token)
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(data)
}

func TestUploadEventFrameExact(t *testing.T) {
	needStack(t)
	workers, stitches := stack.Worker.Calls(), stack.Stitcher.Calls()
	upload(t, "gcs-frame-exact", specJSON(t, testkit.NativeSpec("", 43, 10)))
	st := waitFinal(t, "gcs-frame-exact", 2*time.Minute)
	if st.State != job.StateDone || st.ChunksDone != 5 {
		t.Fatalf("status %+v", st)
	}
	testkit.AssertFrameExact(t, download(t, st.Output), testkit.SinglePass(t, t.TempDir(), 43))
	if w, s := stack.Worker.Calls()-workers, stack.Stitcher.Calls()-stitches; w != 5 || s != 1 {
		t.Errorf("%d worker and %d stitcher requests, want 5 and 1", w, s)
	}
	// Segments carry the custom time the bucket's lifecycle rule matches;
	// the video does not.
	attrs, err := stack.GCS.Object(t.Context(), gcplocal.BucketName, st.Output)
	if err != nil || !attrs.CustomTime.IsZero() || attrs.ContentType != "video/mp4" {
		t.Errorf("output %s: %+v %v", st.Output, attrs, err)
	}
}

func TestPostJobsFrameExact(t *testing.T) {
	needStack(t)
	code, body := request(t, "POST", stack.Orchestrator.URL+"/jobs", http.Header{"Content-Type": {"application/json"}},
		specJSON(t, testkit.NativeSpec("", 25, 8)))
	var accepted struct{ JobID, StatusURL string }
	json.Unmarshal([]byte(body), &accepted)
	if code != http.StatusAccepted || accepted.JobID == "" || accepted.StatusURL != "/jobs/"+accepted.JobID {
		t.Fatalf("POST /jobs: %d %s", code, body)
	}
	st := waitFinal(t, accepted.JobID, 2*time.Minute)
	code, body = request(t, "GET", stack.Orchestrator.URL+"/jobs/"+accepted.JobID, nil, nil)
	var got struct{ State job.State }
	json.Unmarshal([]byte(body), &got)
	if code != http.StatusOK || got.State != job.StateDone || st.State != job.StateDone {
		t.Fatalf("GET /jobs/%s: %d %s", accepted.JobID, code, body)
	}
	testkit.AssertFrameExact(t, download(t, st.Output), testkit.SinglePass(t, t.TempDir(), 25))
}

// sample reads a sample event from events/ and points it at key: what
// Eventarc or Pub/Sub would deliver for an upload of key.
func sample(t *testing.T, name, key string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatalf("events/%s: %v", name, err)
	}
	if d, ok := ev["data"].(map[string]any); ok { // a CloudEvent
		d["name"], ev["subject"] = key, "objects/"+key
	}
	if m, ok := ev["message"].(map[string]any); ok { // a Pub/Sub push
		m["attributes"].(map[string]any)["objectId"] = key
		raw, _ := base64.StdEncoding.DecodeString(m["data"].(string))
		var obj map[string]any
		json.Unmarshal(raw, &obj)
		obj["name"] = key
		raw, _ = json.Marshal(obj)
		m["data"] = base64.StdEncoding.EncodeToString(raw)
	}
	return ev
}

// The three shapes an upload reaches the orchestrator in.
func structuredCloudEvent(t *testing.T, key string) (http.Header, []byte) {
	body, _ := json.Marshal(sample(t, "gcs-finalized-cloudevent.json", key))
	return http.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}}, body
}

func binaryCloudEvent(t *testing.T, key string) (http.Header, []byte) {
	ev := sample(t, "gcs-finalized-cloudevent.json", key)
	h := http.Header{"Content-Type": {"application/json"}}
	for _, attr := range []string{"id", "source", "specversion", "type", "subject", "time"} {
		h.Set("Ce-"+attr, ev[attr].(string))
	}
	body, _ := json.Marshal(ev["data"])
	return h, body
}

func pubsubPush(t *testing.T, key string) (http.Header, []byte) {
	body, _ := json.Marshal(sample(t, "pubsub-push-gcs.json", key))
	return http.Header{"Content-Type": {"application/json"}}, body
}

// Delivery is at least once: the upload's own notification and the same
// event three more times at once (binary and structured CloudEvents and a
// Pub/Sub push) render each chunk once and stitch once.
func TestSameEventThreeTimesRendersOnce(t *testing.T) {
	needStack(t)
	workers, stitches := stack.Worker.Calls(), stack.Stitcher.Calls()
	key := layout.JobKey("gcs-dup")
	upload(t, "gcs-dup", specJSON(t, testkit.NativeSpec("gcs-dup", 30, 10)))
	var wg sync.WaitGroup
	for _, shape := range []func(*testing.T, string) (http.Header, []byte){binaryCloudEvent, structuredCloudEvent, pubsubPush} {
		wg.Go(func() {
			h, body := shape(t, key)
			if code, resp := request(t, "POST", stack.Orchestrator.URL+"/", h, body); code != http.StatusOK {
				t.Errorf("delivery answered %d %s", code, resp)
			}
		})
	}
	wg.Wait()
	st := waitFinal(t, "gcs-dup", 2*time.Minute)
	// A late redelivery finds the job done.
	h, body := pubsubPush(t, key)
	if code, resp := request(t, "POST", stack.Orchestrator.URL+"/", h, body); code != http.StatusOK || !strings.Contains(resp, `"state": "done"`) {
		t.Errorf("late redelivery: %d %s", code, resp)
	}
	if st.State != job.StateDone {
		t.Fatalf("state %s: %v", st.State, st.Error)
	}
	if w, s := stack.Worker.Calls()-workers, stack.Stitcher.Calls()-stitches; w != 3 || s != 1 {
		t.Errorf("%d worker and %d stitcher requests, want 3 and 1", w, s)
	}
}

// A worker instance lost mid-request (500 with no answer from the
// function) costs an attempt and is retried.
func TestFlakyWorkerIsRetried(t *testing.T) {
	needStack(t)
	stack.Worker.Lose(2)
	defer stack.Worker.Lose(0)
	upload(t, "gcs-flaky", specJSON(t, testkit.NativeSpec("gcs-flaky", 20, 5)))
	st := waitFinal(t, "gcs-flaky", 2*time.Minute)
	if st.State != job.StateDone {
		t.Fatalf("state %s: %v", st.State, st.Error)
	}
	attempts := 0
	for _, c := range st.Chunks {
		attempts += c.Attempts
	}
	if attempts != len(st.Chunks)+2 {
		t.Errorf("%d attempts for %d chunks, want 2 retries", attempts, len(st.Chunks))
	}
	testkit.AssertFrameExact(t, download(t, st.Output), testkit.SinglePass(t, t.TempDir(), 20))
}

// Throttling (429: no instance available) spends no attempt.
func TestThrottledWorkerIsRetried(t *testing.T) {
	needStack(t)
	stack.Worker.Throttle(3)
	defer stack.Worker.Throttle(0)
	upload(t, "gcs-throttled", specJSON(t, testkit.NativeSpec("gcs-throttled", 12, 4)))
	st := waitFinal(t, "gcs-throttled", 2*time.Minute)
	if st.State != job.StateDone {
		t.Fatalf("state %s: %v", st.State, st.Error)
	}
	for _, c := range st.Chunks {
		if c.Attempts != 1 {
			t.Errorf("chunk %d: %d attempts; throttling must not spend attempts", c.Index, c.Attempts)
		}
	}
}

func TestAlwaysFailingWorkerFailsJob(t *testing.T) {
	needStack(t)
	spec := testkit.NativeSpec("gcs-broken", 20, 10)
	spec.Args = append([]string{"-i", "no-such-input.mov"}, spec.Args...)
	spec.Retry.MaxAttempts = 2
	upload(t, "gcs-broken", specJSON(t, spec))
	st := waitFinal(t, "gcs-broken", 2*time.Minute)
	if st.State != job.StateFailed || st.Error == nil || st.Error.Chunk == nil || !strings.Contains(st.Error.StderrTail, "no-such-input.mov") {
		t.Fatalf("status = %s %#v", st.State, st.Error)
	}
	if ok, _ := stack.Bucket.Exists(t.Context(), layout.DefaultOutputKey("gcs-broken", "mp4")); ok {
		t.Error("a failed job published an output")
	}
}

// slowSpec paces each chunk at 10 fps with the realtime filter.
func slowSpec(id string, total, perChunk int) *job.Spec {
	spec := testkit.NativeSpec(id, total, perChunk)
	vf := slices.Index(spec.Args, "-vf") + 1
	spec.Args[vf] += ",realtime"
	return spec
}

func TestCancelThroughDelete(t *testing.T) {
	needStack(t)
	code, body := request(t, "POST", stack.Orchestrator.URL+"/jobs", nil, specJSON(t, slowSpec("gcs-cancel", 300, 30)))
	if code != http.StatusAccepted {
		t.Fatalf("POST /jobs: %d %s", code, body)
	}
	// Wait until it renders, then cancel.
	testkit.WaitStatus(t, stack.Bucket, "gcs-cancel", time.Minute, testkit.Running)
	if code, body := request(t, "DELETE", stack.Orchestrator.URL+"/jobs/gcs-cancel", nil, nil); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	st := waitFinal(t, "gcs-cancel", time.Minute)
	if st.State != job.StateCancelled || st.ChunksDone == st.ChunksTotal {
		t.Fatalf("state %s, %d of %d chunks", st.State, st.ChunksDone, st.ChunksTotal)
	}
	if ok, _ := stack.Bucket.Exists(t.Context(), layout.DefaultOutputKey("gcs-cancel", "mp4")); ok {
		t.Error("a cancelled job published an output")
	}
}

func TestMalformedRequests(t *testing.T) {
	needStack(t)
	ce := func(typ string) http.Header {
		h, _ := binaryCloudEvent(t, "jobs/x.json")
		h.Set("Ce-Type", typ)
		return h
	}
	noID, _ := binaryCloudEvent(t, "jobs/x.json")
	noID.Del("Ce-Id")
	tests := []struct {
		name   string
		url    string
		header http.Header
		body   string
		status int
		want   string
	}{
		{"not JSON", "/", nil, "hello", 400, "not a JSON object"},
		{"unknown shape", "/", nil, `{"foo": 1}`, 400, "unrecognised event"},
		{"CloudEvent of another type", "/", ce("com.example.other"), `{}`, 400, "is not handled"},
		{"CloudEvent without id", "/", noID, `{"bucket":"b","name":"jobs/x.json"}`, 400, "id"},
		{"CloudEvent with bad data", "/", ce("google.cloud.storage.object.v1.finalized"), `[1,2]`, 400, "not a GCS object"},
		{"structured CloudEvent, bad JSON", "/", http.Header{"Content-Type": {"application/cloudevents+json"}}, `{"specversion":`, 400, "CloudEvent"},
		{"Pub/Sub push, no event", "/", nil, `{"message":{"data":"bm9wZQ=="},"subscription":"s"}`, 400, "neither a GCS notification"},
		{"direct with both", "/", nil, `{"jobId":"a","key":"jobs/a.json"}`, 400, "not both"},
		{"direct with a bad id", "/", nil, `{"jobId":"../x"}`, 400, "jobId"},
		{"invalid spec", "/jobs", nil, `{"metadata":{"totalFrames":0,"fps":30,"width":8,"height":8},"command":"bash","args":["{output}"],"framesPerChunk":1}`, 400, "metadata.totalFrames"},
		{"unknown route", "/nope", nil, ``, 404, "no route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := request(t, "POST", stack.Orchestrator.URL+tt.url, tt.header, []byte(tt.body))
			if code != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("%d %s; want %d with %q", code, body, tt.status, tt.want)
			}
		})
	}
	// Without the token, or from a web page (a cross-site text/plain POST),
	// nothing runs.
	for name, h := range map[string]http.Header{
		"no token":   {"Authorization": {""}},
		"text/plain": {"Content-Type": {"text/plain"}},
	} {
		code, body := request(t, "POST", stack.Worker.URL, h, []byte(`{"jobId":"x"}`))
		if code != http.StatusUnauthorized && code != http.StatusUnsupportedMediaType {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	// A worker payload that does not decode is refused, as permanent.
	code, body := request(t, "POST", stack.Worker.URL, http.Header{"Content-Type": {"application/json"}}, []byte(`{"jobId": 7}`))
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "does not decode") {
		t.Errorf("worker with a bad payload: %d %s", code, body)
	}
	// An uploaded spec that can never run is acknowledged (no redelivery
	// can fix it); nothing is written, and its status says why.
	upload(t, "gcs-bad-spec", []byte(`{"metadata":{"totalFrames":10,"fps":30,"width":8,"height":8},"command":"ffmpeg","args":["{frame}","{output}"],"framesPerChunk":3}`))
	h, b := pubsubPush(t, layout.JobKey("gcs-bad-spec"))
	if code, body := request(t, "POST", stack.Orchestrator.URL+"/", h, b); code != 200 || !strings.Contains(body, "unknown placeholder {frame}") {
		t.Errorf("event for an invalid spec: %d %s", code, body)
	}
	code, body = request(t, "GET", stack.Orchestrator.URL+"/jobs/gcs-bad-spec", nil, nil)
	if code != 200 || !strings.Contains(body, `"state": "failed"`) || !strings.Contains(body, "unknown placeholder {frame}") {
		t.Errorf("GET /jobs/gcs-bad-spec = %d %s", code, body)
	}
	after, _ := storage.List(t.Context(), stack.Bucket, "renders/")
	for _, k := range after {
		if strings.HasPrefix(k, "renders/gcs-bad-spec/") || strings.HasPrefix(k, "renders/x/") {
			t.Errorf("a bad request wrote %s", k)
		}
	}
}

// A job longer than one request (a 25 s limit, 15 s of it kept as the
// margin) stops before the limit, saves its progress and continues through
// the Pub/Sub topic that pushes back to the orchestrator. Pushes that wait
// longer than the ack deadline are delivered again while the job runs: the
// redeliveries answer at once and render nothing twice.
func TestJobLongerThanOneRequest(t *testing.T) {
	needStack(t)
	upload(t, "gcs-long", specJSON(t, slowSpec("gcs-long", 360, 30)))
	before := stack.Short.Calls()
	code, body := request(t, "POST", stack.Short.URL+"/", nil, []byte(`{"key": "jobs/gcs-long.json"}`))
	if code != http.StatusOK || !strings.Contains(body, "continuing in a new invocation") {
		t.Fatalf("first request: %d %s", code, body)
	}
	st := waitFinal(t, "gcs-long", 3*time.Minute)
	if st.State != job.StateDone {
		t.Fatalf("state %s: %v", st.State, st.Error)
	}
	if n := stack.Short.Calls() - before; n < 2 {
		t.Errorf("%d requests to the orchestrator, want at least 2", n)
	}
	if n := stack.PubSub.Deliveries(gcplocal.ShortSubscription); n < 1 {
		t.Errorf("%d continuation pushes, want at least 1", n)
	}
	testkit.AssertFrameExact(t, download(t, st.Output), testkit.SinglePass(t, t.TempDir(), 360))
}

// A push that waits longer than the ack deadline is delivered again while
// the job still renders: the redelivery answers 2xx at once (the job's
// lease is held), the first request keeps rendering although its push gave
// up, and no chunk is rendered twice.
func TestRedeliveryWhileRunning(t *testing.T) {
	needStack(t)
	workers, pushes := stack.Worker.Calls(), stack.PubSub.Deliveries(gcplocal.JobsSubscription)
	// 10 chunks of 3 s on 3 workers: about 12 s, past the 10 s deadline.
	upload(t, "gcs-redelivered", specJSON(t, slowSpec("gcs-redelivered", 300, 30)))
	st := waitFinal(t, "gcs-redelivered", 2*time.Minute)
	if st.State != job.StateDone {
		t.Fatalf("state %s: %v", st.State, st.Error)
	}
	if n := stack.PubSub.Deliveries(gcplocal.JobsSubscription) - pushes; n < 2 {
		t.Errorf("%d pushes of the upload, want a redelivery while it ran", n)
	}
	if w := stack.Worker.Calls() - workers; w != 10 {
		t.Errorf("%d worker requests, want 10", w)
	}
	testkit.AssertFrameExact(t, download(t, st.Output), testkit.SinglePass(t, t.TempDir(), 300))
}

// cli runs the helios CLI with the emulators' environment plus env.
func cli(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), heliosBin, args...)
	cmd.Env = append(os.Environ(), "HELIOS_ALLOWED_COMMANDS=ffmpeg", "HELIOS_HTTP_TOKEN="+stack.Token)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// The CLI on a gs:// bucket: submit starts the job in the (emulated) cloud
// through the upload's notification, watch follows it to the end, status
// reads it, cancel stops another.
func TestCLISubmitWatchStatusCancel(t *testing.T) {
	needStack(t)
	dir := t.TempDir()
	specPath := filepath.Join(dir, "cli-gcs.json")
	os.WriteFile(specPath, specJSON(t, testkit.NativeSpec("cli-gcs", 20, 5)), 0o600)
	code, out, errOut := cli(t, nil, "job", "submit", specPath, "--storage", stack.URL)
	if code != 0 || !strings.Contains(out, "jobs/cli-gcs.json") {
		t.Fatalf("submit: exit %d %s %s", code, out, errOut)
	}
	code, out, errOut = cli(t, nil, "job", "watch", "cli-gcs", "--storage", stack.URL, "--interval", "100ms")
	if code != 0 || !strings.Contains(out, "job cli-gcs done") {
		t.Fatalf("watch: exit %d %s %s", code, out, errOut)
	}
	code, out, _ = cli(t, map[string]string{"HELIOS_STORAGE_URL": stack.URL}, "job", "status", "cli-gcs")
	if code != 0 || !strings.Contains(out, "job cli-gcs: done") || !strings.Contains(out, "frames: 20 of 20") {
		t.Errorf("status: exit %d %s", code, out)
	}

	os.WriteFile(specPath, specJSON(t, slowSpec("cli-gcs-cancel", 300, 30)), 0o600)
	if code, out, errOut := cli(t, nil, "job", "submit", specPath, "--storage", stack.URL); code != 0 {
		t.Fatalf("submit: exit %d %s %s", code, out, errOut)
	}
	if code, out, errOut := cli(t, nil, "job", "cancel", "cli-gcs-cancel", "--storage", stack.URL); code != 0 || !strings.Contains(out, "cancel requested") {
		t.Fatalf("cancel: exit %d %s %s", code, out, errOut)
	}
	code, out, _ = cli(t, nil, "job", "watch", "cli-gcs-cancel", "--storage", stack.URL, "--interval", "100ms")
	if code != 1 || !strings.Contains(out, "cancelled") {
		t.Errorf("watch of a cancelled job: exit %d %s", code, out)
	}
}

// job run on this machine dispatches the chunks to the deployed Cloud Run
// workers (HELIOS_ADAPTER=cloudrun) and stitches there.
func TestCLIRunOnCloudRunWorkers(t *testing.T) {
	needStack(t)
	workers, stitches := stack.Worker.Calls(), stack.Stitcher.Calls()
	dir := t.TempDir()
	specPath := filepath.Join(dir, "cli-run-gcs.json")
	os.WriteFile(specPath, specJSON(t, testkit.NativeSpec("cli-run-gcs", 30, 7)), 0o600)
	out := filepath.Join(dir, "video.mp4")
	code, stdout, stderr := cli(t, map[string]string{
		"HELIOS_ADAPTER": "cloudrun", "HELIOS_WORKER_URL": stack.Worker.URL, "HELIOS_STITCHER_URL": stack.Stitcher.URL,
	}, "job", "run", specPath, "--storage", stack.URL, "--out", out, "--concurrency", "3")
	if code != 0 {
		t.Fatalf("run: exit %d %s %s", code, stdout, stderr)
	}
	testkit.AssertFrameExact(t, out, testkit.SinglePass(t, t.TempDir(), 30))
	if w, s := stack.Worker.Calls()-workers, stack.Stitcher.Calls()-stitches; w != 5 || s != 1 {
		t.Errorf("%d worker and %d stitcher requests, want 5 and 1", w, s)
	}
}

// The continuation sample resumes the job it names; a job nobody submitted
// is not found, which no redelivery can change.
func TestSampleContinuation(t *testing.T) {
	needStack(t)
	data, err := os.ReadFile("../../events/pubsub-push-continue.json")
	if err != nil {
		t.Fatal(err)
	}
	code, body := request(t, "POST", stack.Orchestrator.URL+"/", nil, data)
	if code != http.StatusOK || !strings.Contains(body, "job not found") || !strings.Contains(body, `"jobId": "demo"`) {
		t.Errorf("continuation of an unknown job: %d %s", code, body)
	}
}

// An orchestrator killed mid-job leaves it running with a lease that no one
// renews, and the redelivered upload finds that lease held and is
// acknowledged: nothing would ever resume the job. The scheduled sweep does,
// once the lease has expired, and the job finishes frame-exact.
func TestSweepFinishesAJobWhoseOrchestratorDied(t *testing.T) {
	needStack(t)
	upload(t, "gcs-orphan", specJSON(t, slowSpec("gcs-orphan", 120, 30)))
	testkit.WaitStatus(t, stack.Bucket, "gcs-orphan", time.Minute, testkit.Running)
	stack.Orchestrator.Kill()
	// Until the dead run's lease expires the sweep leaves the job alone
	// (once new instances are up).
	var code int
	var body string
	for range 50 {
		if code, body = request(t, "POST", stack.Orchestrator.URL+"/sweep", nil, []byte(`{}`)); code != http.StatusBadGateway {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusOK || strings.Contains(body, "gcs-orphan") {
		t.Errorf("sweep while the lease is still valid: %d %s", code, body)
	}
	time.Sleep(gcplocal.LeaseTTL + time.Second) // the lease's TTL
	if st, _ := jobstore.New(stack.Bucket, nil, nil).Status(t.Context(), "gcs-orphan"); st == nil || st.State.Final() {
		t.Fatalf("the job should be stranded, status %+v", st)
	}
	code, body = request(t, "POST", stack.Orchestrator.URL+"/sweep", nil, []byte(`{}`))
	if code != http.StatusOK || !strings.Contains(body, `"gcs-orphan"`) {
		t.Fatalf("sweep: %d %s", code, body)
	}
	st := waitFinal(t, "gcs-orphan", 2*time.Minute)
	if st.State != job.StateDone {
		t.Fatalf("state %s: %v", st.State, st.Error)
	}
	testkit.AssertFrameExact(t, download(t, st.Output), testkit.SinglePass(t, t.TempDir(), 120))
	if ok, _ := stack.Bucket.Exists(t.Context(), layout.ActiveKey("gcs-orphan")); ok {
		t.Error("the finished job is still marked active")
	}
}
