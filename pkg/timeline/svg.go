// Package timeline draws a job's history (job.History) as an SVG picture:
// one bar per worker invocation on its dispatch lane over time, coloured by
// outcome, the stitch after them, an axis in seconds and a legend. Lanes
// fold together when there are more than fit, so 10,000 chunks stay
// readable.
package timeline

import (
	"bufio"
	"cmp"
	"fmt"
	"html"
	"io"
	"math"
	"slices"

	"github.com/helios-project/infrastructure/pkg/job"
)

// Colours of the outcomes, and of the stitch.
var colours = map[job.Outcome]string{
	job.OutcomeDone:       "#2a9d8f",
	job.OutcomeRetried:    "#f4a261",
	job.OutcomeThrottled:  "#8d99ae",
	job.OutcomeFailed:     "#e63946",
	job.OutcomeAbandoned:  "#c9ada7",
	job.OutcomeSuperseded: "#b8c4d6",
}

const (
	stitchColour = "#264653"
	hedgeStroke  = "#111111" // a hedge's bar is outlined
	width        = 1200
	left, right  = 70, 20
	top          = 56
	maxRows      = 150 // lanes beyond this fold together
	plotHeight   = 600
)

// Options label the picture.
type Options struct {
	Title string
}

// Render writes h as an SVG document.
func Render(w io.Writer, h job.History, opts Options) error {
	bw := bufio.NewWriter(w)
	l := newLayout(h)
	l.header(bw, h, opts)
	l.attempts(bw, h.Attempts)
	l.stitches(bw, h.Stitches)
	l.runs(bw, h.Runs)
	l.rowLabels(bw)
	l.axis(bw)
	l.legend(bw)
	fmt.Fprintln(bw, `</svg>`)
	return bw.Flush()
}

// layout is where things go in the picture of a history: its time span,
// its lanes folded into rows, and the sizes that follow from them.
type layout struct {
	t0     int64   // the first start, at the plot's left edge
	secs   float64 // the span, in seconds
	lanes  int
	fold   int     // lanes per row
	rows   int     // of lanes; the stitch has one more below them
	rowH   float64 // a row's height
	plotH  float64 // the rows' and the stitch's
	plotW  float64
	height int // of the picture
}

func newLayout(h job.History) *layout {
	t0, t1 := span(h)
	l := &layout{t0: t0, secs: math.Max(float64(t1-t0)/1000, 0.001)}
	for _, a := range h.Attempts {
		l.lanes = max(l.lanes, a.Lane+1)
	}
	l.fold = max(1, (l.lanes+maxRows-1)/maxRows)
	l.rows = max(1, (l.lanes+l.fold-1)/l.fold)
	l.rowH = math.Min(18, math.Max(2, float64(plotHeight)/float64(l.rows+1)))
	l.plotH = l.rowH * float64(l.rows+1) // one more row for the stitch
	l.height = int(top + l.plotH + 90)
	l.plotW = float64(width - left - right)
	return l
}

// x is where time ms is on the plot.
func (l *layout) x(ms int64) float64 { return left + float64(ms-l.t0)/1000/l.secs*l.plotW }

// stitchY is the top of the stitch's row, below the lanes.
func (l *layout) stitchY() float64 { return top + float64(l.rows)*l.rowH }

// axisY is the height of the time axis, below the plot.
func (l *layout) axisY() float64 { return top + l.plotH + 8 }

// header opens the document: a white page, the title, and a line that
// sums the history up (attempts, lanes and their folding, runs, seconds).
func (l *layout) header(w io.Writer, h job.History, opts Options) {
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, l.height, width, l.height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(w, `<text x="%d" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(opts.Title))
	lanesLabel := fmt.Sprintf("%d lanes", l.lanes)
	if l.fold > 1 {
		lanesLabel = fmt.Sprintf("%d lanes, %d to a row", l.lanes, l.fold)
	}
	runsLabel := ""
	if len(h.Runs) > 1 {
		runsLabel = fmt.Sprintf(", %d runs", len(h.Runs))
	}
	fmt.Fprintf(w, `<text x="%d" y="40" fill="#555">%s, %s%s, %.1f s</text>`+"\n", left, Count(len(h.Attempts), "attempt", "attempts"), lanesLabel, runsLabel, l.secs)
}

// attempts draws a bar per worker invocation on its lane's row, coloured
// by outcome, a hedge's outlined. Done ones are drawn first, so in a
// folded row a retry or failure is drawn over them, not hidden; then in
// time order.
func (l *layout) attempts(w io.Writer, attempts []job.Attempt) {
	attempts = slices.Clone(attempts)
	slices.SortFunc(attempts, func(a, b job.Attempt) int {
		if da, db := a.Outcome == job.OutcomeDone, b.Outcome == job.OutcomeDone; da != db {
			if da {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Start, b.Start)
	})
	for _, a := range attempts {
		row := a.Lane / l.fold
		y := top + float64(row)*l.rowH
		class, stroke, what := "attempt", `stroke="#fff" stroke-width="0.5"`, "attempt"
		if a.Hedge {
			class, stroke, what = "attempt hedge", `stroke="`+hedgeStroke+`" stroke-width="1.5"`, "hedge"
		}
		fmt.Fprintf(w, `<rect class="%s %s" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s" %s><title>chunk %d, %s %d, lane %d: %.2f s, %s</title></rect>`+"\n",
			class, html.EscapeString(string(a.Outcome)), l.x(a.Start), y+l.rowH*0.1, math.Max(l.x(a.End)-l.x(a.Start), 1), l.rowH*0.8, colour(a.Outcome), stroke,
			a.Chunk, what, a.Attempt, a.Lane, float64(a.End-a.Start)/1000, html.EscapeString(string(a.Outcome)))
	}
}

// stitches draws a bar per stitch on the row below the lanes.
func (l *layout) stitches(w io.Writer, stitches []job.Span) {
	stitchY := l.stitchY()
	for _, s := range stitches {
		fmt.Fprintf(w, `<rect class="stitch" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>stitch: %.2f s</title></rect>`+"\n",
			l.x(s.Start), stitchY+l.rowH*0.1, math.Max(l.x(s.End)-l.x(s.Start), 1), l.rowH*0.8, stitchColour, float64(s.End-s.Start)/1000)
	}
}

// runs marks where each run after the first began (a resume after Ctrl-C,
// a continuation in a new invocation): the gap before it is no work.
func (l *layout) runs(w io.Writer, runs []job.Span) {
	for i, run := range runs {
		if i == 0 {
			continue
		}
		fmt.Fprintf(w, `<g class="run"><line x1="%.2f" y1="%.2f" x2="%.2f" y2="%.2f" stroke="#333" stroke-dasharray="4 3"/><text x="%.2f" y="%.2f" fill="#333">run %d</text></g>`+"\n",
			l.x(run.Start), float64(top)-4, l.x(run.Start), float64(top)+l.plotH, l.x(run.Start)+3, float64(top)-6, i+1)
	}
}

// rowLabels names the lanes' rows and the stitch's, left of the plot.
func (l *layout) rowLabels(w io.Writer) {
	fmt.Fprintf(w, `<text x="%d" y="%.2f" text-anchor="end" fill="#555">lanes</text>`+"\n", left-6, top+l.rowH)
	fmt.Fprintf(w, `<text x="%d" y="%.2f" text-anchor="end" fill="#555">stitch</text>`+"\n", left-6, l.stitchY()+l.rowH*0.8)
}

// axis draws the time axis, in seconds from the first invocation, with a
// tick at every round step.
func (l *layout) axis(w io.Writer) {
	axisY := l.axisY()
	fmt.Fprintf(w, `<line x1="%d" y1="%.2f" x2="%d" y2="%.2f" stroke="#333"/>`+"\n", left, axisY, width-right, axisY)
	step := niceStep(l.secs / 10)
	for s := 0.0; s <= l.secs+1e-9; s += step {
		px := left + s/l.secs*l.plotW
		fmt.Fprintf(w, `<line x1="%.2f" y1="%.2f" x2="%.2f" y2="%.2f" stroke="#333"/><text class="tick" x="%.2f" y="%.2f" text-anchor="middle">%s s</text>`+"\n",
			px, axisY, px, axisY+5, px, axisY+18, trim(s))
	}
}

// legend shows, below the axis, the colour of each outcome, a hedge's
// outline and the stitch's colour.
func (l *layout) legend(w io.Writer) {
	lx, ly := float64(left), l.axisY()+44
	for _, o := range append(job.Outcomes, "hedge", "stitch") {
		c, label, stroke := colour(o), string(o), ""
		switch o {
		case "hedge":
			c, stroke = "#ffffff", ` stroke="`+hedgeStroke+`" stroke-width="1.5"`
		case "stitch":
			c = stitchColour
		}
		fmt.Fprintf(w, `<g class="legend"><rect x="%.0f" y="%.0f" width="14" height="14" fill="%s"%s/><text x="%.0f" y="%.0f">%s</text></g>`+"\n", lx, ly-11, c, stroke, lx+19, ly, label)
		lx += 125
	}
}

func colour(o job.Outcome) string {
	if c, ok := colours[o]; ok {
		return c
	}
	return "#999999"
}

// span is the first start and the last end in h.
func span(h job.History) (int64, int64) {
	var t0, t1 int64 = math.MaxInt64, math.MinInt64
	for _, a := range h.Attempts {
		t0, t1 = min(t0, a.Start), max(t1, a.End)
	}
	for _, s := range h.Stitches {
		t0, t1 = min(t0, s.Start), max(t1, s.End)
	}
	for i, r := range h.Runs {
		if i > 0 { // a later run's start is marked; the first one's is not
			t0, t1 = min(t0, r.Start), max(t1, r.Start)
		}
	}
	if t0 > t1 {
		return 0, 1
	}
	return t0, max(t1, t0+1)
}

// niceStep rounds d up to 1, 2 or 5 times a power of ten.
func niceStep(d float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(d)))
	for _, m := range []float64{1, 2, 5, 10} {
		if d <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func trim(s float64) string {
	if s == math.Trunc(s) {
		return fmt.Sprintf("%.0f", s)
	}
	return fmt.Sprintf("%g", math.Round(s*1000)/1000)
}

// Count is n and the word for it: "1 stitch", "2 stitches".
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
