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
	terminal  bool
	w         io.Writer
	lastState job.State
	lastLine  time.Time
	lastDone  int
	logs      *logWriter
	// The bar counts this run's frames: a resumed job's earlier frames
	// (base, known at the first update) would make the rate and the time
	// left a lie.
	start   time.Time
	base    int
	started bool
}

// newProgress shows progress on w; while a bar is shown, the lines logs
// writes go above it instead of into it.
func newProgress(w io.Writer, totalFrames int, logs *logWriter) *progress {
	p := &progress{w: w, logs: logs, start: time.Now()}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		p.terminal = true
		if logs != nil {
			logs.attach(p)
		}
	}
	return p
}

// newBar makes the bar for the frames left when this run began. The rate
// and the time left are the description's, worked out from this run's
// frames only: the library's would say "0s" before the first chunk ends.
func (p *progress) newBar(frames int) {
	p.bar = progressbar.NewOptions(max(frames, 1),
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(p.describe(0)),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionFullWidth(),
	)
}

// describe is the bar's description: what is happening, this run's rate
// and the time left, once there is a rate to speak of.
func (p *progress) describe(done int) string {
	d := "rendering"
	if p.base > 0 {
		d = fmt.Sprintf("resuming (%d frames done before)", p.base)
	}
	elapsed := time.Since(p.start)
	if done == 0 || elapsed <= 0 {
		return d + ", first chunks in flight"
	}
	rate := float64(done) / elapsed.Seconds()
	left := time.Duration(float64(p.barMax()-done) / rate * float64(time.Second))
	return fmt.Sprintf("%s, %.1f frames/s, about %s left", d, rate, left.Round(time.Second))
}

func (p *progress) barMax() int {
	if p.bar == nil {
		return 0
	}
	return p.bar.GetMax()
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
	if !p.started {
		p.started, p.base = true, st.FramesDone
		if p.terminal {
			p.newBar(st.TotalFrames - p.base)
		}
	}
	if p.bar != nil {
		done := max(st.FramesDone-p.base, 0)
		if st.State == job.StateStitching {
			p.bar.Describe("stitching")
		} else {
			p.bar.Describe(p.describe(done))
		}
		_ = p.bar.Set(done)
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

// finish ends the bar: cleared when the job got to its end; left where it
// stopped, its line ended, when the run was interrupted (Ctrl-C), so what
// follows starts on a line of its own.
func (p *progress) finish(interrupted bool) {
	if p.logs != nil {
		p.logs.detach(p)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil {
		return
	}
	if interrupted {
		_ = p.bar.Exit()
		fmt.Fprintln(p.w)
		return
	}
	_ = p.bar.Finish()
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
