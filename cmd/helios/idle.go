package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// idleHint says, when nothing is running a job that is not over, so and
// how to run it: a job submitted to a local folder (nothing watches it for
// uploads), or one whose orchestrator stopped (Ctrl-C, a crash). "" when
// the job is over or something runs it.
func idleHint(ctx context.Context, jobs *jobstore.Store, st *job.Status, storageURL, storageFlag string) string {
	if st.State.Final() {
		return ""
	}
	dir, local := storage.LocalDir(storageURL)
	if st.Timings.StartedAt.IsZero() { // uploaded, never started
		if !local {
			return "" // the upload event starts it
		}
		return fmt.Sprintf("nothing runs jobs submitted to a local folder; render it here with: helios job run %s --out PATH%s",
			shellQuote(filepath.Join(dir, filepath.FromSlash(job.JobKey(st.JobID)))), storageFlag)
	}
	gone := false
	if local {
		gone = holderGone(dir, st.JobID)
	} else if orphaned, err := jobs.Orphaned(ctx, st); err == nil {
		gone = orphaned
	}
	if !gone {
		return ""
	}
	if local {
		return fmt.Sprintf("job %s is interrupted after %d of %d chunks: nothing is running it; resume it with: helios job run %s --out PATH%s",
			st.JobID, st.ChunksDone, st.ChunksTotal, shellQuote(filepath.Join(dir, filepath.FromSlash(job.SpecKey(st.JobID)))), storageFlag)
	}
	return fmt.Sprintf("job %s is interrupted after %d of %d chunks: no orchestrator holds it; the scheduled sweep resumes it within minutes, or invoke the orchestrator with {\"jobId\": %q}",
		st.JobID, st.ChunksDone, st.ChunksTotal, st.JobID)
}

// holderGone reports whether no helios process holds the job's lock on a
// local folder (see lockJob): the run that wrote its status has ended.
func holderGone(dir, id string) bool {
	f, err := os.Open(filepath.Join(dir, ".locks", id+".lock"))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return false
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return true
}
