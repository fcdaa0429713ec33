//go:build unix

// Package execx runs the commands of a job safely: argv only (never a shell),
// only programs on an allowlist, in a given work dir with a minimal
// environment, under a timeout that kills the whole process group, with
// stdout and stderr captured up to a cap (the tail is kept, since that is
// where tools print why they failed).
package execx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
)

// A command that exits with one of these (sysexits.h EX_USAGE and
// EX_DATAERR: its command line or its input is wrong) says that running
// it again cannot help: its failure is permanent. helios render uses
// them; ffmpeg never exits with them.
const (
	ExitUsage   = 64
	ExitDataErr = 65
)

// DefaultMaxOutput is how much of stdout and of stderr is kept.
const DefaultMaxOutput = 64 << 10

// Runner runs allowlisted programs.
type Runner struct {
	Allowed job.Allowlist
	// MaxOutput caps the captured tail of each stream; 0 means DefaultMaxOutput.
	MaxOutput int
	// Confiner, if set, confines each command (pkg/sandbox): what it may
	// write, read and reach, and that nothing it starts outlives it.
	Confiner Confiner
	// NotSelf passes over a program that resolves to this process's own
	// executable for the next of its name on PATH: this repository's CLI
	// and the Helios renderer are both called helios, and the CLI is never
	// the command a job means, whatever the order of PATH.
	NotSelf bool
}

// Confiner wraps a command so that it runs confined to its work dir and
// home.
type Confiner interface {
	// Confine returns the argv that runs argv (argv[0] a resolved path)
	// confined to its work dir and home, the only places it may write.
	// The process it starts ends the command and everything the command
	// started when it gets SIGTERM.
	Confine(work, home string, argv []string) []string
}

// Cmd is one command to run.
type Cmd struct {
	Argv []string
	Dir  string // work dir
	Home string // HOME, XDG_*_HOME and TMPDIR of the command; "": Dir

	Env     map[string]string // added to the minimal environment
	Timeout time.Duration     // 0: only ctx bounds it
	// Stdin and ExtraInputs (fd 3, 4, ...: ffmpeg's pipe:3) are streamed
	// to the command; a read error of any fails the run. An input that is
	// also an io.Closer is closed once the command has exited, which must
	// end a Read blocked on it. nil: no input. ExtraInputs cannot reach a
	// confined command (the launcher passes on the standard streams only).
	Stdin       io.Reader
	ExtraInputs []io.Reader
	// Stdout, if set, receives the command's standard output, all of it,
	// however slowly it takes it; it is then not kept in Result.
	Stdout io.Writer
}

// Result is what a command did.
type Result struct {
	ExitCode int
	Stdout   string // tail, at most MaxOutput bytes
	Stderr   string // tail, at most MaxOutput bytes
	Duration time.Duration
}

// Run runs c and waits for it. Errors are *joberr.Error: command_not_allowed
// (permanent), timeout and command_failed (retryable, with the exit code and
// stderr tail; permanent for ExitUsage and ExitDataErr). If ctx ends first, the process group is killed and ctx's
// error is returned.
func (r *Runner) Run(ctx context.Context, c Cmd) (Result, error) {
	path, err := r.resolve(c)
	if err != nil {
		return Result{}, err
	}
	runCtx := ctx
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	p, err := r.prepare(runCtx, c, path)
	if err != nil {
		return Result{}, err
	}
	res, err := p.run()
	return res, c.failure(ctx, runCtx, res, p.streams, err)
}

// resolve checks c's program against the allowlist and finds its path.
func (r *Runner) resolve(c Cmd) (string, error) {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return "", joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "empty command")
	}
	program := c.Argv[0]
	if !r.Allowed.Allows(program) {
		return "", joberr.Errorf(joberr.Permanent, joberr.CodeNotAllowed,
			"program %q is not on the allowlist (%s)", program, strings.Join(r.Allowed, ","))
	}
	path, err := lookPath(program, r.NotSelf)
	if err != nil {
		return "", joberr.Errorf(joberr.Permanent, joberr.CodeNotAllowed, "program %q cannot be run here: %v", program, err)
	}
	return path, nil
}

// command is a Cmd ready to start: the process, the streams it is fed
// and read through, and the tails its output is kept in.
type command struct {
	cmd            *exec.Cmd
	streams        *streams
	stdout, stderr *Tail
}

// prepare builds the process of c, the program at path, confined if r
// says so, bounded by ctx.
func (r *Runner) prepare(ctx context.Context, c Cmd, path string) (*command, error) {
	if len(c.ExtraInputs) > 0 && r.Confiner != nil {
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "%s: extra inputs cannot reach a confined command", c.Argv[0])
	}
	limit := r.MaxOutput
	if limit <= 0 {
		limit = DefaultMaxOutput
	}
	p := &command{stdout: &Tail{Max: limit}, stderr: &Tail{Max: limit}}
	argv := append([]string{path}, c.Argv[1:]...)
	if r.Confiner != nil {
		argv = r.Confiner.Confine(c.Dir, c.home(), argv)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = environment(c.home(), c.Env)
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	streams, err := newStreams(cmd, c.Stdin, c.ExtraInputs, c.Stdout)
	if err != nil {
		return nil, joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "%s: %v", c.Argv[0], err)
	}
	// Its own process group, killed whole when it ends; and it dies with
	// this process.
	cmd.SysProcAttr = processAttr()
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	if r.Confiner != nil {
		// The confining launcher ends the whole tree on SIGTERM, daemons
		// that left the process group included; if it does not, os/exec
		// kills it after WaitDelay.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	}
	cmd.WaitDelay = 2 * time.Second // a grandchild holding the pipes cannot hang us
	p.cmd, p.streams = cmd, streams
	return p, nil
}

// run starts the command and waits for it and its streams.
func (p *command) run() (Result, error) {
	start := time.Now()
	err := p.streams.run(p.cmd, func() {
		if p.cmd.Process != nil {
			_ = killGroup(p.cmd.Process.Pid) // leftovers the command started in the background
		}
	})
	res := Result{Duration: time.Since(start), Stdout: p.stdout.String(), Stderr: p.stderr.String(), ExitCode: -1}
	if p.cmd.ProcessState != nil {
		res.ExitCode = p.cmd.ProcessState.ExitCode()
	}
	return res, err
}

// failure is the error of a run of c that ended with res and err, nil if
// it succeeded: ctx's if it ended, then a failed stream, the timeout
// (runCtx), the exit status.
func (c Cmd) failure(ctx, runCtx context.Context, res Result, s *streams, err error) error {
	program := c.Argv[0]
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", program, ctx.Err())
	case s.inErr != nil:
		return joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%s: reading its input: %v", program, s.inErr)
	case s.outErr != nil:
		return joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%s: taking its output: %v", program, s.outErr)
	case runCtx.Err() != nil:
		e := joberr.Errorf(joberr.Retryable, joberr.CodeTimeout, "%s did not finish within %s and was killed", program, c.Timeout)
		e.StderrTail = LastLines(res.Stderr, 20)
		return e
	case err != nil:
		return exitError(program, res, err)
	}
	return nil
}

// exitError is the error of a command that did not exit 0: permanent for
// ExitUsage and ExitDataErr.
func exitError(program string, res Result, err error) error {
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return joberr.Errorf(joberr.Retryable, joberr.CodeCommandFailed, "%s could not run: %v", program, err)
	}
	e := joberr.Errorf(joberr.Retryable, joberr.CodeCommandFailed, "%s exited with status %d", program, res.ExitCode)
	if res.ExitCode == ExitUsage || res.ExitCode == ExitDataErr {
		e.Kind = joberr.Permanent
	}
	e.ExitCode = res.ExitCode
	e.StderrTail = LastLines(res.Stderr, 20)
	return e
}

func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func (c Cmd) home() string {
	if c.Home != "" {
		return c.Home
	}
	return c.Dir
}

// environment is what a command sees: PATH from this process, a locale,
// HOME, TMPDIR and the XDG base directories in its home (a directory the
// job's files are not in: loaders look there for plugins and layers), the
// system's XDG search paths, and the job's own variables. Nothing else,
// so credentials in the function's environment do not leak into it.
func environment(home string, extra map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8",
		"XDG_DATA_DIRS=/usr/local/share:/usr/share", "XDG_CONFIG_DIRS=/etc/xdg"}
	if home != "" {
		env = append(env, "HOME="+home, "TMPDIR="+home,
			"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
			"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"), "XDG_STATE_HOME="+filepath.Join(home, ".local", "state"))
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// Tail is an io.Writer that keeps the last Max bytes written to it.
type Tail struct {
	Max       int
	buf       []byte
	truncated bool
}

func (t *Tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.Max { // trim rarely: amortised O(1) per byte
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.Max:]...)
		t.truncated = true
	}
	return len(p), nil
}

// String returns the kept tail.
func (t *Tail) String() string {
	b := t.buf
	if len(b) > t.Max {
		b = b[len(b)-t.Max:]
		t.truncated = true
	}
	if t.truncated {
		return "…" + string(b)
	}
	return string(b)
}

// LastLines returns at most n trailing lines of s, trimmed, with long
// values shortened (joberr.ShortenWords).
func LastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n\r ")
	lines := strings.Split(s, "\n")
	if n < 0 {
		n = 0
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return joberr.ShortenWords(strings.Join(lines, "\n"))
}

// lookPath is exec.LookPath, passing over this process's own executable
// when notSelf is set.
func lookPath(program string, notSelf bool) (string, error) {
	path, err := exec.LookPath(program)
	if err != nil || !notSelf || strings.ContainsRune(program, filepath.Separator) {
		return path, err
	}
	self, err := os.Executable()
	if err != nil {
		return path, nil
	}
	me, err := os.Stat(self)
	if err != nil {
		return path, nil
	}
	if fi, err := os.Stat(path); err != nil || !os.SameFile(fi, me) {
		return path, nil
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if !filepath.IsAbs(dir) {
			continue // as exec.LookPath: never a program of the current directory
		}
		p := filepath.Join(dir, program)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 && !os.SameFile(fi, me) {
			return p, nil
		}
	}
	return "", fmt.Errorf("the only %q on PATH is this program itself (%s); put the one the job means on PATH", program, self)
}
