//go:build unix

package execx_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
)

func asJobError(t *testing.T, err error) *joberr.Error {
	t.Helper()
	var e *joberr.Error
	if !errors.As(err, &e) {
		t.Fatalf("error is %T (%v), want *joberr.Error", err, err)
	}
	return e
}

func TestRunRefusesProgramsNotAllowed(t *testing.T) {
	dir := t.TempDir()
	// An executable named ffmpeg in the work dir that would leave a mark if
	// it ran.
	fake := filepath.Join(dir, "ffmpeg")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\ntouch \"$(dirname \"$0\")/RAN\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &execx.Runner{Allowed: job.Allowlist{"ffmpeg"}}
	tests := []struct {
		name string
		argv []string
	}{
		{"other program", []string{"touch", filepath.Join(dir, "RAN")}},
		{"shell", []string{"sh", "-c", "touch RAN"}},
		{"relative path to an allowed name", []string{"./ffmpeg", "-version"}},
		{"absolute path to an allowed name", []string{fake, "-version"}},
		{"/tmp/ffmpeg", []string{"/tmp/ffmpeg", "-version"}},
		{"/usr/bin/ffmpeg", []string{"/usr/bin/ffmpeg", "-version"}},
		{"allowed name with a space", []string{"ffmpeg ", "-version"}},
		{"allowed name in another case", []string{"FFMPEG", "-version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Run(context.Background(), execx.Cmd{Argv: tt.argv, Dir: dir})
			e := asJobError(t, err)
			if e.Kind != joberr.Permanent || e.Code != joberr.CodeNotAllowed {
				t.Errorf("error = {%s %s %q}, want {permanent command_not_allowed}", e.Kind, e.Code, e.Message)
			}
			if !strings.Contains(e.Message, strconv.Quote(tt.argv[0])) {
				t.Errorf("message %q does not name the program %q", e.Message, tt.argv[0])
			}
			if e.Retryable() {
				t.Error("a refused program is retryable")
			}
			if res.Stdout != "" || res.Stderr != "" || res.Duration != 0 {
				t.Errorf("result = %+v, want zero: nothing ran", res)
			}
			if _, err := os.Stat(filepath.Join(dir, "RAN")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused program ran (RAN exists: %v)", err)
			}
		})
	}
}

func TestRunEmptyCommand(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{""}}
	for _, argv := range [][]string{nil, {}, {""}, {"", "x"}} {
		_, err := r.Run(context.Background(), execx.Cmd{Argv: argv})
		e := asJobError(t, err)
		if e.Kind != joberr.Permanent || e.Code != joberr.CodeInvalid {
			t.Errorf("argv %q: error = {%s %s}, want {permanent invalid}", argv, e.Kind, e.Code)
		}
	}
}

func TestRunAllowedButMissing(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"helios-no-such-program-xyz"}}
	_, err := r.Run(context.Background(), execx.Cmd{Argv: []string{"helios-no-such-program-xyz"}, Dir: t.TempDir()})
	e := asJobError(t, err)
	if e.Kind != joberr.Permanent || e.Code != joberr.CodeNotAllowed || !strings.Contains(e.Message, "cannot be run here") {
		t.Errorf("error = %+v, want permanent command_not_allowed 'cannot be run here'", e)
	}
}

func TestRunSuccess(t *testing.T) {
	dir := t.TempDir()
	r := &execx.Runner{Allowed: job.Allowlist{"sh"}}
	res, err := r.Run(context.Background(), execx.Cmd{
		Argv: []string{"sh", "-c", `printf 'out'; printf 'err' >&2; pwd > where`},
		Dir:  dir,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.ExitCode != 0 || res.Stdout != "out" || res.Stderr != "err" {
		t.Errorf("result = %+v, want exit 0, stdout out, stderr err", res)
	}
	if res.Duration <= 0 {
		t.Errorf("Duration = %v, want > 0", res.Duration)
	}
	where, err := os.ReadFile(filepath.Join(dir, "where"))
	if err != nil {
		t.Fatalf("the command did not run in Dir: %v", err)
	}
	got, _ := filepath.EvalSymlinks(strings.TrimSpace(string(where)))
	want, _ := filepath.EvalSymlinks(dir)
	if got != want {
		t.Errorf("working directory = %q, want %q", got, want)
	}
}

func TestRunStdinIsEmpty(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"sh"}}
	done := make(chan struct{})
	var res execx.Result
	var err error
	go func() {
		defer close(done)
		res, err = r.Run(context.Background(), execx.Cmd{Argv: []string{"sh", "-c", "cat; echo done"}, Dir: t.TempDir(), Timeout: 10 * time.Second})
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("a command reading stdin hung")
	}
	if err != nil || res.Stdout != "done\n" {
		t.Errorf("Run = %+v, %v; want stdout 'done\\n' and no error", res, err)
	}
}

func TestRunArgumentsAreNotInterpretedByAShell(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"printf"}}
	for _, arg := range []string{
		"$(touch PWNED)",
		"`touch PWNED`",
		"; touch PWNED",
		"x && touch PWNED",
		"x | touch PWNED",
		"x > PWNED",
		"$HOME ${PATH} ~ * ?",
		"'\"quoted\"'",
		"line1\nline2",
	} {
		t.Run(arg, func(t *testing.T) {
			dir := t.TempDir()
			res, err := r.Run(context.Background(), execx.Cmd{Argv: []string{"printf", "%s", arg}, Dir: dir})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Stdout != arg {
				t.Errorf("stdout = %q, want the literal argument %q", res.Stdout, arg)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Errorf("the work dir is not empty: %v (something interpreted the argument)", entries)
			}
		})
	}
}

func TestRunNonZeroExit(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"sh"}}
	res, err := r.Run(context.Background(), execx.Cmd{Argv: []string{"sh", "-c", "echo partial; echo boom >&2; exit 7"}, Dir: t.TempDir()})
	e := asJobError(t, err)
	if e.Kind != joberr.Retryable || e.Code != joberr.CodeCommandFailed {
		t.Errorf("error = {%s %s}, want {retryable command_failed}", e.Kind, e.Code)
	}
	if e.ExitCode != 7 || res.ExitCode != 7 {
		t.Errorf("exit code = %d (error) / %d (result), want 7", e.ExitCode, res.ExitCode)
	}
	if e.StderrTail != "boom" {
		t.Errorf("StderrTail = %q, want boom", e.StderrTail)
	}
	if !strings.Contains(e.Message, "exited with status 7") {
		t.Errorf("Message = %q", e.Message)
	}
	if res.Stdout != "partial\n" || res.Stderr != "boom\n" {
		t.Errorf("result = %+v; output must be kept on failure", res)
	}
	if !joberr.IsRetryable(err) {
		t.Error("IsRetryable = false for a failed command")
	}
}

// A command that exits 64 or 65 (sysexits.h: its usage or its input is
// wrong) fails for good; others, and signals, may be retried. Long values
// in its stderr are shortened.
func TestRunExitStatusSaysPermanent(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"sh"}}
	for status, kind := range map[int]joberr.Kind{1: joberr.Retryable, 2: joberr.Retryable, 64: joberr.Permanent, 65: joberr.Permanent, 66: joberr.Retryable} {
		_, err := r.Run(t.Context(), execx.Cmd{Argv: []string{"sh", "-c", fmt.Sprintf("echo 'media data:video/mp4;base64,%s failed' >&2; exit %d", strings.Repeat("A", 5000), status)}, Dir: t.TempDir()})
		e := asJobError(t, err)
		if e.Kind != kind || e.ExitCode != status {
			t.Errorf("exit %d: %s (exit code %d), want %s", status, e.Kind, e.ExitCode, kind)
		}
		if len(e.StderrTail) > 300 || !strings.Contains(e.StderrTail, "(5022 characters)") || !strings.HasPrefix(e.StderrTail, "media data:video/mp4;base64,AAA") || !strings.HasSuffix(e.StderrTail, " failed") {
			t.Errorf("exit %d: the stderr tail is %d bytes: %.300q", status, len(e.StderrTail), e.StderrTail)
		}
	}
}

func TestRunStderrTailKeepsLastLines(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"sh"}}
	_, err := r.Run(context.Background(), execx.Cmd{Argv: []string{"sh", "-c", `i=1; while [ $i -le 50 ]; do echo "line $i" >&2; i=$((i+1)); done; exit 1`}, Dir: t.TempDir()})
	e := asJobError(t, err)
	lines := strings.Split(e.StderrTail, "\n")
	if len(lines) != 20 || lines[0] != "line 31" || lines[19] != "line 50" {
		t.Errorf("StderrTail has %d lines, %q ... %q; want the last 20 (line 31 .. line 50)", len(lines), lines[0], lines[len(lines)-1])
	}
}

// alive reports whether pid is a process that has not exited. A zombie (exited
// but not yet reaped, which happens when the container's init does not reap
// orphans) counts as dead.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ESRCH)
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

func TestRunTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	r := &execx.Runner{Allowed: job.Allowlist{"sh"}}
	start := time.Now()
	res, err := r.Run(context.Background(), execx.Cmd{
		Argv:    []string{"sh", "-c", "sleep 30 & echo $! > bg.pid; echo started >&2; wait"},
		Dir:     dir,
		Timeout: 300 * time.Millisecond,
	})
	elapsed := time.Since(start)
	if elapsed > 5*time.Second {
		t.Errorf("Run took %v after a 300ms timeout, want well under 5s", elapsed)
	}
	if elapsed < 300*time.Millisecond {
		t.Errorf("Run returned after %v, before the timeout", elapsed)
	}
	e := asJobError(t, err)
	if e.Kind != joberr.Retryable || e.Code != joberr.CodeTimeout {
		t.Errorf("error = {%s %s %q}, want {retryable timeout}", e.Kind, e.Code, e.Message)
	}
	if !strings.Contains(e.Message, "300ms") {
		t.Errorf("Message = %q, want it to name the timeout", e.Message)
	}
	if e.StderrTail != "started" {
		t.Errorf("StderrTail = %q, want the output so far", e.StderrTail)
	}
	if res.ExitCode != -1 {
		t.Errorf("ExitCode = %d, want -1 (killed by a signal)", res.ExitCode)
	}

	b, err := os.ReadFile(filepath.Join(dir, "bg.pid"))
	if err != nil {
		t.Fatalf("bg.pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("bg.pid = %q", b)
	}
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL) // do not leave it behind
			t.Fatalf("background process %d is still alive 2s after the timeout: the process group was not killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunBackgroundLeftoversKilledAfterSuccess(t *testing.T) {
	dir := t.TempDir()
	r := &execx.Runner{Allowed: job.Allowlist{"sh"}}
	// The command exits at once but leaves a daemon behind, with its output
	// detached so Run does not wait for it.
	_, err := r.Run(context.Background(), execx.Cmd{
		Argv: []string{"sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $! > bg.pid"},
		Dir:  dir,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "bg.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("background process %d survived the command", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunContextCancelled(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"sh"}}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := r.Run(ctx, execx.Cmd{Argv: []string{"sh", "-c", "sleep 30"}, Dir: t.TempDir(), Timeout: time.Minute})
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Run took %v after cancellation", elapsed)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want one wrapping context.Canceled", err)
	}
	if e := joberr.AsError(err); e.Code != joberr.CodeCancelled {
		t.Errorf("AsError(err).Code = %q, want %q", e.Code, joberr.CodeCancelled)
	}

	// Already cancelled: nothing runs.
	dir := t.TempDir()
	_, err = r.Run(ctx, execx.Cmd{Argv: []string{"sh", "-c", "touch RAN"}, Dir: dir})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want one wrapping context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "RAN")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a command ran under a cancelled context")
	}
}

func TestRunParentDeadline(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"sh"}}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := r.Run(ctx, execx.Cmd{Argv: []string{"sh", "-c", "sleep 30"}, Dir: t.TempDir()})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want one wrapping context.DeadlineExceeded", err)
	}
}

func TestRunOutputCap(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"sh"}, MaxOutput: 1024}
	res, err := r.Run(context.Background(), execx.Cmd{
		Argv: []string{"sh", "-c", `head -c 1048576 /dev/zero | tr '\0' a >&2; printf 'THE END' >&2; head -c 100000 /dev/zero | tr '\0' b; echo tail`},
		Dir:  t.TempDir(),
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	const ell = "…"
	for name, out := range map[string]string{"stderr": res.Stderr, "stdout": res.Stdout} {
		if len(out) > 1024+len(ell) {
			t.Errorf("%s is %d bytes, want at most %d", name, len(out), 1024+len(ell))
		}
		if !strings.HasPrefix(out, ell) {
			t.Errorf("%s does not start with %q to mark the cut", name, ell)
		}
	}
	if !strings.HasSuffix(res.Stderr, "aaaaTHE END") {
		t.Errorf("stderr ends with %q, want the last bytes written", res.Stderr[max(0, len(res.Stderr)-20):])
	}
	if !strings.HasSuffix(res.Stdout, "bbbbtail\n") {
		t.Errorf("stdout ends with %q, want the last bytes written", res.Stdout[max(0, len(res.Stdout)-20):])
	}
	if got := strings.TrimPrefix(res.Stderr, ell); len(got) != 1024 {
		t.Errorf("kept %d bytes of stderr, want exactly 1024", len(got))
	}
}

func TestRunDefaultOutputCap(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"sh"}}
	res, err := r.Run(context.Background(), execx.Cmd{Argv: []string{"sh", "-c", `head -c 200000 /dev/zero | tr '\0' a`}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(strings.TrimPrefix(res.Stdout, "…")); got != execx.DefaultMaxOutput {
		t.Errorf("kept %d bytes, want DefaultMaxOutput (%d)", got, execx.DefaultMaxOutput)
	}
}

func TestRunMinimalEnvironment(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
	t.Setenv("AWS_SESSION_TOKEN", "do-not-leak")
	t.Setenv("HELIOS_BUCKET", "do-not-leak")
	t.Setenv("LD_PRELOAD", "")
	dir, home := t.TempDir(), t.TempDir()
	r := &execx.Runner{Allowed: job.Allowlist{"env"}}
	res, err := r.Run(context.Background(), execx.Cmd{
		Argv: []string{"env"},
		Dir:  dir,
		Home: home,
		Env:  map[string]string{"JOB_QUALITY": "high and=equals", "OTHER": ""},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("env line %q", line)
		}
		env[k] = v
	}
	if strings.Contains(res.Stdout, "do-not-leak") {
		t.Errorf("the child saw a secret from the parent environment:\n%s", res.Stdout)
	}
	for _, k := range []string{"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "HELIOS_BUCKET", "LD_PRELOAD"} {
		if _, ok := env[k]; ok {
			t.Errorf("%s is in the child environment", k)
		}
	}
	// HOME, TMPDIR and the XDG dirs in the home, apart from the job's files:
	// a loader finds no per-user plugin, layer or configuration the job
	// brought; the XDG search paths are the system's.
	want := map[string]string{
		"HOME":            home,
		"TMPDIR":          home,
		"XDG_CONFIG_HOME": filepath.Join(home, ".config"),
		"XDG_CACHE_HOME":  filepath.Join(home, ".cache"),
		"XDG_DATA_HOME":   filepath.Join(home, ".local", "share"),
		"XDG_STATE_HOME":  filepath.Join(home, ".local", "state"),
		"XDG_DATA_DIRS":   "/usr/local/share:/usr/share",
		"XDG_CONFIG_DIRS": "/etc/xdg",
		"PATH":            os.Getenv("PATH"),
		"LANG":            "C.UTF-8",
		"JOB_QUALITY":     "high and=equals",
		"OTHER":           "",
	}
	for k, v := range want {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("%s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	for k := range env {
		if _, ok := want[k]; !ok && k != "PWD" {
			t.Errorf("unexpected variable %s=%q in the child environment", k, env[k])
		}
	}
}

func TestRunWithoutDirHasNoHome(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"env"}}
	res, err := r.Run(context.Background(), execx.Cmd{Argv: []string{"env"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if strings.HasPrefix(line, "HOME=") || strings.HasPrefix(line, "TMPDIR=") {
			t.Errorf("without Dir the child has %s", line)
		}
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"nothing written", 5, nil, ""},
		{"under the cap", 5, []string{"abc"}, "abc"},
		{"exactly the cap", 5, []string{"abcde"}, "abcde"},
		{"exactly the cap in pieces", 5, []string{"ab", "c", "de"}, "abcde"},
		{"one over the cap", 5, []string{"abcdef"}, "…bcdef"},
		{"over in pieces", 5, []string{"abc", "def", "g"}, "…cdefg"},
		{"past twice the cap", 5, []string{"0123456789", "ABC"}, "…89ABC"},
		{"huge single write", 4, []string{strings.Repeat("x", 10_000) + "WXYZ"}, "…WXYZ"},
		{"many small writes", 3, strings.Split(strings.Repeat("ab", 1000)+"xyz", ""), "…xyz"},
		{"empty writes", 3, []string{"", "ab", "", "c", ""}, "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := &execx.Tail{Max: tt.max}
			for _, w := range tt.writes {
				n, err := tl.Write([]byte(w))
				if n != len(w) || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", len(w), n, err)
				}
			}
			if got := tl.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			// String is stable.
			if got := tl.String(); got != tt.want {
				t.Errorf("second String() = %q, want %q", got, tt.want)
			}
		})
	}

	// Writing more after a trim keeps the cut mark and the newest bytes.
	tl := &execx.Tail{Max: 4}
	tl.Write([]byte("0123456789"))
	tl.Write([]byte("ab"))
	if got := tl.String(); got != "…89ab" {
		t.Errorf("String() = %q, want …89ab", got)
	}
}

func TestLastLines(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"", 3, ""},
		{"one", 3, "one"},
		{"one\ntwo\nthree\n", 2, "two\nthree"},
		{"one\ntwo\nthree", 3, "one\ntwo\nthree"},
		{"one\ntwo\nthree", 10, "one\ntwo\nthree"},
		{"one\ntwo\nthree", 1, "three"},
		{"one\ntwo\n\n\n", 1, "two"},
		{"one\r\ntwo\r\n", 1, "two"},
		{"trailing spaces   \n \n", 5, "trailing spaces"},
		{"a\n\nb", 2, "\nb"},
		{"x\ny", 0, ""},
	}
	for _, tt := range tests {
		if got := execx.LastLines(tt.s, tt.n); got != tt.want {
			t.Errorf("LastLines(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

// A command cannot read the credentials in its parent's environment through
// /proc once the parent has called ProtectEnviron.
func TestProtectEnviron(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("no /proc")
	}
	if os.Geteuid() == 0 {
		// root reads any process's environ regardless; check the flag instead.
		if err := execx.ProtectEnviron(); err != nil {
			t.Fatal(err)
		}
		dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err != nil || dumpable != 0 {
			t.Errorf("PR_GET_DUMPABLE = %d, %v; want 0", dumpable, err)
		}
		return
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-for-test")
	if err := execx.ProtectEnviron(); err != nil {
		t.Fatal(err)
	}
	r := &execx.Runner{Allowed: job.Allowlist{"cat"}}
	res, _ := r.Run(t.Context(), execx.Cmd{Argv: []string{"cat", fmt.Sprintf("/proc/%d/environ", os.Getpid())}, Dir: t.TempDir()})
	if strings.Contains(res.Stdout, "s3cr3t-for-test") {
		t.Error("the command read the parent's credentials from /proc")
	}
}

// TestRunStreamsInputsAndOutput feeds stdin and fd 3 and takes stdout as
// a stream, as the stitcher pipes segments through ffmpeg.
func TestRunStreamsInputsAndOutput(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"cat"}}
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // larger than a pipe's buffer
	var out bytes.Buffer
	_, err := r.Run(t.Context(), execx.Cmd{
		Argv:        []string{"cat", "-", "/dev/fd/3"},
		Dir:         t.TempDir(),
		Stdin:       bytes.NewReader(big),
		ExtraInputs: []io.Reader{strings.NewReader("<fd 3>")},
		Stdout:      &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := string(big) + "<fd 3>"; out.String() != want {
		t.Errorf("stdout has %d bytes ending %q; want %d ending %q", out.Len(), tail(out.String()), len(want), tail(want))
	}
}

// TestRunFailsOnAnInputCutShort: cat ends happily on a short input; Run
// must not.
func TestRunFailsOnAnInputCutShort(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"cat"}}
	broken := io.MultiReader(strings.NewReader("first half"), iotest.ErrReader(errors.New("connection reset")))
	_, err := r.Run(t.Context(), execx.Cmd{Argv: []string{"cat"}, Dir: t.TempDir(), Stdin: broken, Stdout: io.Discard})
	if e := asJobError(t, err); e.Code != joberr.CodeStorage || !strings.Contains(e.Message, "connection reset") {
		t.Errorf("Run with a failing input = %v; want a storage error naming it", err)
	}
}

func tail(s string) string { return s[max(0, len(s)-12):] }

// slowWriter takes its first write only after a pause longer than
// os/exec's WaitDelay, as an upload under backpressure may.
type slowWriter struct {
	buf    bytes.Buffer // not embedded: io.Copy would use its ReadFrom
	paused bool
}

func (w *slowWriter) Write(p []byte) (int, error) {
	if !w.paused {
		w.paused = true
		time.Sleep(2500 * time.Millisecond)
	}
	return w.buf.Write(p)
}

// TestRunWaitsForASlowOutput: the command ends long before its output is
// taken; all of it still arrives.
func TestRunWaitsForASlowOutput(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"cat"}}
	big := bytes.Repeat([]byte("x"), 256<<10)
	out := &slowWriter{}
	if _, err := r.Run(t.Context(), execx.Cmd{Argv: []string{"cat"}, Dir: t.TempDir(), Stdin: bytes.NewReader(big), Stdout: out}); err != nil {
		t.Fatal(err)
	}
	if out.buf.Len() != len(big) {
		t.Errorf("stdout got %d bytes of %d", out.buf.Len(), len(big))
	}
}

// stalledReader blocks in Read until closed, as a stalled download does.
type stalledReader struct{ closed chan struct{} }

func (r *stalledReader) Read([]byte) (int, error) { <-r.closed; return 0, errors.New("closed") }
func (r *stalledReader) Close() error             { close(r.closed); return nil }

// TestRunUnblocksAStalledInput: a command that exits without reading its
// input does not leave Run waiting on a Read that never returns.
func TestRunUnblocksAStalledInput(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"true"}}
	done := make(chan error, 1)
	go func() {
		_, err := r.Run(t.Context(), execx.Cmd{Argv: []string{"true"}, Dir: t.TempDir(), Stdin: &stalledReader{closed: make(chan struct{})}})
		done <- err
	}()
	select {
	case <-done: // an error or not: the input was cut; what matters is that Run returned
	case <-time.After(10 * time.Second):
		t.Fatal("Run still waiting on a stalled input 10 s after the command exited")
	}
}

func TestRunRefusesExtraInputsToAConfinedCommand(t *testing.T) {
	r := &execx.Runner{Allowed: job.Allowlist{"cat"}, Confiner: confineNothing{}}
	_, err := r.Run(t.Context(), execx.Cmd{Argv: []string{"cat"}, Dir: t.TempDir(), ExtraInputs: []io.Reader{strings.NewReader("x")}})
	if e := asJobError(t, err); e.Kind != joberr.Permanent || !strings.Contains(e.Message, "cannot reach a confined command") {
		t.Errorf("Run = %v", err)
	}
}

type confineNothing struct{}

func (confineNothing) Confine(work, home string, argv []string) []string { return argv }

// NotSelf: a program of this process's own name (the CLI and the Helios
// renderer are both helios) is the next one on PATH, whatever the order;
// if there is none, the error says so.
func TestRunNotSelf(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	first, second := t.TempDir(), t.TempDir()
	if err := os.Symlink(self, filepath.Join(first, "twin")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(second, "twin"), []byte("#!/bin/sh\necho the other twin\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &execx.Runner{Allowed: job.Allowlist{"twin"}, NotSelf: true}
	t.Setenv("PATH", first+string(os.PathListSeparator)+second+string(os.PathListSeparator)+"/usr/bin:/bin")
	res, err := r.Run(t.Context(), execx.Cmd{Argv: []string{"twin"}, Dir: t.TempDir()})
	if err != nil || strings.TrimSpace(res.Stdout) != "the other twin" {
		t.Errorf("ran %q (%v), want the twin that is not this process", res.Stdout, err)
	}
	t.Setenv("PATH", first)
	if _, err := r.Run(t.Context(), execx.Cmd{Argv: []string{"twin"}, Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), `the only "twin" on PATH is this program itself`) {
		t.Errorf("only this process on PATH: %v", err)
	}
}
