package testkit

// Reading rendered media back for comparison: decoded audio, levels,
// the luma range of a frame.

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// PCM decodes a file's audio as 48 kHz stereo s16le.
func PCM(t testing.TB, path string) []byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", path,
		"-map", "0:a", "-ar", "48000", "-ac", "2", "-f", "s16le", "-").Output()
	if err != nil {
		t.Fatalf("decode the audio of %s: %v", path, err)
	}
	return out
}

// LumaRange is the darkest and brightest luma of frame n of a video.
func LumaRange(t testing.TB, path string, n int) (lo, hi int) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", path,
		"-vf", fmt.Sprintf("select=eq(n\\,%d),signalstats,metadata=print:file=-", n), "-frames:v", "1", "-f", "null", "-").Output()
	if err != nil {
		t.Fatalf("signalstats of %s: %v", path, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "lavfi.signalstats.YMIN="); ok {
			lo, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(line, "lavfi.signalstats.YMAX="); ok {
			hi, _ = strconv.Atoi(v)
		}
	}
	return lo, hi
}

// Peak is the largest sample magnitude of s16le audio.
func Peak(audio []byte) int {
	p := 0
	for i := 0; i+1 < len(audio); i += 2 {
		v := int(int16(uint16(audio[i]) | uint16(audio[i+1])<<8))
		p = max(p, v, -v)
	}
	return p
}

// AssertSameAudio compares two s16le streams sample for sample, naming the
// first difference and where it is (a chunk boundary shows as its frame).
func AssertSameAudio(t testing.TB, got, want []byte) {
	t.Helper()
	if Peak(want) < 1000 {
		t.Fatalf("the reference audio is (nearly) silent, peak %d: nothing to compare", Peak(want))
	}
	if len(got) != len(want) {
		t.Fatalf("audio has %d samples, want %d", len(got)/4, len(want)/4)
	}
	for i := range got {
		if got[i] != want[i] {
			s := i / 4
			t.Fatalf("audio differs from sample %d (%.4f s, frame %.2f at 30 fps)", s, float64(s)/48000, float64(s)*30/48000)
		}
	}
}
