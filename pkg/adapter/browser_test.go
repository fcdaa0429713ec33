package adapter_test

import (
	"context"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/gcplocal"
	"github.com/helios-project/infrastructure/internal/localnet"
	"github.com/helios-project/infrastructure/pkg/adapter"
	"github.com/helios-project/infrastructure/pkg/adapter/adaptertest"
	"github.com/helios-project/infrastructure/pkg/job"
)

// routed sends one `helios` chunk and one ffmpeg chunk through a and
// returns how many calls each of the counters saw for each.
func routed(t *testing.T, a *adapter.Adapter, worker, browser func() int64) (heliosTo, ffmpegTo [2]int64) {
	t.Helper()
	send := func(command string) [2]int64 {
		w0, b0 := worker(), browser()
		// The probe answers only its own commands; which function got the
		// call is what counts here.
		w := job.WorkerJob{JobID: "route", Chunk: job.Chunk{Count: 1}, Attempt: 1, Command: command}
		_, _ = a.Execute(t.Context(), w)
		got := [2]int64{worker() - w0, browser() - b0}
		// The function the orchestrator prices the call at is the one
		// that got it.
		if want := map[bool]string{false: job.FunctionWorker, true: job.FunctionBrowserWorker}[got[1] == 1]; a.FunctionFor(w) != want {
			t.Errorf("%s chunk: FunctionFor says %q, the call went to %q", command, a.FunctionFor(w), want)
		}
		return got
	}
	return send(job.RendererProgram), send(adaptertest.ProbeEcho)
}

func TestLambdaBrowserWorkerTakesHeliosChunks(t *testing.T) {
	l := startProbeLambda(t, 1)
	calls := func(fn string) func() int64 { return func() int64 { return l.Calls(fn) } }
	for _, tc := range []struct {
		browser          string
		heliosTo, ffmpeg [2]int64 // calls of {worker, browser}
	}{
		{"probe-browser", [2]int64{0, 1}, [2]int64{1, 0}},
		{"", [2]int64{1, 0}, [2]int64{1, 0}}, // no browser worker: everything to the worker
	} {
		a := adapter.New(adapter.NewLambda(lambdaClient(l.URL), "probe-worker", "probe-stitcher").WithBrowserWorker(tc.browser))
		h, f := routed(t, a, calls("probe-worker"), calls("probe-browser"))
		if h != tc.heliosTo || f != tc.ffmpeg {
			t.Errorf("browser worker %q: helios chunk went to %v, ffmpeg chunk to %v (calls of worker, browser); want %v and %v", tc.browser, h, f, tc.heliosTo, tc.ffmpeg)
		}
	}
}

func TestCloudRunBrowserWorkerTakesHeliosChunks(t *testing.T) {
	dir := t.TempDir()
	bin, err := localnet.Build(context.Background(), "./internal/probefn", dir, "probe")
	if err != nil {
		t.Fatal(err)
	}
	start := func(name, fn string) *gcplocal.Service {
		s, err := gcplocal.StartService(context.Background(), gcplocal.ServiceOptions{
			Name: name, Binary: bin, Env: map[string]string{"PROBE_FUNCTION": fn, "HELIOS_HTTP_TOKEN": probeToken},
			Instances: 1, Concurrency: 1, Pending: 2 * time.Second, LogDir: dir,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	w, b, s := start("probe-worker", "worker"), start("probe-browser", "worker"), start("probe-stitcher", "stitcher")
	d, err := adapter.NewCloudRun(t.Context(), w.URL, s.URL, nil, adapter.WithLocalToken(probeToken), adapter.WithBrowserWorkerURL(b.URL))
	if err != nil {
		t.Fatal(err)
	}
	h, f := routed(t, adapter.New(d), w.Calls, b.Calls)
	if h != [2]int64{0, 1} || f != [2]int64{1, 0} {
		t.Errorf("helios chunk went to %v, ffmpeg chunk to %v (calls of worker, browser); want [0 1] and [1 0]", h, f)
	}
	d, err = adapter.NewCloudRun(t.Context(), w.URL, s.URL, nil, adapter.WithLocalToken(probeToken))
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := routed(t, adapter.New(d), w.Calls, b.Calls); h != [2]int64{1, 0} {
		t.Errorf("without a browser worker the helios chunk went to %v (calls of worker, browser); want [1 0]", h)
	}
	if _, err := adapter.NewCloudRun(t.Context(), w.URL, s.URL, nil, adapter.WithBrowserWorkerURL("http://example.com/")); err == nil {
		t.Error("a plain-http browser worker URL off loopback was accepted")
	}
}
