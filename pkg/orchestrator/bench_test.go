package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/adapter"
	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/serve"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// BenchmarkDispatch10kChunks runs a 10,000-chunk job through the real
// orchestrator and the local adapter (JSON round trip through the Lambda
// byte-level handler). The worker does no rendering: "handler" returns at
// once, so the figure is the pipeline's own cost per chunk; "command=true"
// also starts a process per chunk through execx, as a real chunk does.
func BenchmarkDispatch10kChunks(b *testing.B) {
	const chunks = 10_000
	runner := &execx.Runner{Allowed: job.Allowlist{"true"}}
	workers := map[string]func(context.Context, job.WorkerJob) (job.WorkerResult, error){
		"handler": func(ctx context.Context, w job.WorkerJob) (job.WorkerResult, error) {
			return job.WorkerResult{JobID: w.JobID, Chunk: w.Chunk, Attempt: w.Attempt, SegmentKey: w.SegmentKey(), Frames: w.Chunk.Count, Winner: true}, nil
		},
		"command=true": func(ctx context.Context, w job.WorkerJob) (job.WorkerResult, error) {
			res, err := runner.Run(ctx, execx.Cmd{Argv: []string{"true"}})
			if err != nil {
				return job.WorkerResult{}, err
			}
			return job.WorkerResult{JobID: w.JobID, Chunk: w.Chunk, Attempt: w.Attempt, SegmentKey: w.SegmentKey(),
				Frames: w.Chunk.Count, DurationMs: res.Duration.Milliseconds(), Winner: true}, nil
		},
	}
	for _, name := range []string{"handler", "command=true"} {
		b.Run(name, func(b *testing.B) {
			if name == "command=true" && testing.Short() {
				b.Skip("starts 10,000 processes")
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			a := adapter.New(adapter.NewLocal(serve.Handler[job.WorkerJob, job.WorkerResult](workers[name]), nil, 0))
			spec := &job.Spec{Metadata: job.Metadata{TotalFrames: chunks, FPS: 30, Width: 64, Height: 64},
				Command: "true", Args: []string{"{output}"}, FramesPerChunk: 1}
			b.ReportAllocs()
			i := 0
			var written int64
			statusSize := 0
			for b.Loop() {
				b.StopTimer()
				bucket, err := storage.Open(b.Context(), "mem://")
				if err != nil {
					b.Fatal(err)
				}
				jobs := jobstore.New(bucket, job.Allowlist{"true"}, log)
				o := orchestrator.New(jobs, a, noStitch{}, orchestrator.Config{StatusInterval: time.Second}, log)
				s := *spec
				s.ID = fmt.Sprintf("bench-%d", i)
				i++
				s.Normalize()
				b.StartTimer()
				st, err := o.Run(b.Context(), &s, orchestrator.RunOptions{})
				if err != nil || st.State != job.StateDone {
					b.Fatalf("Run = %v, %v", st, err)
				}
				b.StopTimer()
				written += jobs.StatusBytesWritten()
				final, _ := json.MarshalIndent(st, "", "  ") // as the store writes it
				statusSize = len(final)
				bucket.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*chunks), "ns/chunk")
			b.ReportMetric(float64(written)/float64(b.N)/1e6, "status-MB-written/job")
			b.ReportMetric(float64(statusSize)/1e3, "status-KB")
		})
	}
}

// noStitch stands in for the stitcher: this benchmark is about dispatch.
type noStitch struct{}

func (noStitch) Stitch(ctx context.Context, r job.StitchRequest) (job.StitchResult, error) {
	return job.StitchResult{OutputKey: r.OutputKey, Frames: r.TotalFrames()}, nil
}
