package trigger_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzLambdaEvent hands arbitrary payloads to the orchestrator's Lambda
// entry point: no panic; a payload is either understood or refused with a
// typed error; nothing outside jobs/<id>.json is ever run.
func FuzzLambdaEvent(f *testing.F) {
	for _, name := range []string{"s3-put.json", "http-post-job.json", "http-get-status.json", "direct-resume.json"} {
		f.Add(sampleEvent(f, name))
	}
	f.Add([]byte(`{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"renders"},"object":{"key":"jobs%2F..%2Fx.json"}}}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		h, fo := newHandler(t)
		_, _ = h.Lambda().Invoke(t.Context(), payload)
		for _, k := range fo.keys {
			if !strings.HasPrefix(k, "jobs/") || strings.Contains(k, "..") || strings.Count(k, "/") != 1 {
				t.Fatalf("ran key %q", k)
			}
		}
	})
}

// FuzzHTTPEvent posts arbitrary bodies and CloudEvent headers to the
// orchestrator's HTTP entry point: no panic, no 2xx for what it did not
// understand, and nothing but jobs/<id>.json is ever run.
func FuzzHTTPEvent(f *testing.F) {
	for _, name := range []string{"gcs-finalized-cloudevent.json", "pubsub-push-gcs.json", "pubsub-push-continue.json", "direct-resume.json"} {
		f.Add(sampleEvent(f, name), "")
	}
	f.Add([]byte(`{"bucket":"renders","name":"jobs/a.json"}`), "google.cloud.storage.object.v1.finalized")
	f.Fuzz(func(t *testing.T, body []byte, ceType string) {
		h, fo := newHandler(t)
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		if ceType != "" {
			req.Header.Set("Ce-Specversion", "1.0")
			req.Header.Set("Ce-Id", "1")
			req.Header.Set("Ce-Source", "//storage.googleapis.com/projects/_/buckets/renders")
			req.Header.Set("Ce-Type", ceType)
		}
		rec := httptest.NewRecorder()
		h.HTTP().ServeHTTP(rec, req)
		if rec.Code == http.StatusOK && !strings.Contains(rec.Body.String(), `"event"`) {
			t.Fatalf("200 without an outcome: %s", rec.Body.String())
		}
		for _, k := range fo.keys {
			if !strings.HasPrefix(k, "jobs/") || strings.Contains(k, "..") || strings.Count(k, "/") != 1 {
				t.Fatalf("ran key %q", k)
			}
		}
	})
}
