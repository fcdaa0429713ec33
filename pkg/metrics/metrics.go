// Package metrics reports each job's figures when it ends, as one log line:
// in CloudWatch Embedded Metric Format on Lambda, which CloudWatch turns
// into metrics of the Helios namespace (the CDK app's dashboard shows them),
// and as a structured line elsewhere, whose fields Cloud Logging reads.
package metrics

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
)

// Namespace is the CloudWatch namespace of the metrics.
const Namespace = "Helios"

// Names and units of the metrics, in the order they are reported.
var metrics = []struct{ Name, Unit string }{
	{"JobDuration", "Milliseconds"},
	{"Chunks", "Count"},
	{"Retries", "Count"},
	{"Hedges", "Count"},
	{"WorkerSeconds", "Seconds"},
	{"EstimatedCostUSD", "None"},
}

// Job are a finished job's figures.
type Job struct {
	State            job.State
	JobDuration      int64 // ms, the job's runs together
	Chunks           int
	Retries          int // attempts beyond the first, over all chunks
	Hedges           int // second attempts started for stragglers
	WorkerSeconds    float64
	EstimatedCostUSD float64
}

// Of reads a job's figures from its final status.
func Of(st *job.Status) Job {
	m := Job{State: st.State, JobDuration: st.Timings.TotalMs, Chunks: st.ChunksTotal, Hedges: st.Hedges,
		WorkerSeconds: st.WorkerSeconds, EstimatedCostUSD: st.EstimatedCostUSD}
	// Every run's time, as the other figures add up every run's: the
	// orchestrator's usage is its runs' durations.
	if o, ok := st.Usage.Compute[job.FunctionOrchestrator]; ok && o.Seconds > 0 {
		m.JobDuration = int64(math.Round(o.Seconds * 1000))
	}
	for _, c := range st.Chunks {
		m.Retries += max(c.Attempts-1-c.Hedges, 0)
	}
	return m
}

func (m Job) values() []any {
	return []any{m.JobDuration, m.Chunks, m.Retries, m.Hedges, m.WorkerSeconds, m.EstimatedCostUSD}
}

// Log writes m as one line through log (a JSON handler): with emf, the
// line carries the "_aws" metadata that makes CloudWatch extract the
// metrics, with the job's state as their one dimension.
func Log(log *slog.Logger, m Job, emf bool) {
	attrs := []slog.Attr{slog.String("State", string(m.State))}
	for i, v := range m.values() {
		attrs = append(attrs, slog.Any(metrics[i].Name, v))
	}
	if emf {
		defs := make([]map[string]string, len(metrics))
		for i, d := range metrics {
			defs[i] = map[string]string{"Name": d.Name, "Unit": d.Unit}
		}
		attrs = append(attrs, slog.Any("_aws", map[string]any{
			"Timestamp": time.Now().UnixMilli(),
			"CloudWatchMetrics": []map[string]any{{
				"Namespace": Namespace, "Dimensions": [][]string{{"State"}}, "Metrics": defs,
			}},
		}))
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, "job metrics", attrs...)
}
