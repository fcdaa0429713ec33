package fmp4_test

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/fmp4"
	"github.com/helios-project/infrastructure/pkg/framerate"
)

// TestPlaceCorrupt changes each byte of a fragmented chunk in turn: Place
// must refuse or place it, never panic nor allocate what a corrupt count
// claims (mp4ff would, and the process would die of it).
func TestPlaceCorrupt(t *testing.T) {
	testkit.RequireFFmpeg(t)
	chunks := renderChunks(t, t.TempDir(), x264BFrames(), "24", []int{6})
	data, err := os.ReadFile(chunks[0].fragmented)
	if err != nil {
		t.Fatal(err)
	}
	// FMP4_CORRUPT=v1,v2 (bytes, in decimal) tries other values in turn.
	values := []int{-1, 1} // -1 flips every bit; 1 makes a size field "large"
	if env := os.Getenv("FMP4_CORRUPT"); env != "" {
		values = nil
		for _, f := range bytes.Split([]byte(env), []byte(",")) {
			v, err := strconv.Atoi(string(f))
			if err != nil {
				t.Fatal(err)
			}
			values = append(values, v)
		}
	}
	p := fmp4.Placement{Start: 3, Rate: framerate.Rate{Num: 24, Den: 1}, Sequence: 1, Delay: fmp4.DefaultDelay}
	for _, v := range values {
		refused := 0
		for i := range data {
			corrupt := bytes.Clone(data)
			if v < 0 {
				corrupt[i] ^= 0xff
			} else {
				corrupt[i] = byte(v)
			}
			if _, err := fmp4.Place(io.Discard, bytes.NewReader(corrupt), p); err != nil {
				refused++
			}
		}
		t.Logf("byte value %d: %d of %d corruptions refused", v, refused, len(data))
	}
}
