package fmp4_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/fmp4"
)

// chunkInit renders 3 frames from start, fragments them, and reads the
// init; a nonzero delay places the chunk and returns the placed init.
func chunkInit(t *testing.T, enc encoder, size, rate string, start int, extra ...string) *fmp4.Init {
	t.Helper()
	dir := t.TempDir()
	plain, frag := filepath.Join(dir, "chunk.mp4"), filepath.Join(dir, "chunk.frag.mp4")
	run(t, withOutputArgs(renderSizedArgs(enc, size, rate, start, start+3, plain), extra...)...)
	run(t, fmp4.FragmentArgs(plain, frag, nil)...)
	data, err := os.ReadFile(frag)
	if err != nil {
		t.Fatal(err)
	}
	init, err := fmp4.ReadInit(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return init
}

func TestCompatible(t *testing.T) {
	testkit.RequireFFmpeg(t)
	first := chunkInit(t, x264BFrames(), "64x48", "24", 0)
	tests := []struct {
		name    string
		other   func(t *testing.T) *fmp4.Init
		wantErr string // "" for compatible
	}{
		{"same settings, other frames", func(t *testing.T) *fmp4.Init {
			return chunkInit(t, x264BFrames(), "64x48", "24", 40)
		}, ""},
		{"other width", func(t *testing.T) *fmp4.Init {
			return chunkInit(t, x264BFrames(), "80x48", "24", 0)
		}, "fmp4: track 1: width 64 vs 80"},
		{"other height", func(t *testing.T) *fmp4.Init {
			return chunkInit(t, x264BFrames(), "64x64", "24", 0)
		}, "fmp4: track 1: height 48 vs 64"},
		{"other frame rate", func(t *testing.T) *fmp4.Init {
			return chunkInit(t, x264BFrames(), "64x48", "25", 0)
		}, "fmp4: track 1: timescale 12288 vs 12800"},
		{"other codec", func(t *testing.T) *fmp4.Init {
			return chunkInit(t, x265Lossless(), "64x48", "24", 0)
		}, `fmp4: track 1: codec "avc1" vs "hev1"`},
		{"other profile", func(t *testing.T) *fmp4.Init {
			return chunkInit(t, x264Lossless(), "64x48", "24", 0)
		}, "fmp4: track 1: avcC profile 100 vs 244"},
		{"other quality", func(t *testing.T) *fmp4.Init { // x264's PPS has its initial QP
			return chunkInit(t, x264BFrames(), "64x48", "24", 0, "-crf", "20")
		}, "fmp4: track 1: avcC PPS 1 differs: "},
		{"other reference frames", func(t *testing.T) *fmp4.Init {
			return chunkInit(t, x264BFrames(), "64x48", "24", 0, "-refs", "4")
		}, "fmp4: track 1: avcC PPS 1 differs: "},
		{"other pixel aspect", func(t *testing.T) *fmp4.Init {
			return chunkInit(t, x264BFrames(), "64x48", "24", 0, "-aspect", "16:9")
		}, "fmp4: track 1: avcC SPS 1 differs: "},
		{"an audio track more", func(t *testing.T) *fmp4.Init {
			dir := t.TempDir()
			plain, frag := filepath.Join(dir, "av.mp4"), filepath.Join(dir, "av.frag.mp4")
			run(t, "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24", "-f", "lavfi", "-i", "sine",
				"-frames:v", "3", "-t", "0.125", "-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-y", plain)
			run(t, "ffmpeg", "-v", "error", "-i", plain, "-map", "0", "-c", "copy",
				"-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-y", frag)
			f, err := os.Open(frag)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			init, err := fmp4.ReadInit(f)
			if err != nil {
				t.Fatal(err)
			}
			return init
		}, "fmp4: 1 tracks vs 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := fmp4.Compatible(first, tt.other(t))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Compatible: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("Compatible: %v; want an error starting %q", err, tt.wantErr)
			}
		})
	}
}

// TestCompatibleDescription checks what ReadInit describes of a chunk and
// that Compatible compares it all.
func TestCompatibleDescription(t *testing.T) {
	testkit.RequireFFmpeg(t)
	init := chunkInit(t, x264BFrames(), "64x48", "24", 0)
	if len(init.Tracks) != 1 {
		t.Fatalf("tracks %+v; want one", init.Tracks)
	}
	got := init.Tracks[0]
	var configs []string
	for _, c := range got.Config {
		configs = append(configs, c.Type)
	}
	if got.ID != 1 || got.Handler != "vide" || got.Codec != "avc1" || got.Width != 64 || got.Height != 48 ||
		got.Timescale != 12288 || got.EditMediaTime != 0 || strings.Join(configs, " ") != "avcC pasp" {
		t.Errorf("track %+v (config boxes %v); want ID 1, vide avc1 64x48, timescale 12288, no edit, avcC pasp (no btrt)", got, configs)
	}
	for _, tt := range []struct {
		name    string
		change  func(*fmp4.Track)
		wantErr string
	}{
		{"ID", func(t *fmp4.Track) { t.ID = 2 }, "track ID 1 vs 2"},
		{"handler", func(t *fmp4.Track) { t.Handler = "soun" }, `handler "vide" vs "soun"`},
		{"edit", func(t *fmp4.Track) { t.EditMediaTime = 1024 }, "edit list media time 0 vs 1024"},
		{"defaults", func(t *fmp4.Track) { t.Defaults.Duration = 512 }, "trex sample defaults"},
		{"config boxes", func(t *fmp4.Track) { t.Config = t.Config[:1] }, "avc1 boxes [avcC pasp] vs [avcC]"},
	} {
		other := *init
		other.Tracks = []fmp4.Track{got}
		tt.change(&other.Tracks[0])
		err := fmp4.Compatible(init, &other)
		if want := fmt.Sprintf("fmp4: track 1: %s", tt.wantErr); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: Compatible: %v; want an error starting %q", tt.name, err, want)
		}
	}
}
