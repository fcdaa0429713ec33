package fmp4_test

import (
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/fmp4"
)

func TestFragmentArgs(t *testing.T) {
	got := strings.Join(fmp4.FragmentArgs("in put.mov", "out.frag"), " ")
	for _, want := range []string{"ffmpeg ", "-i in put.mov ", "-map 0 -c copy ", "-movflags +frag_keyframe+empty_moov+default_base_moof ", "-f mp4 -y out.frag"} {
		if !strings.Contains(got, want) {
			t.Errorf("FragmentArgs: %q lacks %q", got, want)
		}
	}
}
