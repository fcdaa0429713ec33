package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

func newSubmitCommand(e *env) *cobra.Command {
	var f commonFlags
	var sf specFlags
	cmd := &cobra.Command{
		Use:   "submit SPEC.json --storage URL",
		Short: "Validate a job and upload it to jobs/<id>.json, where the upload starts it (S3 or GCS trigger)",
		Args:  exactArgs(1, "one job spec file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			stack, err := f.open(cmd.Context(), e)
			if err != nil {
				return err
			}
			defer stack.Close()
			spec, err := prepare(cmd.Context(), e, stack, args[0], sf)
			if err != nil {
				return err
			}
			if err := stack.Jobs.Submit(cmd.Context(), spec); errors.Is(err, jobstore.ErrConflict) {
				return usageError{fmt.Errorf("%w: pass --id to submit it as a new job", err)}
			} else if err != nil {
				return err
			}
			if f.json {
				return printJSON(e.stdout, map[string]string{"jobId": spec.ID, "key": layout.JobKey(spec.ID)})
			}
			if dir, local := storage.LocalDir(stack.Config.StorageURL); local {
				// Nothing would ever run it: watching it would wait forever.
				fmt.Fprintf(e.stdout, "submitted job %s as %s\nnothing watches a local folder for uploads; render it here with:\n  %s\n",
					spec.ID, objectLocation(stack.Config.StorageURL, layout.JobKey(spec.ID)), localRunCommand(dir, layout.JobKey(spec.ID), spec.ID))
				return nil
			}
			fmt.Fprintf(e.stdout, "submitted job %s as %s\nfollow it with: helios job watch %s%s\n", spec.ID, layout.JobKey(spec.ID), spec.ID, f.storageFlag())
			return nil
		},
	}
	f.register(cmd, true)
	sf.register(cmd)
	return cmd
}
