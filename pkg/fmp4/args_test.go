package fmp4_test

import (
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/fmp4"
)

func TestFragmentArgs(t *testing.T) {
	video := strings.Join(fmp4.FragmentArgs("in put.mov", "out.frag", nil), " ")
	for _, want := range []string{"ffmpeg ", "-i in put.mov ", "-map 0:v:0 -c copy ", "-movflags +frag_keyframe+empty_moov+default_base_moof ", "-f mp4 -y out.frag"} {
		if !strings.Contains(video, want) {
			t.Errorf("FragmentArgs: %q lacks %q", video, want)
		}
	}
	if strings.Contains(video, "0:a") {
		t.Errorf("FragmentArgs without audio maps audio: %q", video)
	}
	both := strings.Join(fmp4.FragmentArgs("in.mov", "out.frag", &fmp4.AudioCut{Path: "a.pcm", SampleRate: 44100, Channels: 1, Samples: 1470}), " ")
	want := "-map 0:a:0 -af aresample=44100:async=1:first_pts=0,apad=whole_len=1470,atrim=end_sample=1470 -ac 1 -c:a pcm_s16le -f s16le -y a.pcm"
	if !strings.HasSuffix(both, want) {
		t.Errorf("FragmentArgs with audio = %q, want it to end in %q", both, want)
	}
}
