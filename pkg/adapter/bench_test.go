package adapter_test

import (
	"testing"

	"github.com/helios-project/infrastructure/pkg/adapter"
	"github.com/helios-project/infrastructure/pkg/adapter/adaptertest"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/serve"
)

// BenchmarkInvoke measures what one chunk's invocation costs in transport
// alone, with a worker that does nothing: "local" is the in-process
// Local; "lambda" goes SDK → Lambda API endpoint → emulator →
// bootstrap → handler and back, as each chunk does on AWS (less the network);
// "cloudrun" goes HTTP client → Cloud Run front → functions-framework in the
// function binary → handler and back.
func BenchmarkInvoke(b *testing.B) {
	w := job.WorkerJob{JobID: "bench", Chunk: job.Chunk{Index: 1, Start: 100, Count: 100}, Attempt: 1,
		Command: adaptertest.ProbeEcho, Args: []string{"-i", "input.mp4", "-vf", "trim=start_frame=100:end_frame=200", "-y", "chunk.mp4"},
		OutputFile: "chunk.mp4"}
	run := func(b *testing.B, a *adapter.Adapter) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Execute(b.Context(), w); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("local", func(b *testing.B) {
		run(b, adapter.New(adapter.NewLocal(serve.Handler[job.WorkerJob, job.WorkerResult](adaptertest.ProbeWorker), nil, 1)))
	})
	b.Run("lambda", func(b *testing.B) {
		l := startProbeLambda(b, 1)
		run(b, adapter.New(adapter.NewLambda(lambdaClient(l.URL), "probe-worker", "probe-stitcher")))
	})
	b.Run("cloudrun", func(b *testing.B) {
		w, s := startProbeServices(b, 1)
		d, err := adapter.NewCloudRun(b.Context(), w.URL, s.URL, nil, adapter.WithLocalToken(probeToken))
		if err != nil {
			b.Fatal(err)
		}
		run(b, adapter.New(d))
	})
}
