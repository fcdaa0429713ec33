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
	var prog *progress
	warned := false
	for {
		st, err := jobs.Lookup(ctx, id)
		if err != nil {
			return err
		}
		if !warned { // the hint costs storage reads: look once it is said no more
			hint, stuck := idleHint(ctx, jobs, st, storageURL)
			if stuck { // nothing will run it: say how to, and do not wait forever
				if prog != nil {
					prog.finish(true)
				}
				fmt.Fprintf(e.stderr, "helios: %s\n", hint)
				return errNotRunning
			}
			if hint != "" {
				fmt.Fprintf(e.logs, "helios: %s\n", hint)
				warned = true
			}
		}
		if idle := time.Since(st.Timings.UpdatedAt); !warned && !st.State.Final() && !st.Timings.UpdatedAt.IsZero() && idle > staleAfter {
			fmt.Fprintf(e.logs, "helios: job %s has reported no progress for %s; if its orchestrator stopped, resume it (helios job run, or invoke the orchestrator with {\"jobId\": %q})\n",
				id, idle.Round(time.Second), id)
			warned = true
		}
		if prog == nil && st.TotalFrames > 0 {
			prog = newProgress(e.stderr, st.TotalFrames, e.logs)
		}
		if prog != nil {
			prog.update(*st)
		}
		if st.State.Final() {
			if prog != nil {
				prog.finish(false)
			}
			if asJSON {
				if err := printJSON(e.stdout, st); err != nil {
					return err
				}
			} else if st.State == job.StateDone {
				fmt.Fprintf(e.stdout, "job %s done: %s (%d frames, %d bytes)\n", id, objectLocation(storageURL, st.Output), st.FramesDone, st.OutputBytes)
				printCost(e.stdout, "  ", 8, st)
				printWarnings(e.stdout, "  ", 8, st)
			} else {
				printFailure(e.stdout, st) // with its cost
			}
			if st.State != job.StateDone {
				return errJobFailed
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if prog != nil {
				prog.finish(true)
			}
			fmt.Fprintf(e.stderr, "helios: stopped watching job %s; follow it again with: helios job watch %s%s\n", id, id, storageFlag)
			return errInterrupted
		case <-time.After(interval):
		}
	}
}
