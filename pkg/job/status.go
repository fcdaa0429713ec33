package job

import (
	"slices"
	"time"

	"github.com/helios-project/infrastructure/pkg/joberr"
)

// State is where a job or a chunk is in its life.
type State string

// Job and chunk states.
const (
	StatePending   State = "pending"
	StateRunning   State = "running"
	StateStitching State = "stitching"
	StateDone      State = "done"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// Final reports whether nothing more will happen to a job in this state.
func (s State) Final() bool { return s == StateDone || s == StateFailed || s == StateCancelled }

// Status is renders/<id>/status.json: a job's progress, rewritten by the
// orchestrator only.
type Status struct {
	JobID        string `json:"jobId"`
	State        State  `json:"state"`
	TotalFrames  int    `json:"totalFrames"`
	FramesDone   int    `json:"framesDone"`
	ChunksTotal  int    `json:"chunksTotal"`
	ChunksDone   int    `json:"chunksDone"`
	ChunksFailed int    `json:"chunksFailed"`
	// Chunks is every chunk's progress. It is stored compacted (see
	// MarshalJSON): a letter per chunk, the chunk sizes run-length encoded,
	// and in full only the chunks with something to tell.
	Chunks      []ChunkStatus `json:"chunks,omitempty"`
	Output      string        `json:"output,omitempty"` // key of the final video, once done
	OutputBytes int64         `json:"outputBytes,omitempty"`
	Error       *joberr.Error `json:"error,omitempty"`
	Timings     Timings       `json:"timings"`
	// WorkerSeconds is the summed run time of every worker attempt, the
	// figure serverless compute is billed on.
	WorkerSeconds float64 `json:"workerSeconds"`
	// Hedges counts the second attempts started beside straggling ones,
	// and HedgeWorkerSeconds their share of WorkerSeconds.
	Hedges             int     `json:"hedges,omitempty"`
	HedgeWorkerSeconds float64 `json:"hedgeWorkerSeconds,omitempty"`
	// EstimatedCostUSD is Cost.USD: what the platform bills for the job.
	EstimatedCostUSD float64 `json:"estimatedCostUsd"`
	// Usage is what was billed for, and Cost its price in parts.
	Usage Usage `json:"usage,omitzero"`
	Cost  Cost  `json:"cost,omitzero"`
	// Warnings are what the chunks' commands reported that did not fail
	// the job but may make the video differ from what was asked.
	Warnings []Warning `json:"warnings,omitempty"`
	// WarningsLeftOut counts the reports of messages beyond MaxWarnings.
	WarningsLeftOut int `json:"warningsLeftOut,omitempty"`
}

// Warning is one message the chunks' commands reported, and which chunks.
type Warning struct {
	Message string `json:"message"`
	Chunks  []int  `json:"chunks"` // the first MaxWarningChunks chunks that reported it, in order
	Count   int    `json:"count"`  // how many chunks reported it
}

// Limits of the warnings a status keeps: a warning every chunk reports
// must not grow the status with the number of chunks.
const (
	MaxWarnings      = 20
	MaxWarningChunks = 10
)

// AddWarnings records the warnings chunk reported, once per chunk.
func (s *Status) AddWarnings(chunk int, messages []string) {
	for _, m := range messages {
		i := slices.IndexFunc(s.Warnings, func(w Warning) bool { return w.Message == m })
		if i < 0 {
			if len(s.Warnings) >= MaxWarnings {
				s.WarningsLeftOut++
				continue
			}
			s.Warnings = append(s.Warnings, Warning{Message: m})
			i = len(s.Warnings) - 1
		}
		w := &s.Warnings[i]
		if slices.Contains(w.Chunks, chunk) {
			continue
		}
		w.Count++
		if len(w.Chunks) < MaxWarningChunks {
			w.Chunks = append(w.Chunks, chunk)
			slices.Sort(w.Chunks)
		}
	}
}

// ChunkStatus is the progress of one chunk.
type ChunkStatus struct {
	Index      int           `json:"index"`
	Start      int           `json:"start"`
	Count      int           `json:"count"`
	State      State         `json:"state"`
	Attempts   int           `json:"attempts"` // the highest attempt number started, hedges included
	Hedges     int           `json:"hedges,omitempty"`
	DurationMs int64         `json:"durationMs,omitempty"` // the winning attempt's command time
	SegmentKey string        `json:"segmentKey,omitempty"`
	Error      *joberr.Error `json:"error,omitempty"` // the last attempt's error
}

// Timings are wall-clock marks of the job.
type Timings struct {
	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	RenderedAt time.Time `json:"renderedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	RenderMs   int64     `json:"renderMs,omitempty"`
	StitchMs   int64     `json:"stitchMs,omitempty"`
	TotalMs    int64     `json:"totalMs,omitempty"`
	UpdatedAt  time.Time `json:"updatedAt"`
}
