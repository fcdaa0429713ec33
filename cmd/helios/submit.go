package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/storage"
)

func newSubmitCommand(e *env) *cobra.Command {
	var f commonFlags
	var id string
	cmd := &cobra.Command{
		Use:   "submit SPEC.json --storage URL",
		Short: "Validate a job and upload it to jobs/<id>.json, where the upload starts it (S3 or GCS trigger)",
		Args:  exactArgs(1, "one job spec file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, b, log, err := f.setup(cmd.Context(), e)
			if err != nil {
				return err
			}
			defer b.Close()
			orch := orchestrator.New(b, nil, nil, orchestrator.Config{Allowed: cfg.Allowed}, log)
			spec, err := prepare(e, orch, args[0], id)
			if err != nil {
				return err
			}
			if err := orch.Submit(cmd.Context(), spec); errors.Is(err, orchestrator.ErrConflict) {
				return usageError{fmt.Errorf("%w: pass --id to submit it as a new job", err)}
			} else if err != nil {
				return err
			}
			if f.json {
				return printJSON(e.stdout, map[string]string{"jobId": spec.ID, "key": job.JobKey(spec.ID)})
			}
			fmt.Fprintf(e.stdout, "submitted job %s as %s\nfollow it with: helios job watch %s\n", spec.ID, job.JobKey(spec.ID), spec.ID)
			if _, local := storage.LocalDir(cfg.StorageURL); local {
				fmt.Fprintf(e.stderr, "note: nothing watches a local folder for uploads; render it here with: helios job run %s --out PATH\n", args[0])
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&id, "id", "", "job id (default: the spec's id, else the file name)")
	return cmd
}
