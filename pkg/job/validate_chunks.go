package job

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/helios-project/infrastructure/pkg/layout"
)

// How a spec cuts its frames into chunks, and what each chunk runs: the
// native form (one command, cut by size or count) and the Helios form
// (a list of chunks with their own commands).

func (v *validator) native(s *Spec) {
	v.nativeCommand(s)
	v.nativeArgs(s)
	v.chunking(s)
}

// nativeCommand checks the program a native spec runs for every chunk.
func (v *validator) nativeCommand(s *Spec) {
	switch {
	case s.Command == "":
		v.addf("command", "must name the program that renders a chunk (for example \"ffmpeg\")")
	case strings.ContainsAny(s.Command, " \t\n"):
		v.addf("command", "must be a program name only; put its arguments in args; got %q", s.Command)
	default:
		v.program("command", s.Command)
	}
}

// nativeArgs checks the arguments: their number and size, what ffmpeg may
// be told, the placeholders, and that the output is named.
func (v *validator) nativeArgs(s *Spec) {
	if len(s.Args) > MaxArgs {
		v.addf("args", "must have at most %d entries; got %d", MaxArgs, len(s.Args))
	}
	v.commandSize("args", s.Args, s.Env)
	v.ffmpegArgs("args", s.Command, s.Args, 0)
	hasOutput := false
	for i, a := range s.Args {
		names := v.placeholders(fmt.Sprintf("args[%d]", i), a)
		hasOutput = hasOutput || slices.Contains(names, "output")
	}
	if !hasOutput && s.Command != "" {
		v.addf("args", "must contain {output}, the file the command writes the segment to")
	}
}

// chunking checks how a native spec cuts its frames: by size or by count,
// within the limits on chunks.
func (v *validator) chunking(s *Spec) {
	total := s.Metadata.TotalFrames
	switch {
	case s.FramesPerChunk != 0 && s.ChunkCount != 0:
		v.addf("framesPerChunk", "give framesPerChunk or chunkCount, not both")
	case s.FramesPerChunk == 0 && s.ChunkCount == 0:
		v.addf("framesPerChunk", "one of framesPerChunk or chunkCount is required")
	case s.FramesPerChunk < 0 || s.FramesPerChunk > MaxTotalFrames:
		v.addf("framesPerChunk", "must be between 1 and %d; got %d", MaxTotalFrames, s.FramesPerChunk)
	case s.ChunkCount < 0:
		v.addf("chunkCount", "must be at least 1; got %d", s.ChunkCount)
	case total > 0 && s.ChunkCount > total:
		v.addf("chunkCount", "must not exceed metadata.totalFrames (%d); got %d", total, s.ChunkCount)
	case s.ChunkCount > MaxChunks:
		v.addf("chunkCount", "must be at most %d; got %d", MaxChunks, s.ChunkCount)
	case s.FramesPerChunk > 0 && total > 0 && ceilDiv(total, s.FramesPerChunk) > MaxChunks:
		v.addf("framesPerChunk", "makes %d chunks of %d frames; at most %d chunks are allowed", ceilDiv(total, s.FramesPerChunk), s.FramesPerChunk, MaxChunks)
	}
}

func (v *validator) heliosChunks(s *Spec) {
	if len(s.Chunks) > MaxChunks {
		v.addf("chunks", "must have at most %d entries; got %d", MaxChunks, len(s.Chunks))
		return
	}
	ids := map[int]int{}
	outs := chunkOutputs{seen: map[string]int{}, ok: true}
	for i, c := range s.Chunks {
		p := fmt.Sprintf("chunks[%d]", i)
		if j, dup := ids[c.ID]; dup {
			v.addf(p+".id", "duplicates chunks[%d].id (%d)", j, c.ID)
		}
		ids[c.ID] = i
		if c.StartFrame < 0 || c.StartFrame >= MaxTotalFrames {
			v.addf(p+".startFrame", "must be between 0 and %d; got %d", MaxTotalFrames-1, c.StartFrame)
		}
		if c.FrameCount <= 0 || c.FrameCount > MaxTotalFrames {
			v.addf(p+".frameCount", "must be between 1 and %d; got %d", MaxTotalFrames, c.FrameCount)
		}
		v.chunkOutput(&outs, p, i, c.OutputFile)
		v.chunkCommand(p, c.Command, s.Env)
	}
	if outs.ok && outs.ext != "" && outs.ext != s.SegmentFormat {
		v.addf("segmentFormat", "is %q but the chunks write .%s files; leave it out or make it %q", s.SegmentFormat, outs.ext, outs.ext)
	}
	v.coverage(s)
}

// chunkOutputs is what the chunks' output files said so far: which chunk
// named each, their container, and whether all were valid paths.
type chunkOutputs struct {
	seen map[string]int
	ext  string
	ok   bool
}

// chunkOutput checks chunk i's output file: a path in the work dir, named by
// no other chunk, in the container of the others.
func (v *validator) chunkOutput(outs *chunkOutputs, p string, i int, file string) {
	if !v.relativePath(p+".outputFile", file) {
		outs.ok = false
		return
	}
	if j, dup := outs.seen[file]; dup {
		v.addf(p+".outputFile", "duplicates chunks[%d].outputFile (%q)", j, file)
	}
	outs.seen[file] = i
	switch e := strings.TrimPrefix(path.Ext(file), "."); {
	case outs.ext == "":
		outs.ext = e
	case e != outs.ext:
		v.addf(p+".outputFile", "must use the same container as the other chunks (.%s) so they can be joined without re-encoding; got %q", outs.ext, file)
	}
}

// chunkCommand checks a chunk's command line as the worker will run it.
func (v *validator) chunkCommand(p, command string, env map[string]string) {
	argv, err := SplitCommand(command)
	switch {
	case err != nil:
		v.addf(p+".command", "%v", err)
	case len(argv) == 0:
		v.addf(p+".command", "must not be empty")
	default:
		v.program(p+".command", argv[0])
		for _, a := range argv {
			v.placeholders(p+".command", a)
		}
		v.commandSize(p+".command", argv, env)
		v.ffmpegArgs(p+".command", argv[0], argv[1:], 1)
	}
}

// coverage checks that the chunks, in start order (Normalize sorted them),
// cover [0, totalFrames) exactly once.
func (v *validator) coverage(s *Spec) {
	total := s.Metadata.TotalFrames
	next := 0
	for i, c := range s.Chunks {
		if c.FrameCount <= 0 || c.StartFrame < 0 || c.FrameCount > MaxTotalFrames || c.StartFrame >= MaxTotalFrames {
			return // already reported; ranges are meaningless (and could overflow)
		}
		p := fmt.Sprintf("chunks[%d]", i)
		switch {
		case c.StartFrame > next:
			v.addf(p+".startFrame", "leaves a gap: frames [%d, %d) are in no chunk", next, c.StartFrame)
		case c.StartFrame < next:
			v.addf(p+".startFrame", "overlaps the previous chunk: frames [%d, %d) are in two chunks", c.StartFrame, min(next, c.StartFrame+c.FrameCount))
		}
		end := c.StartFrame + c.FrameCount
		if total > 0 && end > total {
			v.addf(p+".frameCount", "runs past metadata.totalFrames (%d): chunk ends at frame %d", total, end)
		}
		next = max(next, end)
	}
	if total > 0 && next < total {
		v.addf("chunks", "leave frames [%d, %d) uncovered; chunks must cover [0, metadata.totalFrames)", next, total)
	}
}

// relativePath checks a path that names a file inside the work dir.
func (v *validator) relativePath(p, file string) bool {
	switch {
	case file == "":
		v.addf(p, "must name the segment file the command writes, relative to the work dir")
	case !layout.IsSafeRelative(file):
		v.addf(p, "must be a relative path inside the work dir, without '..'; got %q", file)
	case !slices.Contains(formatExts(), strings.TrimPrefix(path.Ext(file), ".")):
		v.addf(p, "must end in one of .%s; got %q", strings.Join(formatExts(), ", ."), file)
	default:
		return true
	}
	return false
}
