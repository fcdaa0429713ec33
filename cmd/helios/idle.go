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
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// idleHint says, when nothing is running a job that is not over, so and
// how to run it: a job submitted to a local folder (nothing watches it for
// uploads), or one whose orchestrator stopped (Ctrl-C, a crash). "" when
// the job is over or something runs it. stuck is true when nothing but the
// user will ever run it (a local folder): waiting for it is pointless.
func idleHint(ctx context.Context, jobs *jobstore.Store, st *job.Status, storageURL string) (hint string, stuck bool) {
	if st.State.Final() {
		return "", false
	}
	dir, local := storage.LocalDir(storageURL)
	if local && !holderGone(dir, st.JobID) {
		return "", false // a helios process here runs it
	}
	if st.Timings.StartedAt.IsZero() { // uploaded, never started
		if !local {
			return "", false // the upload event starts it
		}
		return "nothing runs jobs submitted to a local folder; render it here with: " + localRunCommand(dir, layout.JobKey(st.JobID), st.JobID), true
	}
	if local {
		return fmt.Sprintf("job %s is interrupted after %d of %d chunks: nothing is running it; resume it with: %s",
			st.JobID, st.ChunksDone, st.ChunksTotal, localRunCommand(dir, layout.SpecKey(st.JobID), st.JobID)), true
	}
	if orphaned, err := jobs.Orphaned(ctx, st); err != nil || !orphaned {
		return "", false
	}
	return fmt.Sprintf("job %s is interrupted after %d of %d chunks: no orchestrator holds it; the scheduled sweep resumes it within minutes, or invoke the orchestrator with {\"jobId\": %q}",
		st.JobID, st.ChunksDone, st.ChunksTotal, st.JobID), false
}

// localRunCommand is the `helios job run` that renders (or resumes) job id
// from the spec stored at key of the local folder dir. It names the folder
// and the id whatever the user's defaults, so it works pasted anywhere.
func localRunCommand(dir, key, id string) string {
	spec := filepath.Join(dir, filepath.FromSlash(key))
	if abs, err := filepath.Abs(spec); err == nil {
		spec = abs
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return fmt.Sprintf("helios job run %s --id %s --out PATH --storage %s", shellQuote(spec), shellQuote(id), shellQuote(dir))
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
