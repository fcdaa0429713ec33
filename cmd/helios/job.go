package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/pipeline"
	"github.com/helios-project/infrastructure/pkg/storage"
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

// setup reads the configuration, with flags overriding the environment, and
// opens the bucket.
func (f *commonFlags) setup(ctx context.Context, e *env) (config.Config, *blob.Bucket, *slog.Logger, error) {
	cfg, err := config.FromEnv(e.getenv)
	if err != nil {
		return cfg, nil, nil, usageError{err}
	}
	if f.storage != "" {
		cfg.StorageURL = f.storage
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	b, err := storage.Open(ctx, cfg.StorageURL)
	if err != nil {
		return cfg, nil, nil, usageError{err}
	}
	return cfg, b, log, nil
}

func newRunCommand(e *env) *cobra.Command {
	var f commonFlags
	var out, id string
	var concurrency int
	cmd := &cobra.Command{
		Use:   "run SPEC.json --out PATH",
		Short: "Render a job on this machine and save the video",
		Long: "Render a job spec (native or Helios form) in chunks on this machine, with the same\n" +
			"handlers the cloud functions run, stitch the chunks and copy the video to PATH.\n" +
			"Running it again resumes: only chunks without a completion marker are rendered.\n" +
			"Exit status: 0 done, 1 failed or cancelled, 2 bad input or usage.",
		Args: exactArgs(1, "one job spec file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{errors.New("--out PATH is required: where to save the video")}
			}
			return runJob(cmd.Context(), e, &f, args[0], out, id, concurrency)
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVarP(&out, "out", "o", "", "where to save the video (required)")
	cmd.Flags().StringVar(&id, "id", "", "job id (default: the spec's id, else the file name)")
	cmd.Flags().IntVar(&concurrency, "concurrency", 0, "chunks rendered at once (default $"+config.EnvConcurrency+" or the number of CPUs)")
	return cmd
}

func runJob(ctx context.Context, e *env, f *commonFlags, specPath, out, id string, concurrency int) error {
	cfg, b, log, err := f.setup(ctx, e)
	if err != nil {
		return err
	}
	defer b.Close()
	if concurrency < 0 {
		return usageError{fmt.Errorf("--concurrency must be at least 1; got %d", concurrency)}
	}
	if concurrency > 0 {
		cfg.Concurrency = concurrency
	}
	a, err := pipeline.Adapter(ctx, b, cfg, log)
	if err != nil {
		return usageError{err}
	}
	orch := pipeline.Orchestrator(b, a, cfg, log)
	spec, err := prepare(e, orch, specPath, id)
	if err != nil {
		return err
	}

	if dir, ok := storage.LocalDir(cfg.StorageURL); ok {
		unlock, err := lockJob(dir, spec.ID)
		if err != nil {
			fmt.Fprintf(e.stderr, "helios: %v\n", err)
			return errJobFailed
		}
		defer unlock()
	}

	prog := newProgress(e.stderr, spec.Metadata.TotalFrames)
	start := time.Now()
	st, err := orch.Run(ctx, spec, orchestrator.RunOptions{Progress: prog.update})
	prog.finish()
	if errors.Is(err, orchestrator.ErrConflict) {
		return usageError{fmt.Errorf("%w: pass --id to render it as a new job", err)}
	}
	if errors.Is(err, orchestrator.ErrAlreadyRunning) || errors.Is(err, orchestrator.ErrLeaseLost) {
		fmt.Fprintf(e.stderr, "helios: %v\nfollow it with: helios job watch %s\n", err, spec.ID)
		return errJobFailed
	}
	if err != nil {
		if st != nil && ctx.Err() != nil {
			fmt.Fprintf(e.stderr, "helios: interrupted after %d of %d chunks; run the same command again to resume\n", st.ChunksDone, st.ChunksTotal)
			return errJobFailed
		}
		return err
	}
	wall := time.Since(start)
	if st.State == job.StateDone {
		if err := download(ctx, b, st.Output, out); err != nil {
			return err
		}
	}
	if f.json {
		if err := printJSON(e.stdout, st); err != nil {
			return err
		}
	} else {
		printSummary(e.stdout, st, spec, out, wall)
	}
	if st.State != job.StateDone {
		if f.json {
			printFailure(e.stderr, st)
		}
		return errJobFailed
	}
	return nil
}

// prepare reads, decodes and validates a spec file, listing every problem
// on stderr. Nothing is written anywhere.
func prepare(e *env, orch *orchestrator.Orchestrator, specPath, id string) (*job.Spec, error) {
	data, err := os.ReadFile(specPath)
	if err != nil {
		return nil, usageError{err}
	}
	if id == "" {
		id = idFromSpec(data, specPath)
	}
	spec, err := orch.Prepare(bytes.NewReader(data), id)
	var ve *job.ValidationError
	switch {
	case errors.As(err, &ve):
		fmt.Fprintf(e.stderr, "helios: %s is not a valid job spec:\n", specPath)
		for _, p := range ve.Problems {
			fmt.Fprintf(e.stderr, "  - %s\n", p)
		}
		return nil, usageError{fmt.Errorf("%d problem(s) in %s", len(ve.Problems), specPath)}
	case err != nil:
		return nil, usageError{err}
	}
	return spec, nil
}

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
			return f.onBucket(cmd.Context(), e, func(b *blob.Bucket) error {
				return watch(cmd.Context(), e, b, args[0], interval, f.json)
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
func watch(ctx context.Context, e *env, b *blob.Bucket, id string, interval time.Duration, asJSON bool) error {
	var prog *progress
	orch := lookup(e, b)
	warned := false
	for {
		st, err := orch.Lookup(ctx, id)
		if err != nil {
			return err
		}
		if idle := time.Since(st.Timings.UpdatedAt); !warned && !st.State.Final() && !st.Timings.UpdatedAt.IsZero() && idle > staleAfter {
			fmt.Fprintf(e.stderr, "helios: job %s has reported no progress for %s; if its orchestrator stopped, resume it (helios job run, or invoke the orchestrator with {\"jobId\": %q})\n",
				id, idle.Round(time.Second), id)
			warned = true
		}
		if prog == nil && st.TotalFrames > 0 {
			prog = newProgress(e.stderr, st.TotalFrames)
		}
		if prog != nil {
			prog.update(*st)
		}
		if st.State.Final() {
			if prog != nil {
				prog.finish()
			}
			if asJSON {
				if err := printJSON(e.stdout, st); err != nil {
					return err
				}
			} else if st.State == job.StateDone {
				fmt.Fprintf(e.stdout, "job %s done: %s (%d frames, %d bytes)\n", id, st.Output, st.FramesDone, st.OutputBytes)
			} else {
				printFailure(e.stdout, st)
			}
			if st.State != job.StateDone {
				return errJobFailed
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// lookup is an orchestrator that only reads: status, or what an uploaded
// spec would become.
func lookup(e *env, b *blob.Bucket) *orchestrator.Orchestrator {
	cfg, _ := config.FromEnv(e.getenv) // already validated by setup
	return orchestrator.New(b, nil, nil, orchestrator.Config{Allowed: cfg.Allowed}, slog.New(slog.DiscardHandler))
}

// idFromSpec is the spec's own id if it has one, else the file's base name.
func idFromSpec(data []byte, path string) string {
	if id := job.PeekID(data); id != "" {
		return id
	}
	return strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
}

// download copies the output to path, atomically: a partial file never
// appears under the final name.
func download(ctx context.Context, b *blob.Bucket, key, path string) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := fmt.Sprintf("%s.part-%d", path, os.Getpid())
	_ = os.Remove(tmp)
	if _, err := storage.DownloadFile(ctx, b, key, tmp); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printSummary(w io.Writer, st *job.Status, spec *job.Spec, out string, wall time.Duration) {
	if st.State != job.StateDone {
		printFailure(w, st)
		return
	}
	seconds := float64(st.FramesDone) / spec.Metadata.FPS
	fmt.Fprintf(w, "done: %s\n", out)
	fmt.Fprintf(w, "  frames:    %d (%dx%d at %g fps)\n", st.FramesDone, spec.Metadata.Width, spec.Metadata.Height, spec.Metadata.FPS)
	fmt.Fprintf(w, "  duration:  %.2f s\n", seconds)
	fmt.Fprintf(w, "  chunks:    %d\n", st.ChunksTotal)
	fmt.Fprintf(w, "  wall time: %.2f s (render %.2f s, stitch %.2f s)\n", wall.Seconds(),
		float64(st.Timings.RenderMs)/1000, float64(st.Timings.StitchMs)/1000)
	fmt.Fprintf(w, "  size:      %d bytes\n", st.OutputBytes)
}

func printFailure(w io.Writer, st *job.Status) {
	fmt.Fprintf(w, "job %s %s after %d of %d chunks\n", st.JobID, st.State, st.ChunksDone, st.ChunksTotal)
	if st.Error != nil {
		fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(st.Error.Error(), "\n", "\n  | "))
	}
}

// onBucket opens the storage, runs fn and closes it; a job that does not
// exist is a usage error (exit 2).
func (f *commonFlags) onBucket(ctx context.Context, e *env, fn func(*blob.Bucket) error) error {
	_, b, _, err := f.setup(ctx, e)
	if err != nil {
		return err
	}
	defer b.Close()
	err = fn(b)
	if errors.Is(err, orchestrator.ErrNotFound) {
		return usageError{err}
	}
	return err
}

func newStatusCommand(e *env) *cobra.Command {
	var f commonFlags
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show a job's progress",
		Args:  exactArgs(1, "one job id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.onBucket(cmd.Context(), e, func(b *blob.Bucket) error {
				st, err := lookup(e, b).Lookup(cmd.Context(), args[0])
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
			return f.onBucket(cmd.Context(), e, func(b *blob.Bucket) error {
				if err := orchestrator.Cancel(cmd.Context(), b, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "cancel requested for job %s\n", args[0])
				return nil
			})
		},
	}
	f.register(cmd, false)
	return cmd
}
