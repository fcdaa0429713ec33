package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/helios-project/infrastructure/pkg/job"
)

// printWarnings writes what the chunks' commands warned of: things that
// did not fail the job but may make the video differ from what was asked.
func printWarnings(w io.Writer, indent string, width int, st *job.Status) {
	if len(st.Warnings) == 0 {
		return
	}
	fmt.Fprintf(w, "%s%-*s%d (the video may not be what the composition asked for)\n", indent, max(width, len("warnings: ")), "warnings:", len(st.Warnings))
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "%s  - %s (%s)\n", indent, strings.ReplaceAll(warn.Message, "\n", "\n"+indent+"    "), chunkList(warn))
	}
	if st.WarningsLeftOut > 0 {
		fmt.Fprintf(w, "%s  (and %d reports of other warnings, not kept: see the workers' logs)\n", indent, st.WarningsLeftOut)
	}
}

// chunkList names the chunks that reported a warning.
func chunkList(w job.Warning) string {
	names := make([]string, len(w.Chunks))
	for i, c := range w.Chunks {
		names[i] = fmt.Sprint(c)
	}
	s := "chunk " + strings.Join(names, ", ")
	if len(w.Chunks) > 1 {
		s = "chunks " + strings.Join(names, ", ")
	}
	if more := w.Count - len(w.Chunks); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}
