package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/pipeline"
)

func newStatusCommand(e *env) *cobra.Command {
	var f commonFlags
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show a job's progress",
		Args:  exactArgs(1, "one job id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.onStack(cmd.Context(), e, func(stack *pipeline.Stack) error {
				st, err := stack.Jobs.Lookup(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(e.stdout, st)
				}
				fmt.Fprintf(e.stdout, "job %s: %s\n", st.JobID, st.State)
				fmt.Fprintf(e.stdout, "  chunks: %d done, %d failed, %d total\n", st.ChunksDone, st.ChunksFailed, st.ChunksTotal)
				fmt.Fprintf(e.stdout, "  frames: %d of %d\n", st.FramesDone, st.TotalFrames)
				if st.Output != "" {
					fmt.Fprintf(e.stdout, "  output: %s (%d bytes)\n", st.Output, st.OutputBytes)
				}
				if st.Error != nil {
					fmt.Fprintf(e.stdout, "  error:  %s\n", strings.ReplaceAll(st.Error.Error(), "\n", "\n  | "))
				}
				printCost(e.stdout, "  ", 8, st)
				printWarnings(e.stdout, "  ", 8, st)
				if hint, _ := idleHint(cmd.Context(), stack.Jobs, st, stack.Config.StorageURL); hint != "" {
					fmt.Fprintf(e.stdout, "  note:   %s\n", hint)
				}
				return nil
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

func newCancelCommand(e *env) *cobra.Command {
	var f commonFlags
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Ask a job to stop; it ends cancelled and nothing is stitched",
		Args:  exactArgs(1, "one job id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.onStack(cmd.Context(), e, func(stack *pipeline.Stack) error {
				st, err := stack.Jobs.Lookup(cmd.Context(), args[0])
				if err == nil && st.State == job.StateCancelled {
					fmt.Fprintf(e.stderr, "helios: job %s is already cancelled; nothing to cancel\n", args[0])
					return errJobFailed
				}
				err = stack.Jobs.Cancel(cmd.Context(), args[0])
				if errors.Is(err, jobstore.ErrEnded) {
					fmt.Fprintf(e.stderr, "helios: %v; nothing to cancel\n", err)
					return errJobFailed
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "cancel requested for job %s\n", args[0])
				// A job a run stopped (Ctrl-C) and nothing resumes: the request
				// waits for the next run. (One never run is cancelled now.)
				if st != nil && !st.Timings.StartedAt.IsZero() {
					if _, stuck := idleHint(cmd.Context(), stack.Jobs, st, stack.Config.StorageURL); stuck {
						fmt.Fprintf(e.stdout, "nothing is running it: it stays as it is (%d of %d chunks done), and a run of it ends at once, cancelled (--restart renders it anyway)\n", st.ChunksDone, st.ChunksTotal)
					}
				}
				return nil
			})
		},
	}
	f.register(cmd, false)
	return cmd
}

func newBudgetCommand(e *env) *cobra.Command {
	var f commonFlags
	var b job.Budget
	cmd := &cobra.Command{
		Use:   "budget ID --usd N | --worker-seconds N",
		Short: "Raise (or set) the budget of a job's next runs, in place of its spec's",
		Long: "A job that reached its budget failed with budget_exceeded and kept its finished chunks. " +
			"Set a higher budget here, then run the job again (helios job run with the same spec, or the orchestrator " +
			"invoked with {\"jobId\": ID}): it renders only what is left. The deployment's caps (HELIOS_BUDGET_USD, " +
			"HELIOS_BUDGET_WORKER_SECONDS) still apply.",
		Args: exactArgs(1, "one job id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if b == (job.Budget{}) {
				return usageError{errors.New("give --usd or --worker-seconds (or both)")}
			}
			if err := job.CheckBudget(b); err != nil {
				return usageError{asFlagProblems(err, map[string]string{"budget.usd": "--usd", "budget.workerSeconds": "--worker-seconds"})}
			}
			return f.onStack(cmd.Context(), e, func(stack *pipeline.Stack) error {
				if err := stack.Jobs.RaiseBudget(cmd.Context(), args[0], b); errors.Is(err, jobstore.ErrNotAccepted) {
					return usageError{fmt.Errorf("job %q not found: nothing has run it in this storage", args[0])}
				} else if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "job %s: budget set to %s for its next runs\n", args[0], describeBudget(b))
				fmt.Fprintln(e.stdout, capNote(b, stack.Config.Budget))
				return nil
			})
		},
	}
	f.register(cmd, false)
	cmd.Flags().Float64Var(&b.USD, "usd", 0, "the most the job may cost, in US dollars")
	cmd.Flags().Float64Var(&b.WorkerSeconds, "worker-seconds", 0, "the most worker time the job may use, in seconds")
	return cmd
}

// capNote says that the deployment's caps still apply: with the figures
// where this configuration knows them (the CLI's own HELIOS_BUDGET_*, as
// a local run's orchestrator has them), and what they leave of b.
func capNote(b, ceiling job.Budget) string {
	if ceiling == (job.Budget{}) {
		return "  the deployment's caps (HELIOS_BUDGET_USD, HELIOS_BUDGET_WORKER_SECONDS of its orchestrator) still apply: a job's budget cannot raise them"
	}
	within := b.Within(ceiling)
	note := fmt.Sprintf("  the deployment's cap of %s (HELIOS_BUDGET_USD, HELIOS_BUDGET_WORKER_SECONDS) still applies", describeBudget(ceiling))
	if within != b {
		note += fmt.Sprintf(": the job may use %s, not more", describeBudget(within))
	}
	return note
}

func describeBudget(b job.Budget) string {
	var parts []string
	if b.USD > 0 {
		parts = append(parts, fmt.Sprintf("$%g", b.USD))
	}
	if b.WorkerSeconds > 0 {
		parts = append(parts, fmt.Sprintf("%g worker-seconds", b.WorkerSeconds))
	}
	return strings.Join(parts, " and ")
}

// asFlagProblems words a spec validation of values that came from flags
// as the flags: "--usd -1: must be ...", not "budget.usd: ...".
func asFlagProblems(err error, flags map[string]string) error {
	var ve *joberr.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var msgs []string
	for _, p := range ve.Problems {
		name, ok := flags[p.Path]
		if !ok {
			return err
		}
		msgs = append(msgs, name+": "+p.Message)
	}
	return errors.New(strings.Join(msgs, "; "))
}
