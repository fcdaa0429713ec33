package ffmpeg

import (
	"slices"
	"testing"
)

// The MP4 family gets its index moved to the front; other containers have
// no such option. The output is always last, overwritten.
func TestConcatArgs(t *testing.T) {
	tests := []struct {
		output    string
		faststart bool
	}{
		{"/tmp/out.mp4", true},
		{"/tmp/out.mov", true},
		{"/tmp/out.m4v", true},
		{"/tmp/OUT.MP4", true}, // ffmpeg reads the extension in any case
		{"/tmp/out.mkv", false},
		{"/tmp/out.webm", false},
		{"/tmp/out.ts", false},
		{"/tmp/out.mp4.part", false},
	}
	for _, tt := range tests {
		argv := concatArgs(tt.output)
		i := slices.Index(argv, "-movflags")
		if got := i >= 0 && i+1 < len(argv) && argv[i+1] == "+faststart"; got != tt.faststart {
			t.Errorf("%s: +faststart = %v, want %v: %q", tt.output, got, tt.faststart, argv)
		}
		if argv[0] != "ffmpeg" || !slices.Equal(argv[len(argv)-2:], []string{"-y", tt.output}) {
			t.Errorf("%s: argv %q: want ffmpeg ... -y %s", tt.output, argv, tt.output)
		}
		if c := slices.Index(argv, "-c"); c < 0 || argv[c+1] != "copy" {
			t.Errorf("%s: argv %q does not copy the streams", tt.output, argv)
		}
		if f := slices.Index(argv, "-f"); f < 0 || argv[f+1] != "concat" || argv[f+2] != "-i" || argv[f+3] != "concat.txt" {
			t.Errorf("%s: argv %q does not read concat.txt with the concat demuxer", tt.output, argv)
		}
	}
}
