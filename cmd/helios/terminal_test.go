package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
