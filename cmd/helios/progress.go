package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"

	"github.com/helios-project/infrastructure/pkg/cost"
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
	logs      *logWriter
}

// newProgress shows progress on w; while a bar is shown, the lines logs
// writes go above it instead of into it.
func newProgress(w io.Writer, totalFrames int, logs *logWriter) *progress {
	p := &progress{w: w, logs: logs}
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
		if logs != nil {
			logs.attach(p)
		}
	}
	return p
}

// above writes b (whole lines) above the bar: clear the bar's line, write,
// draw the bar again below.
func (p *progress) above(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil {
		return p.w.Write(b)
	}
	_ = p.bar.Clear()
	n, err := p.w.Write(b)
	_ = p.bar.RenderBlank()
	return n, err
}

// println writes a message line, above the bar if one is shown.
func (p *progress) println(msg string) { _, _ = p.above([]byte(msg + "\n")) }

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
	fmt.Fprintf(p.w, "%s: %d/%d chunks, %d/%d frames", st.State, st.ChunksDone, st.ChunksTotal, st.FramesDone, st.TotalFrames)
	if st.Cost.Platform != "" && st.Cost.Platform != cost.Local {
		fmt.Fprintf(p.w, ", $%.4f so far", st.Cost.USD)
	}
	fmt.Fprintln(p.w)
}

func (p *progress) finish() {
	if p.logs != nil {
		p.logs.detach(p)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// logWriter is where the CLI's log lines go: its stderr, or above the
// progress bar while one is shown, so a line never lands inside the bar.
type logWriter struct {
	mu  sync.Mutex
	w   io.Writer
	bar *progress
}

func (l *logWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	bar := l.bar
	l.mu.Unlock()
	if bar != nil {
		return bar.above(b)
	}
	return l.w.Write(b)
}

func (l *logWriter) attach(p *progress) { l.mu.Lock(); l.bar = p; l.mu.Unlock() }

func (l *logWriter) detach(p *progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bar == p {
		l.bar = nil
	}
}
