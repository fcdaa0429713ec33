package stitch_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/stitch"
)

// BenchmarkStitch joins 8 lossless 720p segments with the concat demuxer
// (stream copy) beside a plain copy of the same bytes into one file: the
// ratio is what the container rewrite costs over moving the bytes.
func BenchmarkStitch(b *testing.B) {
	testkit.RequireFFmpeg(b)
	dir := b.TempDir()
	var inputs []string
	var total int64
	for i := range 8 {
		in := filepath.Join(dir, fmt.Sprintf("seg-%d.mp4", i))
		args := []string{"-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
			"-vf", fmt.Sprintf("trim=start_frame=%d:end_frame=%d,setpts=PTS-STARTPTS", i*30, i*30+30),
			"-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-y", in}
		if out, err := runFFmpeg(args); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		info, err := os.Stat(in)
		if err != nil {
			b.Fatal(err)
		}
		total += info.Size()
		inputs = append(inputs, in)
	}
	b.Logf("%d segments, %.1f MB", len(inputs), float64(total)/1e6)

	b.Run("concat", func(b *testing.B) {
		s := &stitch.FfmpegStitcher{Tool: ffmpeg.New()}
		out := filepath.Join(dir, "joined.mp4")
		b.SetBytes(total)
		for b.Loop() {
			if err := s.Stitch(b.Context(), inputs, out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("copy", func(b *testing.B) {
		out := filepath.Join(dir, "copied.bin")
		b.SetBytes(total)
		for b.Loop() {
			if err := catFiles(inputs, out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func catFiles(inputs []string, output string) error {
	w, err := os.Create(output)
	if err != nil {
		return err
	}
	for _, in := range inputs {
		r, err := os.Open(in)
		if err != nil {
			w.Close()
			return err
		}
		_, err = io.Copy(w, r)
		r.Close()
		if err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}
