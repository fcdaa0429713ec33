package job

import (
	"fmt"
	"strings"

	"github.com/google/shlex"

	"github.com/helios-project/infrastructure/pkg/ffargs"
)

// SplitCommand splits a Helios command string into argv with shell-word rules
// (quotes and backslashes honoured). Nothing is expanded and no shell runs it.
func SplitCommand(command string) ([]string, error) {
	argv, err := shlex.Split(command)
	if err != nil {
		return nil, fmt.Errorf("cannot split into words: %w", err)
	}
	return argv, nil
}

// commandSize checks one command's arguments for NUL bytes, and the total
// size against MaxCommandBytes.
func (v *validator) commandSize(path string, args []string, env map[string]string) {
	n := 0
	for i, a := range args {
		n += len(a) + 1
		if strings.ContainsRune(a, 0) {
			v.addf(fmt.Sprintf("%s[%d]", path, i), "must not contain a NUL byte")
		}
	}
	for k, val := range env {
		n += len(k) + len(val) + 2
	}
	if n > MaxCommandBytes {
		v.addf(path, "and env together are %d bytes; at most %d are allowed", n, MaxCommandBytes)
	}
}

// ffmpegArgs checks the arguments of an ffmpeg command against the
// allowlists (pkg/ffargs), as the first chunk's placeholders make them:
// placeholders stand for numbers and the chunk's file, which do not
// change how ffmpeg reads the line. Indexes in the problems are shifted by
// offset (1 where path's list starts with the program).
func (v *validator) ffmpegArgs(path, program string, args []string, offset int) {
	if program != "ffmpeg" {
		return
	}
	vars := Vars{JobID: "job", Chunk: Chunk{Count: 1}, Output: "chunk.mp4", FPS: 30, Width: 16, Height: 16}
	if s := v.spec; s != nil {
		vars.JobID, vars.FPS, vars.Width, vars.Height = s.ID, s.Metadata.FPS, s.Metadata.Width, s.Metadata.Height
		if f, ok := FormatOf("x." + s.SegmentFormat); ok {
			vars.Output = "chunk." + f.Ext
		}
	}
	for _, p := range ffargs.Check(vars.Expand(args), v.ffmpeg) {
		v.addf(fmt.Sprintf("%s[%d]", path, p.Index+offset), "%s", p.Message)
	}
}
