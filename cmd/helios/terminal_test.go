package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/helios-project/infrastructure/internal/testkit"
)

// On a terminal, log lines go above the progress bar, never into it
// (issue 13, point 4): every line the logger writes starts at the
// beginning of a screen line.
func TestLogsStayAboveTheBar(t *testing.T) {
	testkit.RequireFFmpeg(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec := writeSpec(t, testkit.NativeSpec("tty", 24, 2))
	cmd := exec.CommandContext(t.Context(), exe, "job", "run", spec, "--out", filepath.Join(t.TempDir(), "v.mp4"),
		"--storage", t.TempDir(), "--concurrency", "2", "-v")
	cmd.Env = append(os.Environ(), "HELIOS_TEST_CLI=1")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	_, _ = io.Copy(&screen, tty) // until the CLI exits (EIO on Linux)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run on a terminal: %v\n%s", err, screen.String())
	}
	out := screen.String()
	if !strings.Contains(out, "rendering") {
		t.Fatalf("no progress bar on the terminal:\n%q", out)
	}
	lines := 0
	for i := strings.Index(out, "time="); i >= 0; {
		lines++
		if i > 0 && out[i-1] != '\n' && out[i-1] != '\r' {
			t.Fatalf("a log line starts in the middle of a screen line: %q", out[max(0, i-60):min(len(out), i+40)])
		}
		next := strings.Index(out[i+1:], "time=")
		if next < 0 {
			break
		}
		i += 1 + next
	}
	if lines < 3 {
		t.Fatalf("only %d log lines on the terminal with -v; the test needs some:\n%q", lines, out)
	}
}

// syncBuffer is a terminal's screen as it is written.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The bar's rate and time left are this run's: none before the first
// chunk ends (not "0s"), a resumed job's earlier frames are not counted
// into them (the bar says how many there were), and Ctrl-C leaves the bar's
// line ended, the message on a line of its own, exit 130.
func TestProgressBarRateAndCtrlC(t *testing.T) {
	testkit.RequireFFmpeg(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path, storage := writeSpec(t, slowSpec("bar", 30, 5)), t.TempDir() // a chunk takes half a second
	// copied is closed when the terminal has given everything the CLI wrote.
	start := func() (cmd *exec.Cmd, tty *os.File, screen *syncBuffer, copied chan struct{}) {
		cmd = exec.CommandContext(t.Context(), exe, "job", "run", path, "--out", filepath.Join(t.TempDir(), "v.mp4"), "--storage", storage, "--concurrency", "1")
		cmd.Env = append(os.Environ(), "HELIOS_TEST_CLI=1")
		tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
		if err != nil {
			t.Fatal(err)
		}
		screen, copied = &syncBuffer{}, make(chan struct{})
		go func() { io.Copy(screen, tty); close(copied) }() // until EIO once the CLI has exited
		return cmd, tty, screen, copied
	}
	waitFor := func(screen *syncBuffer, what string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(screen.String(), what); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q on the terminal:\n%q", what, screen.String())
			}
		}
	}

	cmd, tty, screen, copied := start()
	waitFor(screen, "frames/s")
	if before := screen.String()[:strings.Index(screen.String(), "frames/s")]; !strings.Contains(before, "first chunks in flight") || strings.Contains(before, "left") {
		t.Errorf("before the first chunk, the bar shows:\n%q", before)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	<-copied
	tty.Close()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Errorf("Ctrl-C: %v, want exit %d", err, exitInterrupted)
	}
	out := screen.String()
	if i := strings.Index(out, "helios: interrupted after"); i <= 0 || out[i-1] != '\n' {
		t.Errorf("the message after Ctrl-C does not start a line of its own:\n%q", out[max(0, len(out)-300):])
	}

	cmd, tty, screen, copied = start()
	waitFor(screen, "frames/s")
	err = cmd.Wait()
	<-copied
	tty.Close()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, screen.String())
	}
	if !regexp.MustCompile(`resuming \([1-9][0-9]* frames done before\), first chunks in flight`).MatchString(screen.String()) {
		t.Errorf("the resumed run's bar does not say what was done before:\n%q", screen.String())
	}
}
