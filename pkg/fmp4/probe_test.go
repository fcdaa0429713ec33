package fmp4_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/fmp4"
)

func TestAudioCodec(t *testing.T) {
	testkit.RequireFFmpeg(t)
	dir := t.TempDir()
	for _, tt := range []struct {
		name  string
		audio []string // ffmpeg output options for the audio; nil: none
		extra []string
		want  string
	}{
		{"video.mp4", nil, nil, ""},
		{"aac.mp4", []string{"-c:a", "aac"}, nil, "mp4a"},
		{"aac-faststart.mp4", []string{"-c:a", "aac"}, []string{"-movflags", "+faststart"}, "mp4a"},
		{"pcm.mov", []string{"-c:a", "pcm_s16le"}, nil, "sowt"},
		{"fragmented.mp4", []string{"-c:a", "aac"}, []string{"-movflags", "+frag_keyframe+empty_moov"}, "mp4a"},
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
			if got, err := fmp4.AudioCodec(f); err != nil || got != tt.want {
				t.Errorf("AudioCodec = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("not a video", func(t *testing.T) {
		if _, err := fmp4.AudioCodec(strings.NewReader("not a video at all")); err == nil {
			t.Error("AudioCodec of text: no error")
		}
	})
}
