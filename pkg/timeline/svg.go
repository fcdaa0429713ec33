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
	t0, t1 := span(h)
	secs := math.Max(float64(t1-t0)/1000, 0.001)
	lanes := 0
	for _, a := range h.Attempts {
		lanes = max(lanes, a.Lane+1)
	}
	fold := max(1, (lanes+maxRows-1)/maxRows) // lanes per row
	rows := max(1, (lanes+fold-1)/fold)
	rowH := math.Min(18, math.Max(2, float64(plotHeight)/float64(rows+1)))
	plotH := rowH * float64(rows+1) // one more row for the stitch
	height := int(top + plotH + 90)
	plotW := float64(width - left - right)
	x := func(ms int64) float64 { return left + float64(ms-t0)/1000/secs*plotW }

	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(bw, `<text x="%d" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(opts.Title))
	lanesLabel := fmt.Sprintf("%d lanes", lanes)
	if fold > 1 {
		lanesLabel = fmt.Sprintf("%d lanes, %d to a row", lanes, fold)
	}
	runsLabel := ""
	if len(h.Runs) > 1 {
		runsLabel = fmt.Sprintf(", %d runs", len(h.Runs))
	}
	fmt.Fprintf(bw, `<text x="%d" y="40" fill="#555">%s, %s%s, %.1f s</text>`+"\n", left, Count(len(h.Attempts), "attempt", "attempts"), lanesLabel, runsLabel, secs)

	// Bars: done ones first, so in a folded row a retry or failure is drawn
	// over them, not hidden; then in time order.
	attempts := slices.Clone(h.Attempts)
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
		row := a.Lane / fold
		y := top + float64(row)*rowH
		class, stroke, what := "attempt", `stroke="#fff" stroke-width="0.5"`, "attempt"
		if a.Hedge {
			class, stroke, what = "attempt hedge", `stroke="`+hedgeStroke+`" stroke-width="1.5"`, "hedge"
		}
		fmt.Fprintf(bw, `<rect class="%s %s" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s" %s><title>chunk %d, %s %d, lane %d: %.2f s, %s</title></rect>`+"\n",
			class, html.EscapeString(string(a.Outcome)), x(a.Start), y+rowH*0.1, math.Max(x(a.End)-x(a.Start), 1), rowH*0.8, colour(a.Outcome), stroke,
			a.Chunk, what, a.Attempt, a.Lane, float64(a.End-a.Start)/1000, html.EscapeString(string(a.Outcome)))
	}
	stitchY := top + float64(rows)*rowH
	for _, s := range h.Stitches {
		fmt.Fprintf(bw, `<rect class="stitch" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>stitch: %.2f s</title></rect>`+"\n",
			x(s.Start), stitchY+rowH*0.1, math.Max(x(s.End)-x(s.Start), 1), rowH*0.8, stitchColour, float64(s.End-s.Start)/1000)
	}
	// Where each run after the first began (a resume after Ctrl-C, a
	// continuation in a new invocation): the gap before it is no work.
	for i, run := range h.Runs {
		if i == 0 {
			continue
		}
		fmt.Fprintf(bw, `<g class="run"><line x1="%.2f" y1="%.2f" x2="%.2f" y2="%.2f" stroke="#333" stroke-dasharray="4 3"/><text x="%.2f" y="%.2f" fill="#333">run %d</text></g>`+"\n",
			x(run.Start), float64(top)-4, x(run.Start), float64(top)+plotH, x(run.Start)+3, float64(top)-6, i+1)
	}
	fmt.Fprintf(bw, `<text x="%d" y="%.2f" text-anchor="end" fill="#555">lanes</text>`+"\n", left-6, top+rowH)
	fmt.Fprintf(bw, `<text x="%d" y="%.2f" text-anchor="end" fill="#555">stitch</text>`+"\n", left-6, stitchY+rowH*0.8)

	// The axis, in seconds from the first invocation.
	axisY := top + plotH + 8
	fmt.Fprintf(bw, `<line x1="%d" y1="%.2f" x2="%d" y2="%.2f" stroke="#333"/>`+"\n", left, axisY, width-right, axisY)
	step := niceStep(secs / 10)
	for s := 0.0; s <= secs+1e-9; s += step {
		px := left + s/secs*plotW
		fmt.Fprintf(bw, `<line x1="%.2f" y1="%.2f" x2="%.2f" y2="%.2f" stroke="#333"/><text class="tick" x="%.2f" y="%.2f" text-anchor="middle">%s s</text>`+"\n",
			px, axisY, px, axisY+5, px, axisY+18, trim(s))
	}

	// The legend.
	lx, ly := float64(left), axisY+44
	for _, o := range append(job.Outcomes, "hedge", "stitch") {
		c, label, stroke := colour(o), string(o), ""
		switch o {
		case "hedge":
			c, stroke = "#ffffff", ` stroke="`+hedgeStroke+`" stroke-width="1.5"`
		case "stitch":
			c = stitchColour
		}
		fmt.Fprintf(bw, `<g class="legend"><rect x="%.0f" y="%.0f" width="14" height="14" fill="%s"%s/><text x="%.0f" y="%.0f">%s</text></g>`+"\n", lx, ly-11, c, stroke, lx+19, ly, label)
		lx += 125
	}
	fmt.Fprintln(bw, `</svg>`)
	return bw.Flush()
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
