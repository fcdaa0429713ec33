package orchestrator

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
)

// recorder keeps a run's invocations for the job's history, and hands out
// dispatch lanes: at most Concurrency invocations are in flight, each on
// the lowest free lane, so a lane reads as one worker's time.
type recorder struct {
	lanes chan int
	mu    sync.Mutex
	tl    job.History
	start time.Time // the run's
}

func newRecorder(id string, concurrency int) *recorder {
	rec := &recorder{lanes: make(chan int, concurrency), tl: job.History{JobID: id}, start: time.Now()}
	for i := range concurrency {
		rec.lanes <- i
	}
	return rec
}

func (rec *recorder) attempt(a job.Attempt) {
	rec.mu.Lock()
	rec.tl.Attempts = append(rec.tl.Attempts, a)
	rec.mu.Unlock()
}

func (rec *recorder) stitch(start, end time.Time) {
	rec.mu.Lock()
	rec.tl.Stitches = append(rec.tl.Stitches, job.Span{Start: start.UnixMilli(), End: end.UnixMilli()})
	rec.mu.Unlock()
}

// save adds this run's records to what earlier runs of the job stored.
func (rec *recorder) save(ctx context.Context, r *run) {
	rec.mu.Lock()
	tl := rec.tl
	rec.mu.Unlock()
	tl.Runs = []job.Span{{Start: rec.start.UnixMilli(), End: time.Now().UnixMilli()}}
	prev, err := r.store.History(ctx, r.spec.ID)
	switch {
	case err == nil:
		tl.Attempts = append(prev.Attempts, tl.Attempts...)
		tl.Stitches = append(prev.Stitches, tl.Stitches...)
		tl.Runs = append(prev.Runs, tl.Runs...)
	case !errors.Is(err, jobstore.ErrNotFound):
		// Unreadable now: writing this run alone would lose the earlier ones.
		r.log.Warn("read the job's history; this run's is not added", "error", err)
		return
	}
	if err := r.store.SaveHistory(ctx, tl); err != nil {
		r.log.Warn("write the job's history", "error", err)
	}
}
