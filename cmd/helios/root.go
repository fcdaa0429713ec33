package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/oauth2/google"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/jobstore"
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
	root.Version = version()
	jobCmd := &cobra.Command{
		Use:   "job",
		Short: "Run and manage render jobs",
		// Cobra prints help and succeeds for an unknown subcommand of a
		// command that has subcommands; scripts need the usage status.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q; commands: run, submit, status, watch, cancel, timeline, budget (see --help)", args[0], cmd.CommandPath())}
			}
			return cmd.Help()
		},
	}
	jobCmd.AddCommand(newRunCommand(e), newSubmitCommand(e), newStatusCommand(e), newWatchCommand(e), newCancelCommand(e), newTimelineCommand(e), newBudgetCommand(e))
	root.AddCommand(jobCmd, newRenderCommand())
	return root
}

// newRenderCommand answers `helios render`, which a Helios-form spec's
// chunks run: that is the renderer's command (renderers/helios), also
// called helios. Found here, it was found first on PATH.
func newRenderCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "render",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return usageError{errors.New("`helios render` is the Helios renderer's command, not this CLI's: " +
				"install it with `make renderer` and put renderers/helios/bin before this CLI's directory on PATH " +
				"(see docs/HELIOS.md)")}
		},
	}
}

// version is the module version this binary was built from, or its VCS
// revision for a build from a work tree.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && (v == "" || v == "(devel)") {
			v = "devel " + s.Value
		}
	}
	return v
}

// singleDashLongFlag finds a long flag written with one dash (-out for
// --out), which pflag would read as short flags with a value and turn into
// a confusing error about arguments.
func singleDashLongFlag(root *cobra.Command, args []string) error {
	long := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { long[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { long[f.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, a := range args {
		if a == "--" {
			return nil
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 && long[name] {
			return usageError{fmt.Errorf("%s: long flags take two dashes: --%s", a, strings.TrimPrefix(a, "-"))}
		}
	}
	return nil
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
	// concurrency is --concurrency, which only job run registers (checked
	// there); 0 leaves the environment's.
	concurrency int
}

func (f *commonFlags) register(cmd *cobra.Command, withJSON bool) {
	cmd.Flags().StringVar(&f.storage, "storage", "", "storage URL or folder (default $"+config.EnvStorageURL+" or ./"+config.DefaultStorageURL+")")
	if withJSON {
		cmd.Flags().BoolVar(&f.json, "json", false, "print the status as JSON on stdout")
	}
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "log each step")
}

// storageFlag is " --storage URL" when the user gave one, for hints that
// must work when pasted back.
func (f *commonFlags) storageFlag() string {
	if f.storage == "" {
		return ""
	}
	return " --storage " + shellQuote(f.storage)
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// objectLocation is where a user finds an object of the storage: a path for
// a local folder, else scheme://bucket/key.
func objectLocation(storageURL, key string) string {
	if dir, ok := storage.LocalDir(storageURL); ok {
		return filepath.Join(dir, filepath.FromSlash(key))
	}
	if u, err := url.Parse(storageURL); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host + "/" + key
	}
	return key
}

// open reads the configuration, with flags overriding the environment, and
// opens the stack on its storage (the caller closes it).
func (f *commonFlags) open(ctx context.Context, e *env) (*pipeline.Stack, error) {
	cfg, err := config.FromEnv(f.overEnv(e.getenv))
	if err != nil {
		return nil, usageError{err}
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: level}))
	if err := checkCloud(ctx, cfg.StorageURL, e.getenv); err != nil {
		return nil, usageError{err}
	}
	stack, err := pipeline.Open(ctx, cfg, log)
	if err != nil {
		return nil, usageError{err}
	}
	return stack, nil
}

// overEnv is the environment the configuration is read from: getenv's,
// with each flag given standing in for its variable. A flag thus decides
// its setting as the configuration is built, rather than being written
// into it afterwards.
func (f *commonFlags) overEnv(getenv func(string) string) func(string) string {
	flags := map[string]string{}
	if f.storage != "" {
		flags[config.EnvStorageURL] = f.storage
	}
	if f.concurrency > 0 {
		flags[config.EnvConcurrency] = strconv.Itoa(f.concurrency)
	}
	return func(name string) string {
		if v, ok := flags[name]; ok {
			return v
		}
		return getenv(name)
	}
}

// onStack opens the stack, runs fn and closes it; a job that does not
// exist is a usage error (exit 2).
func (f *commonFlags) onStack(ctx context.Context, e *env, fn func(*pipeline.Stack) error) error {
	stack, err := f.open(ctx, e)
	if err != nil {
		return err
	}
	defer stack.Close()
	err = fn(stack)
	if errors.Is(err, jobstore.ErrNotFound) {
		return usageError{err}
	}
	return err
}

// checkCloud refuses a bucket the CLI cannot reach as configured, before
// anything runs, and says what to do: an s3:// storage with no region (the
// SDK would fail later with "Invalid region: region was not a valid DNS
// name") or no credentials, a gs:// one with no credentials (gocloud falls
// back to anonymous access, which fails with a key parse error). The region
// and credentials are the SDKs' own: AWS_REGION, AWS_PROFILE,
// AWS_CONFIG_FILE, SSO, GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC.
func checkCloud(ctx context.Context, storageURL string, getenv func(string) string) error {
	u, err := url.Parse(storageURL)
	if err != nil {
		return nil
	}
	switch u.Scheme {
	case "s3":
		if u.Query().Get("endpoint") != "" {
			return nil // an S3-compatible server of its own
		}
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("--storage %s: the AWS configuration does not load: %v", storageURL, err)
		}
		if cfg.Region == "" && u.Query().Get("region") == "" {
			return fmt.Errorf("--storage %s: no AWS region: set AWS_REGION (or a region in the AWS_PROFILE's config, or ?region=… in the URL)", storageURL)
		}
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
			return fmt.Errorf("--storage %s: no AWS credentials: run `aws configure` (or `aws sso login`, or set AWS_PROFILE)", storageURL)
		}
	case "gs":
		if getenv("STORAGE_EMULATOR_HOST") != "" {
			return nil // an emulator needs none
		}
		if _, err := google.FindDefaultCredentials(ctx, "https://www.googleapis.com/auth/devstorage.read_write"); err != nil {
			return fmt.Errorf("--storage %s: no Google Cloud credentials: run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS)", storageURL)
		}
	}
	return nil
}
