// Command helios renders and manages Helios jobs:
//
//	helios job run SPEC.json --out PATH [--storage URL] [--concurrency N] [--json]
//	helios job status ID [--storage URL] [--json]
//	helios job cancel ID [--storage URL]
//
// `job run` renders on this machine, in process, with the same handlers the
// cloud functions run. Exit status: 0 success, 1 the job failed or was
// cancelled, 2 bad input or usage, 3 the job is not over and nothing runs
// it (watch), 130 interrupted (Ctrl-C).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/sandbox"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
	// exitNotRunning: the job is not over and nothing is running it (a
	// local folder, which nothing watches): the command that runs it is
	// printed.
	exitNotRunning = 3
	// exitInterrupted: stopped by Ctrl-C (SIGINT) or SIGTERM, as a shell
	// reports a command killed by SIGINT.
	exitInterrupted = 130
)

func main() {
	sandbox.Main() // when started as the launcher of a confined job command
	// Job commands run as this user: keep our environment (credentials) out
	// of their reach through /proc.
	if err := execx.ProtectEnviron(); err != nil {
		fmt.Fprintln(os.Stderr, "helios: warning:", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// usageError marks errors that exit with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// failedError marks a job that ended failed or cancelled: status 1, and the
// command has already said why.
var errJobFailed = errors.New("job did not succeed")

// errNotRunning: the command has said that nothing runs the job and how to
// run it.
var errNotRunning = errors.New("nothing is running the job")

// errInterrupted: the command stopped on a signal and has said so.
var errInterrupted = errors.New("interrupted")

// errUsageReported is bad input the command has already described on
// stderr: status 2, nothing more printed.
var errUsageReported = errors.New("bad input")

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := newRootCommand(&env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, logs: &logWriter{w: stderr}})
	if err := singleDashLongFlag(cmd, args); err != nil {
		fmt.Fprintln(stderr, "helios:", err)
		return exitUsage
	}
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.ExecuteContext(ctx)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errInterrupted) || ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, errNotRunning):
		return exitNotRunning
	case errors.Is(err, errJobFailed):
		return exitFailed
	case errors.Is(err, errUsageReported):
		return exitUsage
	case errors.As(err, &ue) || isCobraUsage(err):
		fmt.Fprintln(stderr, "helios:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "helios:", err)
		return exitFailed
	}
}

type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	logs           *logWriter // stderr, or above the progress bar
}
