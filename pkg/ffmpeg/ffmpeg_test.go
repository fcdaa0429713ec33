package ffmpeg_test

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/job"
)

// render writes frames [start, start+count) of the test pattern to path,
// the container chosen by its extension.
func render(t *testing.T, path string, start, count int) {
	t.Helper()
	vars := job.Vars{Chunk: job.Chunk{Start: start, Count: count}, Output: path, FPS: testkit.FPS, Width: testkit.Width, Height: testkit.Height}
	ffmpegRun(t, vars.Expand(testkit.ChunkArgs())...)
}

func ffmpegRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.CommandContext(t.Context(), "ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestCountFrames(t *testing.T) {
	testkit.RequireFFmpeg(t)
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	render(t, file("twelve.mp4"), 0, 12)
	render(t, file("one.mkv"), 40, 1)
	render(t, file("seven.mov"), 3, 7)
	render(t, file("five.ts"), 0, 5)
	ffmpegRun(t, "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "pcm_s16le", file("audio.mkv"))
	whole, err := os.ReadFile(file("twelve.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	// Without faststart the index comes last: half the file has none.
	if err := os.WriteFile(file("truncated.mp4"), whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file("notes.mp4"), []byte("not a video\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		want    int
		wantErr string // "" for success
	}{
		{"twelve.mp4", 12, ""},
		{"one.mkv", 1, ""},
		{"seven.mov", 7, ""},
		{"five.ts", 5, ""}, // ffprobe lists its stream twice (program and stream)
		{"audio.mkv", 0, "count frames of audio.mkv: no video stream"},
		{"truncated.mp4", 0, "count frames of truncated.mp4: "},
		{"notes.mp4", 0, "count frames of notes.mp4: "},
		{"missing.mp4", 0, "count frames of missing.mp4: "},
	}
	tool := ffmpeg.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := tool.CountFrames(t.Context(), file(tt.name))
			switch {
			case tt.wantErr == "" && (err != nil || n != tt.want):
				t.Errorf("CountFrames = %d, %v; want %d", n, err, tt.want)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Errorf("CountFrames = %d, %v; want an error starting %q", n, err, tt.wantErr)
			}
		})
	}
}

// Joined segments decode to exactly the frames of a single render, in
// every container the segments may use that holds the test's H.264; the
// MP4 family comes out with its index first (faststart).
func TestConcat(t *testing.T) {
	testkit.RequireFFmpeg(t)
	reference := testkit.SinglePass(t, t.TempDir(), 12)
	tool := ffmpeg.New()
	for _, ext := range []string{"mp4", "mov", "m4v", "mkv", "ts"} {
		t.Run(ext, func(t *testing.T) {
			format, ok := job.FormatOf("x." + ext)
			if !ok {
				t.Fatalf("%s is not in job.Formats", ext)
			}
			dir := t.TempDir()
			inputs := []string{"a." + ext, "b." + ext, "c." + ext}
			for i, r := range [][2]int{{0, 5}, {5, 4}, {9, 3}} {
				render(t, filepath.Join(dir, inputs[i]), r[0], r[1])
			}
			out := filepath.Join(t.TempDir(), "out."+ext)
			if err := tool.Concat(t.Context(), dir, inputs, out); err != nil {
				t.Fatal(err)
			}
			list, err := os.ReadFile(filepath.Join(dir, "concat.txt"))
			if want := "file 'a." + ext + "'\nfile 'b." + ext + "'\nfile 'c." + ext + "'\n"; err != nil || string(list) != want {
				t.Errorf("concat.txt = %q, %v; want %q", list, err, want)
			}
			testkit.AssertFrameExact(t, out, reference)
			if format.MP4 {
				// ffmpeg writes the index last unless asked: the segments have it last,
				// the output first.
				if first := indexFirst(t, filepath.Join(dir, inputs[0])); first {
					t.Errorf("segment %s has its index first: the check cannot tell", inputs[0])
				}
				if !indexFirst(t, out) {
					t.Errorf("output %s has its index after the media: not faststart", filepath.Base(out))
				}
			}
			if n, err := tool.CountFrames(t.Context(), out); err != nil || n != 12 {
				t.Errorf("CountFrames(output) = %d, %v; want 12", n, err)
			}
		})
	}
}

// indexFirst reports whether an MP4-family file has its moov box before
// its mdat box, reading the top-level boxes.
func indexFirst(t *testing.T, path string) bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+8 <= len(data); {
		size, typ := int(binary.BigEndian.Uint32(data[off:])), string(data[off+4:off+8])
		switch {
		case typ == "moov":
			return true
		case typ == "mdat":
			return false
		case size == 1 && off+16 <= len(data): // 64-bit size
			size = int(binary.BigEndian.Uint64(data[off+8:]))
		case size < 8:
			t.Fatalf("%s: box %q at %d has size %d", path, typ, off, size)
		}
		off += size
	}
	t.Fatalf("%s: neither moov nor mdat found", path)
	return false
}

func TestConcatErrors(t *testing.T) {
	testkit.RequireFFmpeg(t)
	tool := ffmpeg.New()
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "out.mp4")

	err := tool.Concat(t.Context(), filepath.Join(dir, "absent"), []string{"a.mp4"}, out)
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "write concat list: ") {
		t.Errorf("Concat in a missing dir = %v; want a wrapped fs.ErrNotExist", err)
	}

	render(t, filepath.Join(dir, "a.mp4"), 0, 2)
	render(t, filepath.Join(dir, "b.mp4"), 2, 3)
	err = tool.Concat(t.Context(), dir, []string{"gone.mp4", "a.mp4"}, out)
	if err == nil || !strings.HasPrefix(err.Error(), "concat 2 segments: ") {
		t.Errorf("Concat with the first segment missing = %v; want an error starting \"concat 2 segments: \"", err)
	}

	// A segment missing after the first may end the output early without
	// an error (ffmpeg stops reading there and exits 0): callers count the
	// output's frames, as the stitcher does, to catch it.
	err = tool.Concat(t.Context(), dir, []string{"a.mp4", "gone.mp4", "b.mp4"}, out)
	if err == nil {
		if n, err := tool.CountFrames(t.Context(), out); err == nil && n == 5 {
			t.Errorf("Concat without its second segment made all 5 frames")
		}
	}
}
