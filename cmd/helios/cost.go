package main

import (
	"fmt"
	"io"

	"github.com/helios-project/infrastructure/pkg/cost"
	"github.com/helios-project/infrastructure/pkg/job"
)

// printCost writes what a job has cost so far and what for, its label
// padded to width as the lines above it.
func printCost(w io.Writer, indent string, width int, st *job.Status) {
	label := fmt.Sprintf("%-*s", width, "cost:")
	c, u := st.Cost, st.Usage
	if c.Platform == "" {
		return // written before costs were kept
	}
	r := u.Requests
	if c.Platform == cost.Local {
		fmt.Fprintf(w, "%s%s$0 (run on this machine; %d PUT, %d GET, %d LIST storage requests)\n", indent, label, r.Put, r.Get, r.List)
	} else {
		fmt.Fprintf(w, "%s%s$%.4f on %s at the prices of %s: compute $%.4f, invocations $%.6f, storage $%.6f (%d PUT, %d GET, %d LIST)\n",
			indent, label, c.USD, c.Platform, c.PricesAsOf, c.ComputeUSD, c.RequestsUSD, c.StorageUSD, r.Put, r.Get, r.List)
	}
	for _, fn := range []string{job.FunctionWorker, job.FunctionBrowserWorker, job.FunctionStitcher, job.FunctionOrchestrator} {
		if used, ok := u.Compute[fn]; ok {
			calls := "invocations"
			if used.Invocations == 1 {
				calls = "invocation"
			}
			fmt.Fprintf(w, "%s  %-14s %.1f s in %d %s\n", indent, fn+":", used.Seconds, used.Invocations, calls)
		}
	}
	if st.Hedges > 0 {
		fmt.Fprintf(w, "%s  hedges:        %d, %.1f worker-seconds of it\n", indent, st.Hedges, st.HedgeWorkerSeconds)
	}
}
