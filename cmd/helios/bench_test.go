package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
)

// BenchmarkDemo is `make demo` beside one ffmpeg pass over the same frames:
// each iteration runs `helios job run examples/jobs/demo.json` (360 frames
// of 720p x264 in 6 chunks, local adapter, a local folder for storage) and
// the demo's command once over all 360 frames, one after the other, and
// reports the ratio of their wall times (chunked/single-pass).
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

	var chunked, single time.Duration
	for b.Loop() {
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
		cmd := exec.CommandContext(b.Context(), whole.Command, whole.Args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("single pass: %v\n%s", err, out)
		}
		single += time.Since(start)
		os.RemoveAll(dir)
	}
	b.ReportMetric(chunked.Seconds()/float64(b.N), "chunked-s/op")
	b.ReportMetric(single.Seconds()/float64(b.N), "single-pass-s/op")
	b.ReportMetric(chunked.Seconds()/single.Seconds(), "chunked/single")
}
