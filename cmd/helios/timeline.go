package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/pipeline"
	"github.com/helios-project/infrastructure/pkg/timeline"
)

func newTimelineCommand(e *env) *cobra.Command {
	var f commonFlags
	var out string
	cmd := &cobra.Command{
		Use:   "timeline ID --out FILE.svg",
		Short: "Draw where a job's time went: each chunk attempt on its lane, the stitch, as SVG",
		Long: "Draw a job's history as an SVG picture: every worker invocation as a bar on its\n" +
			"dispatch lane over time (done, retried, throttled, failed, abandoned told apart by\n" +
			"colour; hover a bar for its chunk and attempt), the stitch at the end, an axis in\n" +
			"seconds and a legend. The history is written when a run ends.",
		Args: exactArgs(1, "one job id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{errors.New("--out FILE.svg is required: where to write the picture")}
			}
			if err := checkOut(out); err != nil {
				return usageError{err}
			}
			return f.onStack(cmd.Context(), e, func(stack *pipeline.Stack) error {
				st, err := stack.Jobs.Lookup(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				h, err := stack.Jobs.History(cmd.Context(), st.JobID)
				if err != nil {
					if errors.Is(err, jobstore.ErrNotFound) {
						return fmt.Errorf("job %s has no history yet: it is written when a run of the job ends", st.JobID)
					}
					return err
				}
				title := fmt.Sprintf("job %s: %s, %d chunks, %d frames", st.JobID, st.State, st.ChunksTotal, st.TotalFrames)
				err = replaceFile(out, func(tmp string) error {
					f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
					if err != nil {
						return err
					}
					if err := timeline.Render(f, h, timeline.Options{Title: title}); err != nil {
						f.Close()
						return err
					}
					return f.Close()
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s: %s, %s, %s\n", out, timeline.Count(len(h.Attempts), "attempt", "attempts"),
					timeline.Count(len(h.Stitches), "stitch", "stitches"), timeline.Count(max(len(h.Runs), 1), "run", "runs"))
				return nil
			})
		},
	}
	f.register(cmd, false)
	cmd.Flags().StringVarP(&out, "out", "o", "", "the SVG file to write (required)")
	return cmd
}
