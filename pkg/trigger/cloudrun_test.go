package trigger_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/trigger"
)

func sampleEvent(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func post(t *testing.T, h http.Handler, header http.Header, body []byte) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// Each shape an upload reaches the orchestrator in over HTTP starts the job
// its key names; the sample events in events/ are the fixtures.
func TestHTTPEvents(t *testing.T) {
	structured := sampleEvent(t, "gcs-finalized-cloudevent.json")
	var ce map[string]any
	json.Unmarshal(structured, &ce)
	binaryHeader := http.Header{"Content-Type": {"application/json"}}
	for _, a := range []string{"id", "source", "specversion", "type", "subject", "time"} {
		binaryHeader.Set("Ce-"+a, ce[a].(string))
	}
	binaryBody, _ := json.Marshal(ce["data"])
	// Eventarc's Pub/Sub trigger wraps the push body in a CloudEvent.
	eventarcPubSub, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": "1", "source": "//pubsub.googleapis.com/projects/p/topics/helios-jobs",
		"type": trigger.EventPubSubPublished, "datacontenttype": "application/json",
		"data": json.RawMessage(sampleEvent(t, "pubsub-push-gcs.json")),
	})
	cases := []struct {
		name   string
		header http.Header
		body   []byte
		keys   []string
		ids    []string
	}{
		{"structured CloudEvent", http.Header{"Content-Type": {"application/cloudevents+json"}}, structured, []string{"jobs/demo.json"}, nil},
		{"binary CloudEvent", binaryHeader, binaryBody, []string{"jobs/demo.json"}, nil},
		{"Pub/Sub push of a GCS notification", nil, sampleEvent(t, "pubsub-push-gcs.json"), []string{"jobs/demo.json"}, nil},
		{"Eventarc Pub/Sub CloudEvent", http.Header{"Content-Type": {"application/cloudevents+json"}}, eventarcPubSub, []string{"jobs/demo.json"}, nil},
		{"continuation", nil, sampleEvent(t, "pubsub-push-continue.json"), nil, []string{"demo"}},
		{"direct resume", nil, sampleEvent(t, "direct-resume.json"), nil, []string{"demo"}},
		{"direct key", nil, []byte(`{"key":"jobs/demo.json"}`), []string{"jobs/demo.json"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, f := newHandler(t)
			h.BucketName = "helios-renders"
			code, body := post(t, h.HTTP(), c.header, c.body)
			if code != http.StatusOK || !strings.Contains(body, `"state": "done"`) {
				t.Fatalf("%d %s", code, body)
			}
			if strings.Join(f.keys, ",") != strings.Join(c.keys, ",") || strings.Join(f.ids, ",") != strings.Join(c.ids, ",") {
				t.Errorf("ran keys %v and resumed %v; want %v and %v", f.keys, f.ids, c.keys, c.ids)
			}
		})
	}
}

// Uploads the orchestrator must not act on are acknowledged and ignored.
func TestHTTPEventsIgnored(t *testing.T) {
	push := func(attrs map[string]string) []byte {
		b, _ := json.Marshal(map[string]any{"message": map[string]any{"attributes": attrs, "data": base64.StdEncoding.EncodeToString([]byte("{}"))}, "subscription": "s"})
		return b
	}
	cases := map[string][]byte{
		"another bucket": push(map[string]string{"eventType": "OBJECT_FINALIZE", "bucketId": "other", "objectId": "jobs/a.json"}),
		"outside jobs/":  push(map[string]string{"eventType": "OBJECT_FINALIZE", "bucketId": "renders", "objectId": "renders/a/status.json"}),
		"a deletion":     push(map[string]string{"eventType": "OBJECT_DELETE", "bucketId": "renders", "objectId": "jobs/a.json"}),
		"an invalid id":  push(map[string]string{"eventType": "OBJECT_FINALIZE", "bucketId": "renders", "objectId": "jobs/a b.json"}),
		"a nested key":   push(map[string]string{"eventType": "OBJECT_FINALIZE", "bucketId": "renders", "objectId": "jobs/x/a.json"}),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			h, f := newHandler(t)
			code, resp := post(t, h.HTTP(), nil, body)
			if code != http.StatusOK || !strings.Contains(resp, "ignored") || len(f.keys) != 0 {
				t.Errorf("%d %s, ran %v", code, resp, f.keys)
			}
		})
	}
}

// GCS sends int64 fields as strings; a number is taken too.
func TestGCSObjectInt64Fields(t *testing.T) {
	var o trigger.GCSObject
	if err := json.Unmarshal([]byte(`{"bucket":"b","name":"jobs/a.json","generation":"1587627537231057","size":12}`), &o); err != nil {
		t.Fatal(err)
	}
	if o.Generation != 1587627537231057 || o.Size != 12 {
		t.Errorf("decoded %+v", o)
	}
	if err := json.Unmarshal([]byte(`{"generation":"x1"}`), &o); err == nil {
		t.Error("a non-integer generation was accepted")
	}
}

// Failures map to what makes the platform retry or not.
func TestHTTPEventStatusCodes(t *testing.T) {
	key := []byte(`{"key":"jobs/a.json"}`)
	cases := []struct {
		name string
		err  error
		code int
		want string
	}{
		{"storage down: retry", errors.New("read spec: connection refused"), 500, "connection refused"},
		{"duplicate delivery: done", jobstore.ErrAlreadyRunning, 200, "already running elsewhere"},
		{"invalid spec: acknowledged", &joberr.ValidationError{Problems: []joberr.Problem{{Path: "args", Message: "must contain {output}"}}}, 200, "must contain {output}"},
		{"unknown job: acknowledged", jobstore.ErrNotFound, 200, "job not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, f := newHandler(t)
			f.err = c.err
			code, body := post(t, h.HTTP(), nil, key)
			if code != c.code || !strings.Contains(body, c.want) {
				t.Errorf("%d %s; want %d with %q", code, body, c.code, c.want)
			}
		})
	}
}

// A run stops before the request limit less the margin, whatever the
// caller does: here the caller's context is already cancelled.
func TestHTTPEventRequestLimit(t *testing.T) {
	h, f := newHandler(t)
	h.RequestTimeout, h.Margin = 30*time.Second, 15*time.Second
	var deadline time.Time
	var callerGone bool
	f.hook = func(ctx context.Context) {
		deadline, _ = ctx.Deadline()
		callerGone = ctx.Err() != nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"jobId":"a"}`)).WithContext(ctx)
	rec := httptest.NewRecorder()
	start := time.Now()
	h.HTTP().ServeHTTP(rec, req)
	if callerGone {
		t.Error("the run saw the caller's cancellation")
	}
	if d := deadline.Sub(start); d < 14*time.Second || d > 16*time.Second {
		t.Errorf("the run's deadline is %s after the request began, want about 15s", d)
	}
}

// When the process is told to stop (SIGTERM on Cloud Run), a run over HTTP
// stops, and the job continues in a new request.
func TestHTTPEventContinuesOnShutdown(t *testing.T) {
	h, f := newHandler(t)
	stopping, stop := context.WithCancel(context.Background())
	var continued []trigger.Invoke
	h.Orch, h.Stopping = &blockingOrch{fakeOrch: f}, stopping
	h.Continue = func(_ context.Context, in trigger.Invoke) error { continued = append(continued, in); return nil }
	time.AfterFunc(100*time.Millisecond, stop)
	code, body := post(t, h.HTTP(), nil, []byte(`{"key":"jobs/long.json"}`))
	if code != http.StatusOK || !strings.Contains(body, "continuing in a new invocation") {
		t.Fatalf("%d %s", code, body)
	}
	if len(continued) != 1 || continued[0].JobID != "long" {
		t.Errorf("continued %v, want the job long", continued)
	}
}

// slowFailingOrch fails retryably after a while, as a run that lost its
// storage late would.
type slowFailingOrch struct {
	*fakeOrch
	after time.Duration
}

func (s *slowFailingOrch) RunKey(ctx context.Context, key string, _ orchestrator.RunOptions) (*job.Status, error) {
	time.Sleep(s.after)
	return nil, errors.New("write status: 503 backend error")
}

// A retryable failure of a young request is a 5xx (the push redelivers it);
// of a request older than a push may wait, it continues through the topic,
// by key, since the upload may not have been accepted.
func TestHTTPEventFailureAfterThePushGaveUp(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 10 s")
	}
	for _, c := range []struct {
		after time.Duration
		code  int
	}{{0, http.StatusInternalServerError}, {10 * time.Second, http.StatusOK}} {
		h, f := newHandler(t)
		var continued []trigger.Invoke
		h.Orch = &slowFailingOrch{fakeOrch: f, after: c.after}
		h.Continue = func(_ context.Context, in trigger.Invoke) error { continued = append(continued, in); return nil }
		code, body := post(t, h.HTTP(), nil, []byte(`{"key":"jobs/late.json"}`))
		if code != c.code || !strings.Contains(body, "503 backend error") {
			t.Errorf("failing after %s: %d %s, want %d", c.after, code, body, c.code)
		}
		if want := c.code == http.StatusOK; want != (len(continued) == 1 && continued[0].Key == "jobs/late.json") {
			t.Errorf("failing after %s: continued %v", c.after, continued)
		}
	}
}

// leaseHeldOrch finds the job's lease held for a while, as a continuation
// that arrives before the run it continues let the lease go does.
type leaseHeldOrch struct {
	*fakeOrch
	until time.Time
}

func (l *leaseHeldOrch) Resume(ctx context.Context, id string, _ orchestrator.RunOptions) (*job.Status, error) {
	if time.Now().Before(l.until) {
		return nil, jobstore.ErrAlreadyRunning
	}
	return &job.Status{JobID: id, State: job.StateDone}, nil
}

func TestHTTPResumeWaitsForTheLease(t *testing.T) {
	h, f := newHandler(t)
	h.Orch, h.ResumeWait = &leaseHeldOrch{fakeOrch: f, until: time.Now().Add(3 * time.Second)}, 10*time.Second
	code, body := post(t, h.HTTP(), nil, sampleEvent(t, "pubsub-push-continue.json"))
	if code != http.StatusOK || !strings.Contains(body, `"state": "done"`) {
		t.Errorf("resume while the lease ran out: %d %s", code, body)
	}
	// Held for longer than the wait: another run has the job.
	h.Orch, h.ResumeWait = &leaseHeldOrch{fakeOrch: f, until: time.Now().Add(time.Hour)}, 2*time.Second
	code, body = post(t, h.HTTP(), nil, sampleEvent(t, "pubsub-push-continue.json"))
	if code != http.StatusOK || !strings.Contains(body, "already running elsewhere") {
		t.Errorf("resume of a job held elsewhere: %d %s", code, body)
	}
}

// A request limit that leaves no time to run is refused, not looped on.
func TestHTTPEventTooShortALimit(t *testing.T) {
	h, f := newHandler(t)
	h.RequestTimeout, h.Margin = 16*time.Second, 15*time.Second
	h.Continue = func(context.Context, trigger.Invoke) error { t.Error("continued"); return nil }
	code, body := post(t, h.HTTP(), nil, []byte(`{"jobId":"a"}`))
	if code != http.StatusServiceUnavailable || len(f.ids) != 0 {
		t.Errorf("%d %s; ran %v", code, body, f.ids)
	}
}
