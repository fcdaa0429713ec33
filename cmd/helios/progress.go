package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"

	"github.com/helios-project/infrastructure/pkg/job"
)

// progress shows a job's progress: a bar on a terminal, otherwise a plain
// line per change of state or at most one a second, for logs and CI.
type progress struct {
	mu        sync.Mutex
	bar       *progressbar.ProgressBar
	w         io.Writer
	lastState job.State
	lastLine  time.Time
	lastDone  int
}

func newProgress(w io.Writer, totalFrames int) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		p.bar = progressbar.NewOptions(totalFrames,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("rendering"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("frames"),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionFullWidth(),
		)
	}
	return p
}

func (p *progress) update(st job.Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		if st.State == job.StateStitching {
			p.bar.Describe("stitching")
		}
		_ = p.bar.Set(st.FramesDone)
		return
	}
	changed := st.State != p.lastState
	if !changed && (st.ChunksDone == p.lastDone || time.Since(p.lastLine) < time.Second) {
		return
	}
	p.lastState, p.lastDone, p.lastLine = st.State, st.ChunksDone, time.Now()
	fmt.Fprintf(p.w, "%s: %d/%d chunks, %d/%d frames\n", st.State, st.ChunksDone, st.ChunksTotal, st.FramesDone, st.TotalFrames)
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
