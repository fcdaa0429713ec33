package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/pipeline"
)

func newWatchCommand(e *env) *cobra.Command {
	var f commonFlags
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a job until it ends; exit 0 if it is done, 1 if it failed or was cancelled",
		Args:  exactArgs(1, "one job id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return usageError{fmt.Errorf("--interval must be positive; got %s", interval)}
			}
			return f.onStack(cmd.Context(), e, func(stack *pipeline.Stack) error {
				return watch(cmd.Context(), e, stack.Jobs, args[0], interval, f.json, stack.Config.StorageURL, f.storageFlag())
			})
		},
	}
	f.register(cmd, true)
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often to read the status")
	return cmd
}

// staleAfter is how long a running job may go without writing its status
// before watch says so (a live orchestrator writes it at least every minute).
const staleAfter = 3 * time.Minute

// watch polls a job's status until it is final. A job submitted but not
// started yet is pending.
func watch(ctx context.Context, e *env, jobs *jobstore.Store, id string, interval time.Duration, asJSON bool, storageURL, storageFlag string) error {
	w := &watcher{e: e, jobs: jobs, id: id, storageURL: storageURL}
	for {
		st, err := jobs.Lookup(ctx, id)
		if err != nil {
			return err
		}
		if err := w.hintIdle(ctx, st); err != nil {
			return err
		}
		w.warnStale(st)
		w.show(st)
		if st.State.Final() {
			w.stop(false)
			return w.report(st, asJSON)
		}
		select {
		case <-ctx.Done():
			w.stop(true)
			fmt.Fprintf(e.stderr, "helios: stopped watching job %s; follow it again with: helios job watch %s%s\n", id, id, storageFlag)
			return errInterrupted
		case <-time.After(interval):
		}
	}
}

// watcher is what one watch keeps between polls: the progress shown, once
// the job's size is known, and whether a hint was given (one is enough).
type watcher struct {
	e          *env
	jobs       *jobstore.Store
	id         string
	storageURL string
	prog       *progress
	warned     bool
}

// hintIdle says, once, that nothing runs the job and how to run it. When
// nothing but the user ever will (see idleHint), waiting is pointless: the
// watch ends with errNotRunning. The hint costs storage reads, so it is
// looked for only until one is given.
func (w *watcher) hintIdle(ctx context.Context, st *job.Status) error {
	if w.warned {
		return nil
	}
	hint, stuck := idleHint(ctx, w.jobs, st, w.storageURL)
	if stuck {
		w.stop(true)
		fmt.Fprintf(w.e.stderr, "helios: %s\n", hint)
		return errNotRunning
	}
	if hint != "" {
		fmt.Fprintf(w.e.logs, "helios: %s\n", hint)
		w.warned = true
	}
	return nil
}

// warnStale says, once, that a running job has not written its status for
// longer than a live orchestrator would let pass, and how to resume it.
func (w *watcher) warnStale(st *job.Status) {
	idle := time.Since(st.Timings.UpdatedAt)
	if w.warned || st.State.Final() || st.Timings.UpdatedAt.IsZero() || idle <= staleAfter {
		return
	}
	fmt.Fprintf(w.e.logs, "helios: job %s has reported no progress for %s; if its orchestrator stopped, resume it (helios job run, or invoke the orchestrator with {\"jobId\": %q})\n",
		w.id, idle.Round(time.Second), w.id)
	w.warned = true
}

// show updates the progress, shown from the first status that gives the
// job's size.
func (w *watcher) show(st *job.Status) {
	if w.prog == nil && st.TotalFrames > 0 {
		w.prog = newProgress(w.e.stderr, st.TotalFrames, w.e.logs)
	}
	if w.prog != nil {
		w.prog.update(*st)
	}
}

// stop ends the progress, if any is shown.
func (w *watcher) stop(interrupted bool) {
	if w.prog != nil {
		w.prog.finish(interrupted)
	}
}

// report prints a final status on stdout, as JSON or as a summary with its
// cost; it is the watch's exit status: nil only for a job that is done.
func (w *watcher) report(st *job.Status, asJSON bool) error {
	switch {
	case asJSON:
		if err := printJSON(w.e.stdout, st); err != nil {
			return err
		}
	case st.State == job.StateDone:
		fmt.Fprintf(w.e.stdout, "job %s done: %s (%d frames, %d bytes)\n", w.id, objectLocation(w.storageURL, st.Output), st.FramesDone, st.OutputBytes)
		printCost(w.e.stdout, "  ", 8, st)
		printWarnings(w.e.stdout, "  ", 8, st)
	default:
		printFailure(w.e.stdout, st) // with its cost
	}
	if st.State != job.StateDone {
		return errJobFailed
	}
	return nil
}
