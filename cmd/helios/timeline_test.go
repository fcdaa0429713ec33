package main

import (
	"image/png"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
)

// `job timeline` draws a finished job; headless Chromium renders the SVG
// with a bar per attempt, the stitch and the legend, and its screenshot is
// not blank.
func TestTimelineRendersInChromium(t *testing.T) {
	testkit.RequireFFmpeg(t)
	chromium := testkit.RequireChromium(t)
	storage, dir := t.TempDir(), t.TempDir()
	if r := helios(t, nil, "job", "run", writeSpec(t, testkit.NativeSpec("drawn", 12, 4)), "--out", filepath.Join(dir, "v.mp4"), "--storage", storage); r.code != 0 {
		t.Fatalf("job run: exit %d: %s", r.code, r.stderr)
	}
	if r := helios(t, nil, "job", "timeline", "drawn", "--storage", storage); r.code != exitUsage || !strings.Contains(r.stderr, "--out FILE.svg is required") {
		t.Errorf("without --out: exit %d, %q", r.code, r.stderr)
	}
	svg := filepath.Join(dir, "drawn.svg")
	if r := helios(t, nil, "job", "timeline", "drawn", "--storage", storage, "--out", svg); r.code != 0 || !strings.Contains(r.stdout, "3 attempts, 1 stitch, 1 run") {
		t.Fatalf("job timeline: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	// The mode any new file gets: 0666 less the umask (not CreateTemp's 0600).
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	if fi, err := os.Stat(svg); err != nil || fi.Mode().Perm() != 0o666&^fs.FileMode(umask) {
		t.Errorf("the SVG's mode: %v (%v), want %v", fi.Mode().Perm(), err, 0o666&^fs.FileMode(umask))
	}
	browser := func(args ...string) string {
		cmd := exec.Command(chromium, append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
			"--hide-scrollbars", "--user-data-dir=" + t.TempDir()}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return string(out)
	}
	dom := browser("--dump-dom", svg)
	if strings.Contains(dom, "This page contains the following errors") {
		t.Fatalf("Chromium could not parse the SVG:\n%.500s", dom)
	}
	if n := strings.Count(dom, `class="attempt `); n != 3 {
		t.Errorf("%d bars in Chromium's DOM, want 3 (one per attempt)", n)
	}
	if strings.Count(dom, `class="stitch"`) != 1 || strings.Count(dom, `class="legend"`) != len(job.Outcomes)+2 {
		t.Errorf("no stitch bar or legend in Chromium's DOM")
	}
	shot := filepath.Join(dir, "drawn.png")
	browser("--screenshot="+shot, "--window-size=1200,240", svg)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// The bars of done attempts (#2a9d8f) cover a good part of the picture.
	done := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 == 0x2a && g>>8 == 0x9d && bl>>8 == 0x8f {
				done++
			}
		}
	}
	if done < 1000 {
		t.Errorf("the screenshot shows %d pixels of done bars: blank?", done)
	}
}

// A job stopped with Ctrl-C and resumed: its history has both runs, and
// the timeline says so and marks where the second began.
func TestTimelineMarksRuns(t *testing.T) {
	testkit.RequireFFmpeg(t)
	storage, dir := t.TempDir(), t.TempDir()
	path := writeSpec(t, slowSpec("twice", 20, 5))
	runUntilFirstChunk(t, path, storage, "twice")
	if r := helios(t, nil, "job", "run", path, "--out", filepath.Join(dir, "v.mp4"), "--storage", storage); r.code != exitOK {
		t.Fatalf("resume: exit %d %s", r.code, r.stderr)
	}
	svg := filepath.Join(dir, "twice.svg")
	r := helios(t, nil, "job", "timeline", "twice", "--storage", storage, "--out", svg)
	data, _ := os.ReadFile(svg)
	if r.code != exitOK || !strings.Contains(r.stdout, ", 2 runs") || strings.Count(string(data), `class="run"`) != 1 {
		t.Errorf("timeline of a resumed job: exit %d %q; %d run marks", r.code, r.stdout, strings.Count(string(data), `class="run"`))
	}
}
