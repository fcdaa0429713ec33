package fmp4_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/fmp4"
	"github.com/helios-project/infrastructure/pkg/framerate"
)

// TestPlaceJoin renders a video in chunks, each on its own, joins them with
// Place and a plain concatenation, and checks the result against a
// single-pass render: the same frames, on the same timestamps, of the same
// duration, seekable.
func TestPlaceJoin(t *testing.T) {
	testkit.RequireFFmpeg(t)
	tests := []struct {
		name  string
		enc   encoder
		rate  string  // as ffmpeg's testsrc2 takes it
		fps   float64 // as a job spec carries it
		sizes []int
	}{
		{"24fps 100 in 33s", x264BFrames(), "24", 24, chunkSizes(100, 33)},
		{"25fps 100 in 33s lossless", x264Lossless(), "25", 25, chunkSizes(100, 33)},
		{"ntsc 30 in 7s", x265Lossless(), "30000/1001", 30000.0 / 1001, chunkSizes(30, 7)},
		{"ntsc 29.97 20 in 7s", x264BFrames(), "30000/1001", 29.97, chunkSizes(20, 7)},
		{"60fps 1-frame chunks", x264BFrames(), "60", 60, chunkSizes(5, 1)},
		// x264 adds no delay to a chunk of one or two frames, two frames
		// to longer ones: delays differ from chunk to chunk.
		{"24fps mixed delays", x264BFrames(), "24", 24, []int{1, 2, 12, 1, 3}},
		{"60fps mixed delays x265", x265Lossless(), "60", 60, []int{1, 20, 2, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			rate, err := framerate.Of(tt.fps)
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for _, n := range tt.sizes {
				total += n
			}
			chunks := renderChunks(t, dir, tt.enc, tt.rate, tt.sizes)
			reference := filepath.Join(dir, "reference.mp4")
			run(t, renderArgs(tt.enc, tt.rate, 0, total, reference)...)

			joined := joinChunks(t, dir, chunks, rate)

			// The frames: the pattern's for a lossless render, else each
			// chunk's own, in order.
			want := testkit.FrameMD5(t, reference)
			if !tt.enc.lossless {
				want = nil
				for _, c := range chunks {
					want = append(want, testkit.FrameMD5(t, c.plain)...)
				}
			}
			// ffmpeg decodes it with nothing to warn about.
			got, warnings := frameMD5(t, joined)
			if warnings != "" {
				t.Errorf("decoding the joined file: %s", warnings)
			}
			if len(got) != total || !slices.Equal(got, want) {
				t.Fatalf("joined frames differ from the expected %d:\n got %v\nwant %v", total, got, want)
			}

			// The timestamps and the duration: a single pass's.
			gotProbe, wantProbe := probeFile(t, joined), probeFile(t, reference)
			if gotProbe.TimeBase != wantProbe.TimeBase || !slices.Equal(gotProbe.PTS, wantProbe.PTS) {
				t.Errorf("frame timestamps (time base %s) %v;\nsingle pass (time base %s) %v",
					gotProbe.TimeBase, gotProbe.PTS, wantProbe.TimeBase, wantProbe.PTS)
			}
			exact := fmt.Sprintf("%.6f", float64(total)*float64(rate.Den)/float64(rate.Num))
			if gotProbe.Duration != wantProbe.Duration || gotProbe.Duration != exact || gotProbe.FileDuration != exact {
				t.Errorf("duration %s s (file %s s), single pass %s s, %d frames last %s s",
					gotProbe.Duration, gotProbe.FileDuration, wantProbe.Duration, total, exact)
			}

			// Seeking to the middle frame decodes that frame.
			mid := total / 2
			at := fmt.Sprintf("%.6f", float64(mid)*float64(rate.Den)/float64(rate.Num))
			seeked := run(t, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
				"-ss", at, "-i", joined, "-frames:v", "1", "-f", "framemd5", "-")
			if want := got[mid]; !containsHash(seeked, want) {
				t.Errorf("seeking to %s s (frame %d) decodes another frame than %s:\n%s", at, mid, want, seeked)
			}
		})
	}
}

// joinChunks places every chunk and joins them, as a stitcher would: the
// first chunk's init, every other init checked against it.
func joinChunks(t *testing.T, dir string, chunks []chunk, rate framerate.Rate) string {
	t.Helper()
	var (
		init  *fmp4.Init
		parts []*os.File
		seq   uint32 = 1
	)
	for i, c := range chunks {
		placedPath := filepath.Join(dir, "placed-"+strconv.Itoa(i))
		placed := placeChunk(t, c, placedPath, fmp4.Placement{Start: c.start, Rate: rate, Sequence: seq, Delay: fmp4.DefaultDelay})
		if placed.Samples != c.count {
			t.Fatalf("chunk %d: %d samples, rendered %d frames", i, placed.Samples, c.count)
		}
		if want := uint64(c.start) * uint64(placed.SampleDuration); placed.FirstDecodeTime != want {
			t.Fatalf("chunk %d: first decode time %d, want %d", i, placed.FirstDecodeTime, want)
		}
		seq += uint32(placed.Fragments)
		if init == nil {
			init = placed.Init
		} else if err := fmp4.Compatible(init, placed.Init); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		f, err := os.Open(placedPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		parts = append(parts, f)
	}
	joined := filepath.Join(dir, "joined.mp4")
	out, err := os.Create(joined)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// The join itself is a plain concatenation, as storage.Concat makes it.
	readers := []io.Reader{bytes.NewReader(init.Bytes())}
	for _, p := range parts {
		readers = append(readers, p)
	}
	if _, err := io.Copy(out, io.MultiReader(readers...)); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return joined
}

// placeChunk places a fragmented chunk into dst.
func placeChunk(t *testing.T, c chunk, dst string, p fmp4.Placement) *fmp4.Placed {
	t.Helper()
	in, err := os.Open(c.fragmented)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	placed, err := fmp4.Place(out, in, p)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("place %s: %v", filepath.Base(c.fragmented), err)
	}
	return placed
}

// frameMD5 is testkit.FrameMD5 that also returns ffmpeg's warnings.
func frameMD5(t *testing.T, path string) (sums []string, warnings string) {
	t.Helper()
	out, warnings := runBoth(t, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", "-i", path, "-map", "0:v", "-f", "framemd5", "-")
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ",")
		sums = append(sums, strings.TrimSpace(fields[len(fields)-1]))
	}
	return sums, warnings
}

func containsHash(framemd5, hash string) bool {
	for _, line := range strings.Split(framemd5, "\n") {
		if !strings.HasPrefix(line, "#") && strings.HasSuffix(strings.TrimSpace(line), hash) {
			return true
		}
	}
	return false
}
