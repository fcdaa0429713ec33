package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/helios-project/infrastructure/pkg/assets"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/pipeline"
	"github.com/helios-project/infrastructure/pkg/storage"
)

func newRunCommand(e *env) *cobra.Command {
	var f commonFlags
	var sf specFlags
	var out string
	var restart bool
	cmd := &cobra.Command{
		Use:   "run SPEC.json --out PATH",
		Short: "Render a job on this machine and save the video",
		Long: "Render a job spec (native or Helios form) in chunks on this machine, with the same\n" +
			"handlers the cloud functions run, stitch the chunks and copy the video to PATH.\n" +
			"Running it again resumes: only chunks without a completion marker are rendered.\n" +
			"Exit status: 0 done, 1 failed or cancelled, 2 bad input or usage, 130 interrupted.",
		Args: exactArgs(1, "one job spec file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{errors.New("--out PATH is required: where to save the video")}
			}
			if err := checkOut(out); err != nil {
				return usageError{err}
			}
			if f.concurrency < 0 || f.concurrency > config.MaxConcurrency {
				return usageError{fmt.Errorf("--concurrency must be from 1 to %d; got %d", config.MaxConcurrency, f.concurrency)}
			}
			return runJob(cmd.Context(), e, &f, args[0], out, sf, restart)
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVarP(&out, "out", "o", "", "where to save the video (required)")
	sf.register(cmd)
	cmd.Flags().BoolVar(&restart, "restart", false, "run a cancelled job again, keeping its finished chunks")
	cmd.Flags().IntVar(&f.concurrency, "concurrency", 0, "chunks rendered at once (default $"+config.EnvConcurrency+" or the number of CPUs)")
	return cmd
}

// runJob renders the job of a spec file here, saves its video to out and
// says how the run went.
func runJob(ctx context.Context, e *env, f *commonFlags, specPath, out string, sf specFlags, restart bool) error {
	stack, err := f.open(ctx, e)
	if err != nil {
		return err
	}
	defer stack.Close()
	orch, err := stack.Orchestrator(ctx)
	if err != nil {
		return usageError{err}
	}
	spec, err := prepare(ctx, e, stack, specPath, sf)
	if err != nil {
		return err
	}
	noteUnsentWebhook(e, stack.Config, spec)
	exclusive, unlock, err := lockLocalJob(e, stack.Config.StorageURL, spec.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if restart {
		if err := stack.Jobs.Uncancel(ctx, spec.ID); err != nil {
			return err
		}
	}

	prog := newProgress(e.stderr, spec.Metadata.TotalFrames, e.logs)
	start := time.Now()
	st, err := orch.Run(ctx, spec, orchestrator.RunOptions{Progress: prog.update, Exclusive: exclusive})
	prog.finish(ctx.Err() != nil)
	if err != nil {
		return explainRunError(ctx, e, spec, st, err)
	}
	wall := time.Since(start)
	if st.State == job.StateDone {
		if err := download(ctx, stack.Jobs, st.Output, out); err != nil {
			return err
		}
	}
	if err := reportRun(e, f.json, st, spec, out, wall, st.Timings.FinishedAt.Before(start)); err != nil {
		return err
	}
	if st.State != job.StateDone {
		return explainUnfinished(e, f.json, st, specPath)
	}
	return nil
}

// noteUnsentWebhook warns that a spec's webhook will not be sent: this
// process is the orchestrator, and it has no key to sign it with.
func noteUnsentWebhook(e *env, cfg config.Config, spec *job.Spec) {
	if spec.Webhook != "" && cfg.WebhookSecret == "" && cfg.WebhookSecretARN == "" {
		fmt.Fprintf(e.stderr, "helios: note: the spec names a webhook, but %s is not set: it will not be sent\n", config.EnvWebhookSecret)
	}
}

// lockLocalJob makes this process, on a local folder, the only
// orchestrator of the job, with a per-job file lock: what an earlier,
// killed run left locked (its lease, its stitch lock) is then taken over
// at once (exclusive). Other storage has no such lock: unlock does nothing.
func lockLocalJob(e *env, storageURL, id string) (exclusive bool, unlock func(), err error) {
	dir, ok := storage.LocalDir(storageURL)
	if !ok {
		return false, func() {}, nil
	}
	unlock, err = lockJob(dir, id)
	if err != nil {
		fmt.Fprintf(e.stderr, "helios: %v\n", err)
		return false, nil, errJobFailed
	}
	return true, unlock, nil
}

// explainRunError says what a run that did not get to an end means for
// the user: a spec changed under an existing job id (exit 2), a job
// another process runs (exit 1, and how to follow it), an interruption
// (exit 130, and how to resume), or any other error as it is.
func explainRunError(ctx context.Context, e *env, spec *job.Spec, st *job.Status, err error) error {
	switch {
	case errors.Is(err, jobstore.ErrConflict):
		return usageError{fmt.Errorf("%w: the spec changed since job %s ran; render it as a new job with --id (for example --id %s-2)", err, spec.ID, spec.ID)}
	case errors.Is(err, jobstore.ErrAlreadyRunning) || errors.Is(err, jobstore.ErrLeaseLost):
		fmt.Fprintf(e.stderr, "helios: %v\nfollow it with: helios job watch %s\n", err, spec.ID)
		return errJobFailed
	case st != nil && ctx.Err() != nil:
		fmt.Fprintf(e.stderr, "helios: interrupted after %d of %d chunks; run the same command again to resume\n", st.ChunksDone, st.ChunksTotal)
		return errInterrupted
	}
	return err
}

// reportRun prints the job's final status on stdout: as JSON, or as a
// summary. earlier is true when the job was done before this run began.
func reportRun(e *env, asJSON bool, st *job.Status, spec *job.Spec, out string, wall time.Duration, earlier bool) error {
	if asJSON {
		return printJSON(e.stdout, st)
	}
	printSummary(e.stdout, st, spec, out, wall, earlier)
	return nil
}

// explainUnfinished says, for a job that failed or was cancelled, why on
// stderr (when stdout has the JSON status), and for a cancelled one how to
// render it anyway; it is the run's exit status.
func explainUnfinished(e *env, asJSON bool, st *job.Status, specPath string) error {
	if asJSON {
		printFailure(e.stderr, st)
	}
	if st.State == job.StateCancelled {
		fmt.Fprintf(e.stderr, "to render it anyway, keeping its %d finished chunks: helios job run %s --restart (with the same flags)\n", st.ChunksDone, specPath)
	}
	return errJobFailed
}

// specFlags are the flags that make a job of a spec file.
type specFlags struct {
	id     string
	assets string
}

func (sf *specFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&sf.id, "id", "", "job id (default: the spec's id, else the file name)")
	cmd.Flags().StringVar(&sf.assets, "assets", "", "pack this folder as the job's asset bundle, upload it to assets/<sha256>.tar.gz and name it in the spec")
}

// prepare reads, decodes and validates a spec file, listing every problem
// on stderr, and uploads its asset folder (--assets) if the spec is valid.
// Nothing else is written anywhere.
func prepare(ctx context.Context, e *env, stack *pipeline.Stack, specPath string, sf specFlags) (*job.Spec, error) {
	data, err := readSpecFile(specPath)
	if err != nil {
		return nil, usageError{err}
	}
	var spec *job.Spec
	if sf.id != "" && !layout.ValidID(sf.id) {
		return nil, usageError{fmt.Errorf("--id %q: must be %s", sf.id, layout.IDRule)}
	}
	if sf.id != "" {
		spec, err = stack.Jobs.PrepareAs(bytes.NewReader(data), sf.id) // --id wins over the spec's id
	} else {
		spec, err = stack.Jobs.Prepare(bytes.NewReader(data), idFromSpec(data, specPath))
	}
	var ve *joberr.ValidationError
	switch {
	case errors.As(err, &ve):
		problems := "1 problem"
		if len(ve.Problems) != 1 {
			problems = fmt.Sprintf("%d problems", len(ve.Problems))
		}
		fmt.Fprintf(e.stderr, "helios: %s is not a valid job spec (%s):\n", specPath, problems)
		for _, p := range ve.Problems {
			fmt.Fprintf(e.stderr, "  - %s\n", p)
		}
		return nil, errUsageReported
	case err != nil:
		return nil, usageError{err}
	}
	if sf.assets != "" {
		// Packed once; the tree is checked, and the spec's own bundle
		// compared, before anything is uploaded.
		bundle, err := assets.Open(sf.assets)
		if err != nil {
			return nil, usageError{fmt.Errorf("--assets: %w", err)}
		}
		defer bundle.Close()
		if spec.Assets != "" && spec.Assets != bundle.Key {
			return nil, usageError{fmt.Errorf("--assets %s packs to %s, but the spec names %s: leave \"assets\" out of the spec or drop --assets", sf.assets, bundle.Key, spec.Assets)}
		}
		if err := bundle.Upload(ctx, stack.Bucket); err != nil {
			return nil, fmt.Errorf("--assets: %w", err)
		}
		spec.Assets = bundle.Key
	}
	return spec, nil
}

// readSpecFile reads a spec: a regular file of at most job.MaxSpecBytes
// (not a device, FIFO or directory that would be read without end).
func readSpecFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: expected a JSON job spec", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, job.MaxSpecBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > job.MaxSpecBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a job spec", path, job.MaxSpecBytes)
	}
	return data, nil
}

// idFromSpec is the spec's own id if it has one, else the file's base name.
func idFromSpec(data []byte, path string) string {
	if id := job.PeekID(data); id != "" {
		return id
	}
	return strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
}

// checkOut refuses an --out that names a directory: the video needs a file
// name.
func checkOut(out string) error {
	if strings.HasSuffix(out, "/") || strings.HasSuffix(out, string(filepath.Separator)) {
		return fmt.Errorf("--out %s is a directory: give a file path, such as %s", out, filepath.Join(out, "video.mp4"))
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return fmt.Errorf("--out %s is a directory: give a file path, such as %s", out, filepath.Join(out, "video.mp4"))
	}
	// The video is written beside its final name and renamed: the folder
	// must be there and writable now, not after every chunk has rendered.
	// Nothing creates it: a typo must not make directories.
	dir := filepath.Dir(out)
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("--out %s: the folder %s does not exist (create it first, or give another path)", out, dir)
	case err != nil:
		return fmt.Errorf("--out %s: %w", out, err)
	case !fi.IsDir():
		return fmt.Errorf("--out %s: %s is not a folder", out, dir)
	}
	probe, err := os.CreateTemp(dir, ".helios-out-*")
	if err != nil {
		return fmt.Errorf("--out %s: the folder %s is not writable: %w", out, dir, errors.Unwrap(err))
	}
	probe.Close()
	return os.Remove(probe.Name())
}

// download copies the output to path (see replaceFile).
func download(ctx context.Context, jobs *jobstore.Store, key, path string) error {
	return replaceFile(path, func(tmp string) error {
		_, err := jobs.DownloadOutput(ctx, key, tmp, 0o666)
		return err
	})
}

// replaceFile makes path with write, atomically: write fills a partial file
// beside it, which is renamed only when whole, so a partial file never
// appears under the final name. New files get the mode cp would give them
// (0666 less the umask).
func replaceFile(path string, write func(tmp string) error) error {
	tmp := fmt.Sprintf("%s.part-%d", path, os.Getpid())
	_ = os.Remove(tmp)
	err := write(tmp)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printSummary says what a run did. earlier is true when the job was done
// before this run began: the run only copied its output.
func printSummary(w io.Writer, st *job.Status, spec *job.Spec, out string, wall time.Duration, earlier bool) {
	if st.State != job.StateDone {
		printFailure(w, st)
		return
	}
	seconds := float64(st.FramesDone) / spec.Metadata.FPS
	if earlier {
		fmt.Fprintf(w, "done: %s (already rendered at %s; copied its output)\n", out, st.Timings.FinishedAt.Local().Format(time.DateTime))
	} else {
		fmt.Fprintf(w, "done: %s\n", out)
	}
	fmt.Fprintf(w, "  frames:    %d (%dx%d at %g fps)\n", st.FramesDone, spec.Metadata.Width, spec.Metadata.Height, spec.Metadata.FPS)
	fmt.Fprintf(w, "  duration:  %.2f s\n", seconds)
	fmt.Fprintf(w, "  chunks:    %d\n", st.ChunksTotal)
	if earlier {
		fmt.Fprintf(w, "  wall time: %.2f s (the render took %.2f s, the stitch %.2f s)\n", wall.Seconds(),
			float64(st.Timings.RenderMs)/1000, float64(st.Timings.StitchMs)/1000)
	} else {
		fmt.Fprintf(w, "  wall time: %.2f s (render %.2f s, stitch %.2f s)\n", wall.Seconds(),
			float64(st.Timings.RenderMs)/1000, float64(st.Timings.StitchMs)/1000)
	}
	fmt.Fprintf(w, "  size:      %d bytes\n", st.OutputBytes)
	printCost(w, "  ", 11, st)
	printWarnings(w, "  ", 11, st)
}

func printFailure(w io.Writer, st *job.Status) {
	fmt.Fprintf(w, "job %s %s after %d of %d chunks\n", st.JobID, st.State, st.ChunksDone, st.ChunksTotal)
	if st.Error != nil {
		fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(st.Error.Error(), "\n", "\n  | "))
	}
	printCost(w, "  ", 8, st)
	printWarnings(w, "  ", 8, st)
}
