// Package ffmpeg wraps the two ffmpeg operations the pipeline relies on:
// counting a file's video frames (ffprobe) and joining segments without
// re-encoding (the concat demuxer with stream copy). Both run through execx,
// as argv, with only ffmpeg and ffprobe allowed.
package ffmpeg

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/fmp4"
	"github.com/helios-project/infrastructure/pkg/job"
)

// Tool runs ffmpeg and ffprobe found on PATH (on Lambda the layer puts them
// in /opt/bin).
type Tool struct {
	runner execx.Runner
}

// New returns a Tool.
func New() *Tool {
	return &Tool{runner: execx.Runner{Allowed: job.Allowlist{"ffmpeg", "ffprobe"}}}
}

// CountFrames returns the number of video frames of the first video stream,
// counted from packets (no decoding: fast, and exact for video).
func (t *Tool) CountFrames(ctx context.Context, path string) (int, error) {
	res, err := t.runner.Run(ctx, execx.Cmd{Argv: []string{
		"ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "json", path,
	}})
	if err != nil {
		return 0, fmt.Errorf("count frames of %s: %w", filepath.Base(path), err)
	}
	// JSON, not csv: in MPEG-TS ffprobe lists the stream under its program
	// too, and csv prints the count twice with nothing to tell them apart.
	var probe struct {
		Streams []struct {
			Packets string `json:"nb_read_packets"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &probe); err != nil || len(probe.Streams) == 0 {
		return 0, fmt.Errorf("count frames of %s: no video stream (ffprobe printed %q)", filepath.Base(path), strings.TrimSpace(res.Stdout))
	}
	n, err := strconv.Atoi(probe.Streams[0].Packets)
	if err != nil {
		return 0, fmt.Errorf("count frames of %s: ffprobe counted %q packets", filepath.Base(path), probe.Streams[0].Packets)
	}
	return n, nil
}

// Concat joins inputs, in order, into output without re-encoding. The inputs
// must sit in dir and have names of letters, digits, '.', '_' and '-', so the
// concat demuxer's safe mode can stay on.
func (t *Tool) Concat(ctx context.Context, dir string, inputs []string, output string) error {
	var list strings.Builder
	for _, in := range inputs {
		fmt.Fprintf(&list, "file '%s'\n", in)
	}
	listPath := filepath.Join(dir, "concat.txt")
	if err := os.WriteFile(listPath, []byte(list.String()), 0o600); err != nil {
		return fmt.Errorf("write concat list: %w", err)
	}
	if _, err := t.runner.Run(ctx, execx.Cmd{Argv: concatArgs(output), Dir: dir}); err != nil {
		return fmt.Errorf("concat %d segments: %w", len(inputs), err)
	}
	return nil
}

// concatArgs is the command that joins the files listed in concat.txt into
// output by stream copy.
func concatArgs(output string) []string {
	argv := []string{"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "concat", "-i", "concat.txt", "-map", "0", "-c", "copy"}
	// Any case: ffmpeg picks the muxer from the extension in any case too.
	if f, ok := job.FormatOf(strings.ToLower(output)); ok && f.MP4 {
		argv = append(argv, "-movflags", "+faststart")
	}
	return append(argv, "-y", output)
}

// Fragment stream-copies input's first video stream into the fragmented
// MP4 output and cuts its first audio stream to audio, if not nil
// (fmp4.FragmentArgs): the worker's one extra pass over a chunk.
func (t *Tool) Fragment(ctx context.Context, input, output string, audio *fmp4.AudioCut) error {
	if _, err := t.runner.Run(ctx, execx.Cmd{Argv: fmp4.FragmentArgs(input, output, audio), Dir: filepath.Dir(output)}); err != nil {
		return fmt.Errorf("fragment %s: %w", filepath.Base(input), err)
	}
	return nil
}

// PCM is raw audio, signed 16-bit little-endian and interleaved.
type PCM struct {
	Data       io.Reader
	SampleRate int
	Channels   int
	// Codec is what the output carries: "pcm_s16le" (QuickTime only) or
	// "aac".
	Codec string
}

// Remux is one pass of ffmpeg over a fragmented MP4 stream, the video
// stream-copied (never re-encoded), audio encoded from PCM once.
type Remux struct {
	Video io.Reader // fragmented MP4, as the stitcher joins it
	Audio *PCM      // nil: none
	// Format is the output container: mp4, m4v or mov.
	Format string
	// Output receives a fragmented MP4, streamed; or, if OutputFile is
	// set instead, a progressive one is written there with its index in
	// front (faststart, which needs a file to rewrite).
	Output     io.Writer
	OutputFile string
}

// Remux runs r.
func (t *Tool) Remux(ctx context.Context, r Remux) error {
	// -xerror: an input that cannot be read to its end fails the pass,
	// rather than end the output early.
	argv := []string{"ffmpeg", "-hide_banner", "-loglevel", "error", "-xerror", "-f", "mp4", "-i", "pipe:0"}
	var extra []io.Reader
	if r.Audio != nil {
		argv = append(argv, "-f", "s16le", "-ar", strconv.Itoa(r.Audio.SampleRate), "-ac", strconv.Itoa(r.Audio.Channels), "-i", "pipe:3")
		extra = append(extra, r.Audio.Data)
	}
	argv = append(argv, "-map", "0:v:0", "-c:v", "copy")
	if r.Audio != nil {
		argv = append(argv, "-map", "1:a:0", "-c:a", r.Audio.Codec)
	}
	muxer := "mp4" // also for m4v, whose ffmpeg muxer is raw MPEG-4 video
	if r.Format == "mov" {
		muxer = "mov"
	}
	dir := ""
	if r.OutputFile != "" {
		dir = filepath.Dir(r.OutputFile)
		argv = append(argv, "-movflags", "+faststart", "-f", muxer, "-y", r.OutputFile)
	} else {
		// delay_moov: the init is written once the first fragment is
		// known, with edit lists for the video's reordering delay and
		// the audio encoder's priming; without it ffmpeg 5.1 presents
		// the video late by the delay and plays the priming.
		argv = append(argv, "-movflags", "+frag_keyframe+empty_moov+default_base_moof+delay_moov", "-f", muxer, "pipe:1")
	}
	if dir == "" {
		dir = os.TempDir()
	}
	_, err := t.runner.Run(ctx, execx.Cmd{Argv: argv, Dir: dir, Stdin: r.Video, ExtraInputs: extra, Stdout: r.Output})
	if err != nil {
		return fmt.Errorf("remux: %w", err)
	}
	return nil
}
