package adapter_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/adapter"
	"github.com/helios-project/infrastructure/pkg/adapter/adaptertest"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/serve"
)

func TestLocalConformance(t *testing.T) {
	adaptertest.RunConformance(t, adaptertest.Options{Concurrency: 4}, func(t *testing.T) *adapter.Adapter {
		return adapter.New(adapter.NewLocal(
			serve.Handler[job.WorkerJob, job.WorkerResult](adaptertest.ProbeWorker),
			serve.Handler[job.StitchRequest, job.StitchResult](adaptertest.ProbeStitcher), 4))
	})
}

// The local adapter never runs more invocations at once than its limit.
func TestLocalConcurrencyLimit(t *testing.T) {
	const limit = 3
	var inFlight, peak atomic.Int32
	worker := serve.Handler[job.WorkerJob, job.WorkerResult](func(ctx context.Context, w job.WorkerJob) (job.WorkerResult, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		return job.WorkerResult{Chunk: w.Chunk}, nil
	})
	a := adapter.New(adapter.NewLocal(worker, nil, limit))
	done := make(chan error)
	for i := range 12 {
		go func() {
			_, err := a.Execute(t.Context(), job.WorkerJob{JobID: "j", Chunk: job.Chunk{Index: i, Count: 1}, Attempt: 1})
			done <- err
		}()
	}
	for range 12 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := peak.Load(); got != limit {
		t.Errorf("peak concurrency = %d, want %d", got, limit)
	}
}
