package fmp4

import (
	"fmt"
	"strconv"
)

// AudioCut is where and how FragmentArgs writes a chunk's audio: raw PCM,
// signed 16-bit little-endian, interleaved, at SampleRate with Channels,
// exactly Samples long (padded with silence or cut at the end), with no
// gap or priming at its start.
type AudioCut struct {
	Path       string
	SampleRate int
	Channels   int
	Samples    int64
}

// FragmentArgs is the argv (ffmpeg first) that stream-copies the first
// video stream of the MP4 or MOV file input into a fragmented MP4 output
// that Place accepts, and, with audio, decodes its first audio stream to
// the PCM audio describes, in the same pass:
//
//   - frag_keyframe cuts a fragment at every keyframe: one moof+mdat per
//     GOP, so neither ffmpeg nor Place holds more than a GOP in memory;
//   - empty_moov writes the init first and indexes no sample in it;
//   - default_base_moof makes sample data offsets relative to their moof,
//     not to the file, so a fragment can move to another file as bytes.
//
// -f mp4 because the output name need not end in .mp4.
func FragmentArgs(input, output string, audio *AudioCut) []string {
	argv := []string{
		"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-i", input, "-map", "0:v:0", "-c", "copy",
		"-movflags", "+frag_keyframe+empty_moov+default_base_moof",
		"-f", "mp4", "-y", output,
	}
	if audio == nil {
		return argv
	}
	n := strconv.FormatInt(audio.Samples, 10)
	// aresample puts the first sample at time 0, the chunk's start: audio
	// that starts late is preceded by silence, audio from before it (an
	// encoder's priming, not trimmed) is dropped. apad then atrim make it
	// exactly n samples long.
	filter := fmt.Sprintf("aresample=%d:async=1:first_pts=0,apad=whole_len=%s,atrim=end_sample=%s", audio.SampleRate, n, n)
	return append(argv,
		"-map", "0:a:0", "-af", filter, "-ac", strconv.Itoa(audio.Channels),
		"-c:a", "pcm_s16le", "-f", "s16le", "-y", audio.Path)
}
