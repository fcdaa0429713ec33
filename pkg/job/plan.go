package job

import "fmt"

// Chunk is one frame range [Start, Start+Count) of a job, rendered by one
// worker invocation. Index orders the chunks by frame.
type Chunk struct {
	Index int `json:"index"`
	Start int `json:"start"`
	Count int `json:"count"`
}

// End is one past the last frame.
func (c Chunk) End() int { return c.Start + c.Count }

// Plan splits a valid, normalized spec into chunks that cover
// [0, totalFrames) exactly once, in frame order.
func (s *Spec) Plan() []Chunk {
	if s.IsHeliosForm() {
		chunks := make([]Chunk, len(s.Chunks))
		for i, c := range s.Chunks {
			chunks[i] = Chunk{Index: i, Start: c.StartFrame, Count: c.FrameCount}
		}
		return chunks
	}
	total := s.Metadata.TotalFrames
	if s.ChunkCount > 0 {
		// Sizes differ by at most one frame; the first total%n chunks are longer.
		n := s.ChunkCount
		chunks := make([]Chunk, n)
		base, extra, start := total/n, total%n, 0
		for i := range chunks {
			count := base
			if i < extra {
				count++
			}
			chunks[i] = Chunk{Index: i, Start: start, Count: count}
			start += count
		}
		return chunks
	}
	size := s.FramesPerChunk
	chunks := make([]Chunk, 0, ceilDiv(total, size))
	for start := 0; start < total; start += size {
		chunks = append(chunks, Chunk{Index: len(chunks), Start: start, Count: min(size, total-start)})
	}
	return chunks
}

// WorkerJob builds the payload for one attempt at one chunk in one run. The
// command is complete: every placeholder is filled, {output} with the
// segment's path relative to the worker's work dir.
func (s *Spec) WorkerJob(c Chunk, run, attempt int) WorkerJob {
	var program string
	var args []string
	output := fmt.Sprintf("chunk-%06d.%s", c.Index, s.SegmentFormat)
	if s.IsHeliosForm() {
		hc := s.Chunks[c.Index]
		argv, _ := SplitCommand(hc.Command) // validated
		program, args, output = argv[0], argv[1:], hc.OutputFile
	} else {
		program, args = s.Command, s.Args
	}
	vars := Vars{JobID: s.ID, Chunk: c, Output: output, FPS: s.Metadata.FPS, Width: s.Metadata.Width, Height: s.Metadata.Height}
	return WorkerJob{
		Timeline:    s.timeline(),
		JobID:       s.ID,
		Chunk:       c,
		Attempt:     attempt,
		Command:     program,
		Args:        vars.Expand(args),
		Env:         s.Env,
		OutputFile:  output,
		Assets:      s.Assets,
		Timeout:     s.ChunkTimeout,
		Run:         run,
		KeepSegment: s.KeepChunks,
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
