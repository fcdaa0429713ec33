package adapter_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/oauth2"

	"github.com/helios-project/infrastructure/internal/gcplocal"
	"github.com/helios-project/infrastructure/internal/localnet"
	"github.com/helios-project/infrastructure/pkg/adapter"
	"github.com/helios-project/infrastructure/pkg/adapter/adaptertest"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
)

// startProbeServices serves the probe function binary as two Cloud Run
// services on loopback: a worker with `instances` instances of concurrency
// 1, and a stitcher.
func startProbeServices(t testing.TB, instances int) (worker, stitcher *gcplocal.Service) {
	t.Helper()
	dir := t.TempDir()
	bin, err := localnet.Build(context.Background(), "./internal/probefn", dir, "probe")
	if err != nil {
		t.Fatal(err)
	}
	start := func(name, fn string, n int) *gcplocal.Service {
		s, err := gcplocal.StartService(context.Background(), gcplocal.ServiceOptions{
			Name: name, Binary: bin, Env: map[string]string{"PROBE_FUNCTION": fn, "HELIOS_HTTP_TOKEN": probeToken},
			Instances: n, Concurrency: 1, Pending: 2 * time.Second, LogDir: dir,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	return start("probe-worker", "worker", instances), start("probe-stitcher", "stitcher", 1)
}

// probeToken is the HELIOS_HTTP_TOKEN of the probe services.
const probeToken = "probe-local-token"

func fastThrottleRetry() adapter.CloudRunOption {
	return adapter.WithThrottleRetry(4, func() backoff.BackOff { return backoff.NewConstantBackOff(20 * time.Millisecond) })
}

func TestCloudRunConformance(t *testing.T) {
	w, s := startProbeServices(t, 4)
	adaptertest.RunConformance(t, adaptertest.Options{Concurrency: 4}, func(t *testing.T) *adapter.Adapter {
		d, err := adapter.NewCloudRun(t.Context(), w.URL, s.URL, nil, fastThrottleRetry(), adapter.WithLocalToken(probeToken))
		if err != nil {
			t.Fatal(err)
		}
		return adapter.New(d)
	})
}

// Over https the adapter sends an ID token for the service URL, minted by
// the token source (here a static one: ID tokens cannot be minted offline).
func TestCloudRunSendsIDToken(t *testing.T) {
	w, s := startProbeServices(t, 1)
	// The same front behind TLS, checking the ID token as Cloud Run's IAM
	// does, then reaching the container with its local token.
	var seen string
	tlsWorker := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		seen = r.Header.Get("Authorization")
		r.Header.Set("Authorization", "Bearer "+probeToken)
		w.ServeHTTP(rw, r)
	}))
	defer tlsWorker.Close()
	var audiences []string
	tokens := func(_ context.Context, audience string) (oauth2.TokenSource, error) {
		audiences = append(audiences, audience)
		return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "id-token-for-" + audience}), nil
	}
	d, err := adapter.NewCloudRun(t.Context(), tlsWorker.URL, s.URL, tokens, adapter.WithHTTPClient(tlsWorker.Client()), adapter.WithLocalToken(probeToken))
	if err != nil {
		t.Fatal(err)
	}
	if len(audiences) != 1 || audiences[0] != tlsWorker.URL {
		t.Errorf("ID tokens asked for audiences %v, want only the https service %s", audiences, tlsWorker.URL)
	}
	a := adapter.New(d)
	if _, err := a.Execute(t.Context(), job.WorkerJob{JobID: "t", Chunk: job.Chunk{Count: 1}, Attempt: 1, Command: adaptertest.ProbeEcho, OutputFile: "a.mp4"}); err != nil {
		t.Fatal(err)
	}
	if got, want := seen, "Bearer id-token-for-"+tlsWorker.URL; got != want {
		t.Errorf("the service saw Authorization %q, want %q", got, want)
	}
	if _, err := a.Stitch(t.Context(), job.StitchRequest{JobID: "t", OutputKey: "renders/t/output.mp4"}); err != nil {
		t.Fatal(err)
	}
	if s.LastAuthorization() != "Bearer "+probeToken {
		t.Errorf("the loopback http service got Authorization %q, want the local token", s.LastAuthorization())
	}
}

// 429 (no instance available) is retried with backoff and never reaches the
// function; past the retries it is reported as throttled, which spends no
// attempt of the chunk.
func TestCloudRunThrottling(t *testing.T) {
	w, s := startProbeServices(t, 1)
	d, err := adapter.NewCloudRun(t.Context(), w.URL, s.URL, nil, fastThrottleRetry(), adapter.WithLocalToken(probeToken))
	if err != nil {
		t.Fatal(err)
	}
	a := adapter.New(d)
	wj := job.WorkerJob{JobID: "t", Chunk: job.Chunk{Count: 1}, Attempt: 1, Command: adaptertest.ProbeEcho, OutputFile: "a.mp4"}
	w.Throttle(2)
	if _, err := a.Execute(t.Context(), wj); err != nil {
		t.Fatalf("Execute after 2 throttled answers: %v", err)
	}
	if w.Calls() != 1 {
		t.Errorf("%d requests reached an instance, want 1", w.Calls())
	}
	w.Throttle(100)
	defer w.Throttle(0)
	_, err = a.Execute(t.Context(), wj)
	var e *joberr.Error
	if !errors.As(err, &e) || e.Kind != joberr.Retryable || e.Code != joberr.CodeThrottled {
		t.Fatalf("Execute while throttled: %v, want retryable throttled", err)
	}
}

// Answers without a HeliosError body are classified by status.
func TestCloudRunStatusCodes(t *testing.T) {
	const noInstance = "Rejected by the Cloud Run service: the request was aborted because there was no available instance."
	cases := []struct {
		status int
		body   string
		kind   joberr.Kind
		code   string
	}{
		{http.StatusTooManyRequests, "slow down", joberr.Retryable, joberr.CodeThrottled},
		{http.StatusServiceUnavailable, noInstance, joberr.Retryable, joberr.CodeThrottled},
		{http.StatusInternalServerError, noInstance, joberr.Retryable, joberr.CodeThrottled},
		{http.StatusServiceUnavailable, "The request failed because the instance crashed", joberr.Retryable, joberr.CodeWorkerLost},
		{http.StatusInternalServerError, "platform says no", joberr.Retryable, joberr.CodeWorkerLost},
		{http.StatusBadGateway, "platform says no", joberr.Retryable, joberr.CodeWorkerLost},
		{http.StatusGatewayTimeout, "upstream request timeout", joberr.Retryable, joberr.CodeWorkerLost},
		{http.StatusForbidden, "platform says no", joberr.Permanent, joberr.CodeInvalid},
		{http.StatusUnauthorized, "platform says no", joberr.Permanent, joberr.CodeInvalid},
		{http.StatusNotFound, "platform says no", joberr.Permanent, joberr.CodeInvalid},
	}
	for _, c := range cases {
		t.Run(http.StatusText(c.status)+" "+c.body, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, c.body, c.status)
			}))
			defer srv.Close()
			d, err := adapter.NewCloudRun(t.Context(), srv.URL, srv.URL, nil, fastThrottleRetry())
			if err != nil {
				t.Fatal(err)
			}
			_, err = adapter.New(d).Execute(t.Context(), job.WorkerJob{JobID: "t", Chunk: job.Chunk{Count: 1}, Attempt: 1, Command: "x", OutputFile: "a.mp4"})
			var e *joberr.Error
			if !errors.As(err, &e) || e.Kind != c.kind || e.Code != c.code {
				t.Errorf("%d: %v, want %s/%s", c.status, err, c.kind, c.code)
			}
		})
	}
	// A connection reset mid-request: the worker was lost.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer srv.Close()
	d, _ := adapter.NewCloudRun(t.Context(), srv.URL, srv.URL, nil)
	_, err := adapter.New(d).Execute(t.Context(), job.WorkerJob{JobID: "t", Chunk: job.Chunk{Count: 1}, Attempt: 1, Command: "x", OutputFile: "a.mp4"})
	var e *joberr.Error
	if !errors.As(err, &e) || e.Kind != joberr.Retryable || e.Code != joberr.CodeWorkerLost {
		t.Errorf("reset connection: %v, want retryable worker_lost", err)
	}
}

func TestCloudRunRefusesPlainHTTPOffLoopback(t *testing.T) {
	for _, u := range []string{"http://worker.example.com", "ftp://x", "https://user:pw@x.run.app", ""} {
		if _, err := adapter.NewCloudRun(t.Context(), u, "http://127.0.0.1:1", nil); err == nil {
			t.Errorf("NewCloudRun(%q) accepted", u)
		}
	}
}
