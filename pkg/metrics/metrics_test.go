package metrics_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/metrics"
)

func status() *job.Status {
	// Chunk 2's second attempt was a hedge, not a retry.
	return &job.Status{JobID: "j", State: job.StateDone, ChunksTotal: 3, WorkerSeconds: 12.5, EstimatedCostUSD: 0.0021,
		Timings: job.Timings{TotalMs: 4200}, Hedges: 1,
		Chunks: []job.ChunkStatus{{Attempts: 1}, {Attempts: 3}, {Attempts: 2, Hedges: 1}}}
}

// The Lambda line is valid Embedded Metric Format: one root _aws object
// whose directive names a namespace, dimension keys present at the root as
// strings, and every metric present at the root as a number.
func TestEMFLine(t *testing.T) {
	var buf bytes.Buffer
	metrics.Log(slog.New(slog.NewJSONHandler(&buf, nil)).With("jobId", "j"), metrics.Of(status()), true)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Fatalf("not one JSON line: %q (%v)", buf.String(), err)
	}
	aws, _ := line["_aws"].(map[string]any)
	if _, ok := aws["Timestamp"].(float64); !ok {
		t.Fatalf("_aws.Timestamp missing: %v", aws)
	}
	directives, _ := aws["CloudWatchMetrics"].([]any)
	if len(directives) != 1 {
		t.Fatalf("CloudWatchMetrics = %v", aws["CloudWatchMetrics"])
	}
	d := directives[0].(map[string]any)
	if d["Namespace"] != metrics.Namespace {
		t.Errorf("namespace %v", d["Namespace"])
	}
	for _, set := range d["Dimensions"].([]any) {
		for _, k := range set.([]any) {
			if _, ok := line[k.(string)].(string); !ok {
				t.Errorf("dimension %v is not a string at the root", k)
			}
		}
	}
	want := map[string]float64{"JobDuration": 4200, "Chunks": 3, "Retries": 2, "Hedges": 1, "WorkerSeconds": 12.5, "EstimatedCostUSD": 0.0021}
	for _, m := range d["Metrics"].([]any) {
		name := m.(map[string]any)["Name"].(string)
		v, ok := line[name].(float64)
		if !ok || v != want[name] {
			t.Errorf("metric %s = %v at the root, want %v", name, line[name], want[name])
		}
		delete(want, name)
	}
	if len(want) != 0 {
		t.Errorf("metrics not declared: %v", want)
	}
}

// Elsewhere the same figures are plain fields, without the EMF metadata.
func TestStructuredLine(t *testing.T) {
	var buf bytes.Buffer
	metrics.Log(slog.New(slog.NewJSONHandler(&buf, nil)), metrics.Of(status()), false)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line["_aws"] != nil || line["Retries"] != float64(2) || line["Hedges"] != float64(1) || line["State"] != "done" || line["msg"] != "job metrics" {
		t.Errorf("line = %v", line)
	}
}

// A job run twice (stopped, then resumed) reports both runs' time, as its
// worker seconds and retries add up both runs'.
func TestDurationCoversEveryRun(t *testing.T) {
	st := status()
	st.Usage.Compute = map[string]job.Compute{job.FunctionOrchestrator: {Seconds: 7.25, Invocations: 2}}
	if got := metrics.Of(st).JobDuration; got != 7250 {
		t.Errorf("JobDuration = %d ms; want 7250, both runs", got)
	}
}
