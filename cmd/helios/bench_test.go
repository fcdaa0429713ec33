package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
)

// BenchmarkDemo is `make demo` beside one ffmpeg pass over the same frames:
// each iteration runs, one after the other,
//   - `helios job run examples/jobs/demo.json` (360 frames of 720p x264 in
//     6 chunks, local adapter, a local folder for storage);
//   - the demo's 6 chunk commands by themselves, as many at once as the
//     CLI runs (the number of CPUs): what chunking costs the render alone;
//   - the demo's command once over all 360 frames;
//
// and reports the ratios of their wall times.
func BenchmarkDemo(b *testing.B) {
	testkit.RequireFFmpeg(b)
	const specPath = "../../examples/jobs/demo.json"
	data, err := os.ReadFile(specPath)
	if err != nil {
		b.Fatal(err)
	}
	spec, err := job.Decode(bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	spec.Normalize()
	whole := spec.WorkerJob(job.Chunk{Start: 0, Count: spec.Metadata.TotalFrames}, 0, 1)

	var chunked, commands, single time.Duration
	round := func() {
		dir, err := os.MkdirTemp("", "helios-bench-demo-*")
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var stdout, stderr bytes.Buffer
		args := []string{"job", "run", specPath, "--out", filepath.Join(dir, "demo.mp4"), "--storage", filepath.Join(dir, "storage")}
		if code := run(b.Context(), args, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" }); code != 0 {
			b.Fatalf("helios job run: exit %d\n%s", code, stderr.String())
		}
		chunked += time.Since(start)

		start = time.Now()
		g := new(errgroup.Group)
		g.SetLimit(runtime.NumCPU())
		for _, c := range spec.Plan() {
			w := spec.WorkerJob(c, 0, 1)
			g.Go(func() error {
				cmd := exec.CommandContext(b.Context(), w.Command, w.Args...)
				cmd.Dir = dir
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("chunk %d: %v\n%s", c.Index, err, out)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		commands += time.Since(start)

		start = time.Now()
		cmd := exec.CommandContext(b.Context(), whole.Command, whole.Args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("single pass: %v\n%s", err, out)
		}
		single += time.Since(start)
		os.RemoveAll(dir)
	}
	// A first round, not counted, warms the page cache and the binaries:
	// otherwise whichever arm runs first pays for it.
	round()
	chunked, commands, single = 0, 0, 0
	for b.Loop() {
		round()
	}
	b.ReportMetric(chunked.Seconds()/float64(b.N), "helios-s/op")
	b.ReportMetric(commands.Seconds()/float64(b.N), "commands-s/op")
	b.ReportMetric(single.Seconds()/float64(b.N), "single-pass-s/op")
	b.ReportMetric(chunked.Seconds()/single.Seconds(), "helios/single")
	b.ReportMetric(commands.Seconds()/single.Seconds(), "commands/single")
}
