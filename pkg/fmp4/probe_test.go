package fmp4_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/fmp4"
)

func TestInspect(t *testing.T) {
	testkit.RequireFFmpeg(t)
	dir := t.TempDir()
	for _, tt := range []struct {
		name  string
		audio []string // ffmpeg output options for the audio; nil: none
		extra []string
		want  fmp4.Summary
	}{
		{"video.mp4", nil, nil, fmp4.Summary{}},
		{"aac.mp4", []string{"-c:a", "aac"}, nil, fmp4.Summary{Audio: "mp4a"}},
		{"aac-faststart.mp4", []string{"-c:a", "aac"}, []string{"-movflags", "+faststart"}, fmp4.Summary{Audio: "mp4a"}},
		{"pcm.mov", []string{"-c:a", "pcm_s16le"}, nil, fmp4.Summary{Audio: "sowt"}},
		{"fragmented.mp4", []string{"-c:a", "aac"}, []string{"-movflags", "+frag_keyframe+empty_moov"}, fmp4.Summary{Audio: "mp4a", Fragmented: true}},
		{"fragmented-video.mp4", nil, []string{"-movflags", "+frag_keyframe+empty_moov+default_base_moof"}, fmp4.Summary{Fragmented: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			argv := []string{"ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25"}
			if tt.audio != nil {
				argv = append(argv, "-f", "lavfi", "-i", "sine")
			}
			argv = append(argv, "-frames:v", "5", "-t", "0.2", "-c:v", "libx264", "-pix_fmt", "yuv420p")
			argv = append(append(append(argv, tt.audio...), tt.extra...), "-y", path)
			run(t, argv...)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got, err := fmp4.Inspect(f); err != nil || got != tt.want {
				t.Errorf("Inspect = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	t.Run("not a video", func(t *testing.T) {
		if _, err := fmp4.Inspect(strings.NewReader("not a video at all")); err == nil {
			t.Error("Inspect of text: no error")
		}
	})
}
