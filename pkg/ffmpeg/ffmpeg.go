// Package ffmpeg wraps the two ffmpeg operations the pipeline relies on:
// counting a file's video frames (ffprobe) and joining segments without
// re-encoding (the concat demuxer with stream copy). Both run through execx,
// as argv, with only ffmpeg and ffprobe allowed.
package ffmpeg

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/helios-project/infrastructure/pkg/execx"
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
	if f, ok := job.FormatOf(strings.ToLower(output)); ok && f.Faststart {
		argv = append(argv, "-movflags", "+faststart")
	}
	return append(argv, "-y", output)
}
