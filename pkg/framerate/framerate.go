// Package framerate holds exact frame rates: frame times, and the audio
// samples on which frames start, computed in integers so that chunks land
// on the same ticks and samples as a single pass would.
package framerate

import (
	"fmt"
	"math"
	"strconv"
)

// Rate is a frame rate of Num/Den frames per second, exact: frame times are
// computed in integers so that chunks land on the same ticks as a single
// pass would.
type Rate struct {
	Num, Den uint32
}

// ntscTolerance accepts an NTSC rate written to two decimals (23.98, 29.97,
// 59.94) as well as to full float precision (30000/1001 = 29.97002997...).
const ntscTolerance = 0.005

// Of returns the exact rate a job's float fps stands for: a whole
// number, or one of the NTSC rates 24000/1001, 30000/1001 and 60000/1001.
// Any other fps is refused, since its frame times are not exact.
func Of(fps float64) (Rate, error) {
	if whole := math.Round(fps); whole >= 1 && whole <= math.MaxUint32 && math.Abs(fps-whole) < 1e-9 {
		return Rate{Num: uint32(whole), Den: 1}, nil
	}
	for _, r := range [...]Rate{{24000, 1001}, {30000, 1001}, {60000, 1001}} {
		if math.Abs(fps-r.FPS()) < ntscTolerance {
			return r, nil
		}
	}
	return Rate{}, fmt.Errorf("fps %v is neither a whole number nor an NTSC rate (24000/1001, 30000/1001, 60000/1001)", fps)
}

// FPS is the rate as a float, for messages and comparisons.
func (r Rate) FPS() float64 { return float64(r.Num) / float64(r.Den) }

// String writes the rate as ffmpeg does: "25" or "30000/1001".
func (r Rate) String() string {
	if r.Den == 1 {
		return strconv.FormatUint(uint64(r.Num), 10)
	}
	return fmt.Sprintf("%d/%d", r.Num, r.Den)
}

// FrameTicks is the duration of one frame in units of timescale; an error
// if it is not a whole number of ticks (a timescale this rate cannot use).
func (r Rate) FrameTicks(timescale uint32) (uint32, error) {
	if r.Num == 0 || r.Den == 0 {
		return 0, fmt.Errorf("frame rate %d/%d: both terms must be positive", r.Num, r.Den)
	}
	ticks := uint64(timescale) * uint64(r.Den)
	if ticks%uint64(r.Num) != 0 || ticks == 0 {
		return 0, fmt.Errorf("a frame at %s fps is %d×%d/%d ticks of timescale %d, not a whole number",
			r, timescale, r.Den, r.Num, timescale)
	}
	return uint32(ticks / uint64(r.Num)), nil
}

// SampleAt is the audio sample, at sampleRate, on which frame starts:
// frame × sampleRate / fps, rounded to the nearest sample (halves up),
// in integers. A chunk of frames [a, b) has the samples [SampleAt(a),
// SampleAt(b)): the chunks' shares add up to the job's, rounded once.
func (r Rate) SampleAt(frame int64, sampleRate int) int64 {
	num := frame * int64(sampleRate) * int64(r.Den)
	return (2*num + int64(r.Num)) / (2 * int64(r.Num))
}

// Samples is the number of audio samples, at sampleRate, of the frames
// [start, end): SampleAt(end) - SampleAt(start).
func (r Rate) Samples(start, end, sampleRate int) int64 {
	return r.SampleAt(int64(end), sampleRate) - r.SampleAt(int64(start), sampleRate)
}
