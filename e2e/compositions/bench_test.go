package compositions

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/testkit"
)

// BenchmarkRealCompositions renders each composition written for what real
// compositions use (testdata/real) at 320x240, in one pass and in three
// chunks, in the npm headless shell (frames drawn on request) and, for the
// DOM ones, in Debian's chromium (frames at its pace): frames per second of
// the whole command (start-up included) each way.
//
//	go test -run '^$' -bench RealCompositions -benchtime 2x ./e2e/compositions
func BenchmarkRealCompositions(b *testing.B) {
	r := need(b)
	debian := testkit.RequireChromium(b)
	for _, tc := range []struct {
		comp, mode string
		frames     int
	}{
		{"video", "dom", 90}, {"webgl", "canvas", 60}, {"transforms", "dom", 120}, {"datamedia", "dom", 60}, {"mono", "dom", 30},
	} {
		dir := realBundle(b, tc.comp)
		browsers := map[string]string{"shell": r.Shell}
		if tc.mode == "dom" {
			browsers["debian-chromium"] = debian
		}
		for name, browser := range browsers {
			b.Run(tc.comp+"/"+name, func(b *testing.B) {
				var one, chunked time.Duration
				third := tc.frames / 3
				for b.Loop() {
					start := time.Now()
					benchRender(b, r, dir, browser, tc.comp, tc.mode, 0, tc.frames)
					one += time.Since(start)
					start = time.Now()
					for _, c := range [][2]int{{0, third}, {third, third}, {2 * third, tc.frames - 2*third}} {
						benchRender(b, r, dir, browser, tc.comp, tc.mode, c[0], c[1])
					}
					chunked += time.Since(start)
				}
				n := float64(b.N * tc.frames)
				b.ReportMetric(n/one.Seconds(), "one-pass-frames/s")
				b.ReportMetric(n/chunked.Seconds(), "chunked-frames/s")
			})
		}
	}
}

func benchRender(b *testing.B, r testkit.Renderer, dir, browser, comp, mode string, start, count int) {
	b.Helper()
	cmd := exec.Command(filepath.Join(r.Bin, "helios"), "render", comp+"/index.html", "-o", filepath.Join(b.TempDir(), "out.mov"),
		"--start-frame", strconv.Itoa(start), "--frame-count", strconv.Itoa(count), "--width", "320", "--height", "240", "--mode", mode)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HELIOS_CHROMIUM="+browser)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("helios render %s: %v\n%s", comp, err, msg)
	}
}
