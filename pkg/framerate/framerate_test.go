package framerate_test

import (
	"math"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/framerate"
)

func TestOf(t *testing.T) {
	tests := []struct {
		fps     float64
		want    framerate.Rate
		wantErr string // "" for success
	}{
		{24, framerate.Rate{Num: 24, Den: 1}, ""},
		{25, framerate.Rate{Num: 25, Den: 1}, ""},
		{60, framerate.Rate{Num: 60, Den: 1}, ""},
		{1, framerate.Rate{Num: 1, Den: 1}, ""},
		{30000.0 / 1001, framerate.Rate{Num: 30000, Den: 1001}, ""},
		{29.97, framerate.Rate{Num: 30000, Den: 1001}, ""},
		{24000.0 / 1001, framerate.Rate{Num: 24000, Den: 1001}, ""},
		{23.976, framerate.Rate{Num: 24000, Den: 1001}, ""},
		{23.98, framerate.Rate{Num: 24000, Den: 1001}, ""},
		{59.94, framerate.Rate{Num: 60000, Den: 1001}, ""},
		{60000.0 / 1001, framerate.Rate{Num: 60000, Den: 1001}, ""},
		{12.5, framerate.Rate{}, "fps 12.5 is neither a whole number nor an NTSC rate"},
		{29.9, framerate.Rate{}, "fps 29.9 is neither"},
		{0.5, framerate.Rate{}, "fps 0.5 is neither"},
		{0, framerate.Rate{}, "fps 0 is neither"},
		{-24, framerate.Rate{}, "fps -24 is neither"},
		{math.NaN(), framerate.Rate{}, "fps NaN is neither"},
		{math.Inf(1), framerate.Rate{}, "fps +Inf is neither"},
	}
	for _, tt := range tests {
		got, err := framerate.Of(tt.fps)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("RateOf(%v) = %v, %v; want an error containing %q", tt.fps, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("RateOf(%v) = %v, %v; want %v", tt.fps, got, err, tt.want)
		}
	}
}

func TestFrameTicks(t *testing.T) {
	tests := []struct {
		rate      framerate.Rate
		timescale uint32
		want      uint32
		wantErr   string // "" for success
	}{
		{framerate.Rate{Num: 24, Den: 1}, 12288, 512, ""},
		{framerate.Rate{Num: 25, Den: 1}, 12800, 512, ""},
		{framerate.Rate{Num: 60, Den: 1}, 15360, 256, ""},
		{framerate.Rate{Num: 30000, Den: 1001}, 30000, 1001, ""},
		{framerate.Rate{Num: 24000, Den: 1001}, 24000, 1001, ""},
		// ffmpeg reads a rate of 29.97 as 2997/100: timescale 2997 (×k).
		{framerate.Rate{Num: 30000, Den: 1001}, 2997, 0, "a frame at 30000/1001 fps is 2997×1001/30000 ticks of timescale 2997, not a whole number"},
		{framerate.Rate{Num: 24, Den: 1}, 12800, 0, "a frame at 24 fps is 12800×1/24 ticks"},
		{framerate.Rate{Num: 24, Den: 1}, 0, 0, "of timescale 0"},
		{framerate.Rate{Num: 0, Den: 1}, 12800, 0, "frame rate 0/1: both terms must be positive"},
	}
	for _, tt := range tests {
		got, err := tt.rate.FrameTicks(tt.timescale)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v.FrameTicks(%d) = %d, %v; want an error containing %q", tt.rate, tt.timescale, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%v.FrameTicks(%d) = %d, %v; want %d", tt.rate, tt.timescale, got, err, tt.want)
		}
	}
}

func TestSampleAt(t *testing.T) {
	ntsc := framerate.Rate{Num: 30000, Den: 1001}
	for _, tt := range []struct {
		rate       framerate.Rate
		frame      int64
		sampleRate int
		want       int64
	}{
		{framerate.Rate{Num: 25, Den: 1}, 0, 48000, 0},
		{framerate.Rate{Num: 25, Den: 1}, 7, 48000, 13440},
		{framerate.Rate{Num: 24, Den: 1}, 1, 44100, 1838}, // 1837.5 rounds up
		{ntsc, 1, 48000, 1602},                            // 1601.6
		{ntsc, 2, 48000, 3203},                            // 3203.2
		{ntsc, 300, 48000, 480480},
		{framerate.Rate{Num: 60000, Den: 1001}, 10_000_000, 192000, 32032000000},
	} {
		if got := tt.rate.SampleAt(tt.frame, tt.sampleRate); got != tt.want {
			t.Errorf("%s.SampleAt(%d, %d) = %d, want %d", tt.rate, tt.frame, tt.sampleRate, got, tt.want)
		}
	}
	// Chunks of any sizes share the job's samples exactly: no gap, no
	// overlap, rounded once.
	total := int64(0)
	for start, size := int64(0), int64(7); start < 100; start += size {
		end := min(start+size, 100)
		total += ntsc.SampleAt(end, 48000) - ntsc.SampleAt(start, 48000)
	}
	if want := ntsc.SampleAt(100, 48000); total != want {
		t.Errorf("chunks of 7 frames add up to %d samples, the job has %d", total, want)
	}
}
