package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/pipeline"
)

func newRootCommand(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "helios",
		Short:         "Render videos in chunks, locally or on serverless workers",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	jobCmd := &cobra.Command{Use: "job", Short: "Run and manage render jobs"}
	jobCmd.AddCommand(newRunCommand(e), newSubmitCommand(e), newStatusCommand(e), newWatchCommand(e), newCancelCommand(e))
	root.AddCommand(jobCmd)
	return root
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s: expected %s, got %d arguments (see --help)", cmd.CommandPath(), what, len(args))}
		}
		return nil
	}
}

func isCobraUsage(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.Contains(msg, "required flag")
}

// commonFlags are shared by the job subcommands.
type commonFlags struct {
	storage string
	json    bool
	verbose bool
}

func (f *commonFlags) register(cmd *cobra.Command, withJSON bool) {
	cmd.Flags().StringVar(&f.storage, "storage", "", "storage URL or folder (default $"+config.EnvStorageURL+" or ./"+config.DefaultStorageURL+")")
	if withJSON {
		cmd.Flags().BoolVar(&f.json, "json", false, "print the status as JSON on stdout")
	}
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "log each step")
}

// open reads the configuration, with flags overriding the environment, and
// opens the stack on its storage (the caller closes it).
func (f *commonFlags) open(ctx context.Context, e *env) (*pipeline.Stack, error) {
	cfg, err := config.FromEnv(e.getenv)
	if err != nil {
		return nil, usageError{err}
	}
	if f.storage != "" {
		cfg.StorageURL = f.storage
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	stack, err := pipeline.Open(ctx, cfg, log)
	if err != nil {
		return nil, usageError{err}
	}
	return stack, nil
}

// onJobs opens the job store, runs fn and closes it; a job that does not
// exist is a usage error (exit 2).
func (f *commonFlags) onJobs(ctx context.Context, e *env, fn func(*jobstore.Store) error) error {
	stack, err := f.open(ctx, e)
	if err != nil {
		return err
	}
	defer stack.Close()
	err = fn(stack.Jobs)
	if errors.Is(err, jobstore.ErrNotFound) {
		return usageError{err}
	}
	return err
}
