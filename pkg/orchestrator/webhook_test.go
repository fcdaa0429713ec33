package orchestrator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/webhook"
)

// A job that fails POSTs job.failed once, however often it is run again
// and fails again.
func TestWebhookOnceWhenFailingAgain(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	var mu sync.Mutex
	var types []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Type string }
		json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		types = append(types, ev.Type)
		mu.Unlock()
	}))
	defer srv.Close()
	r := newRig(t)
	r.cfg.Webhooks = &webhook.Sender{Key: key, AllowPrivate: true}
	spec := testkit.NativeSpec("hooked-fails", 4, 2)
	spec.Args = []string{"-hide_banner", "-loglevel", "error", "-i", "nonexistent/input.mp4", "{output}"}
	spec.Retry.MaxAttempts = 1
	spec.Webhook = srv.URL + "/helios"
	prepared := r.prepare(specJSON(t, spec), "")
	for range 2 {
		if st := r.run(prepared); st.State != job.StateFailed {
			t.Fatalf("job ended %s, want failed", st.State)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(types) != 1 || types[0] != "job.failed" {
		t.Errorf("deliveries %v, want one job.failed", types)
	}
}

// A job that ends POSTs its summary to the spec's webhook, signed, once:
// running the finished job again sends nothing.
func TestWebhookOncePerOutcome(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(key, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), webhook.DefaultTolerance); err != nil {
			t.Errorf("delivery does not verify: %v", err)
		}
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
	}))
	defer srv.Close()

	r := newRig(t)
	r.cfg.Webhooks = &webhook.Sender{Key: key, AllowPrivate: true}
	spec := testkit.NativeSpec("hooked", 6, 3)
	spec.Webhook = srv.URL + "/helios"
	prepared := r.prepare(specJSON(t, spec), "")
	if st := r.run(prepared); st.State != job.StateDone {
		t.Fatalf("job ended %s", st.State)
	}
	r.run(prepared) // done already: no second delivery
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 {
		t.Fatalf("%d deliveries, want 1", len(bodies))
	}
	var ev struct {
		Type       string           `json:"type"`
		JobID      string           `json:"jobId"`
		State      job.State        `json:"state"`
		ChunksDone int              `json:"chunksDone"`
		Output     string           `json:"output"`
		Chunks     []map[string]any `json:"chunks"`
	}
	if err := json.Unmarshal(bodies[0], &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "job.done" || ev.JobID != "hooked" || ev.State != job.StateDone || ev.ChunksDone != 2 || ev.Output == "" || ev.Chunks != nil {
		t.Errorf("delivery = %s", bodies[0])
	}
}

func TestWebhookURLIsValidated(t *testing.T) {
	for _, u := range []string{"http://example.com/x", "ftp://example.com", "https://u:p@example.com/", "https://metadata.google.internal/"} {
		spec := testkit.NativeSpec("bad-hook", 4, 2)
		spec.Webhook = u
		if err := spec.Validate(job.Allowlist{"ffmpeg"}); err == nil {
			t.Errorf("webhook %q accepted", u)
		}
	}
}
