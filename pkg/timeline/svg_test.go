package timeline_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/timeline"
)

// elements counts an SVG document's elements by class, and fails the test
// if it is not well-formed XML.
func elements(t *testing.T, svg []byte) map[string]int {
	t.Helper()
	counts := map[string]int{}
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return counts
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if a.Name.Local == "class" {
					for _, c := range strings.Fields(a.Value) {
						counts[c]++
					}
				}
			}
		}
	}
}

func TestEveryAttemptIsABar(t *testing.T) {
	var h job.History
	outcomes := job.Outcomes
	perOutcome := map[job.Outcome]int{}
	for i := range 10_000 {
		start := int64(1_800_000_000_000 + (i/1000)*4000 + i%7*13)
		o := outcomes[i%len(outcomes)]
		perOutcome[o]++
		h.Attempts = append(h.Attempts, job.Attempt{Chunk: i, Attempt: 1, Lane: i % 1000, Start: start, End: start + 3000, Outcome: o, Hedge: i%50 == 0})
	}
	h.Stitches = []job.Span{{Start: 1_800_000_040_000, End: 1_800_000_041_500}}
	var buf bytes.Buffer
	if err := timeline.Render(&buf, h, timeline.Options{Title: "10,000 chunks & <more>"}); err != nil {
		t.Fatal(err)
	}
	n := elements(t, buf.Bytes())
	if n["attempt"] != 10_000 || n["hedge"] != 200 || n["stitch"] != 1 || n["legend"] != len(job.Outcomes)+2 || n["tick"] < 5 {
		t.Errorf("elements by class: %v", n)
	}
	for _, o := range outcomes {
		if n[string(o)] != perOutcome[o] {
			t.Errorf("%d bars of %s, want %d", n[string(o)], o, perOutcome[o])
		}
	}
	// 1,000 lanes fold into rows of 7: the picture stays the same height.
	if !strings.Contains(buf.String(), "1000 lanes, 7 to a row") {
		t.Errorf("no folding said: %.300s", buf.String())
	}
	if buf.Len() > 2<<20 {
		t.Errorf("%d bytes for 10,000 attempts", buf.Len())
	}
}

func TestEmptyHistory(t *testing.T) {
	var buf bytes.Buffer
	if err := timeline.Render(&buf, job.History{JobID: "x"}, timeline.Options{Title: "nothing yet"}); err != nil {
		t.Fatal(err)
	}
	if n := elements(t, buf.Bytes()); n["attempt"] != 0 || n["legend"] == 0 {
		t.Errorf("elements: %v", n)
	}
}

// A job run twice (a resume after Ctrl-C): where the second run began is
// marked, and the subtitle counts the runs; one run is not marked.
func TestRunBoundaries(t *testing.T) {
	h := job.History{
		Attempts: []job.Attempt{
			{Chunk: 0, Attempt: 1, Start: 1_800_000_000_000, End: 1_800_000_001_000, Outcome: job.OutcomeDone},
			{Chunk: 1, Attempt: 1, Start: 1_800_000_060_000, End: 1_800_000_061_000, Outcome: job.OutcomeDone},
		},
		Runs: []job.Span{{Start: 1_799_999_999_900, End: 1_800_000_001_500}, {Start: 1_800_000_059_800, End: 1_800_000_062_000}},
	}
	for _, runs := range []int{1, 2} {
		h := h
		h.Runs = h.Runs[:runs]
		var buf bytes.Buffer
		if err := timeline.Render(&buf, h, timeline.Options{Title: "twice"}); err != nil {
			t.Fatal(err)
		}
		n := elements(t, buf.Bytes())
		if n["run"] != runs-1 || strings.Contains(buf.String(), ">run 2<") != (runs == 2) || strings.Contains(buf.String(), "2 runs") != (runs == 2) {
			t.Errorf("%d runs: %d marks (%v)\n%.600s", runs, n["run"], n, buf.String())
		}
	}
}
